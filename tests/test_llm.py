"""The annotator's client (peakclips/llm.py): the response cache under many writer processes,
and the API key, which never shows up in a repr, an error or a log line."""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import pickle

import cloudpickle

from peakclips.config import AnnotatorConfig
from peakclips.llm import LLMClient, ResponseCache, Secret, Usage, api_key
from peakclips.prompts import CaptionReply, reply_schema
from tests.llm_server import FakeLLMServer

WRITERS, PER_WRITER = 6, 150
MARKER = "sk-peakclips-test-MARKER-5f1c9e"


def _writer(path: str, n: int, barrier) -> int:
    barrier.wait()  # every process opens the file and starts writing at the same moment
    cache = ResponseCache(path)
    for i in range(PER_WRITER):
        cache.put(f"{n}-{i}", f"reply {n} {i}")
        assert cache.get(f"{n}-{i}") == f"reply {n} {i}"
        cache.get(f"{(n + 1) % WRITERS}-{i}")  # reads beside other processes' writes
    return PER_WRITER


def test_cache_is_safe_with_many_writer_processes(tmp_path):
    path = str(tmp_path / "sub" / "cache.sqlite")  # the folder is created too
    ctx = mp.get_context("spawn")  # fresh processes, like Ray workers
    barrier = ctx.Manager().Barrier(WRITERS)
    with ctx.Pool(WRITERS) as pool:
        done = pool.starmap(_writer, [(path, n, barrier) for n in range(WRITERS)])
    assert done == [PER_WRITER] * WRITERS  # no "database is locked", no lost write
    cache = ResponseCache(path)
    assert len(cache) == WRITERS * PER_WRITER
    assert all(cache.get(f"{n}-{i}") == f"reply {n} {i}" for n in range(WRITERS) for i in range(PER_WRITER))
    assert cache._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_secret_never_shows_itself_but_travels():
    s = Secret(MARKER)
    assert MARKER not in repr(s) and MARKER not in str(s) and MARKER not in f"{s} {[s]} {({'k': s})}"
    assert pickle.loads(cloudpickle.dumps(s)).get() == MARKER  # to Ray workers
    cfg = AnnotatorConfig(backend="openai")
    assert api_key(cfg, s) == MARKER
    assert Secret.from_env(AnnotatorConfig()).get() is None  # the reference backend gets no key


def test_key_is_sent_but_never_logged_or_in_errors(tmp_path, caplog, monkeypatch):
    import hashlib

    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    monkeypatch.setenv("OPENAI_LOG", "debug")  # the openai client's own debug logging, too
    caplog.set_level(logging.DEBUG)
    messages = [{"role": "user", "content": "caption this"}]
    with FakeLLMServer(script=["429", "ok", "500", "500", "500", "401"]) as srv:
        cfg = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="m",
                              cache=str(tmp_path / "c.sqlite"), max_retries=2, timeout_s=5)
        client = LLMClient(cfg)
        errors = []

        async def main():
            usage = Usage()
            await client.ask("p.v1", "sha", messages, CaptionReply, reply_schema(CaptionReply), usage)
            for sha in ("sha2", "sha3"):  # a server error after retries; a refused key
                try:
                    await client.ask("p.v1", sha, messages, CaptionReply, reply_schema(CaptionReply), usage)
                except Exception as e:  # noqa: BLE001 - the test looks at whatever comes out
                    errors.append(e)

        asyncio.run(main())
        sent = {r["auth_sha256"] for r in srv.requests}
    assert sent == {hashlib.sha256(f"Bearer {MARKER}".encode()).hexdigest()}  # the key was used
    assert [e.code for e in errors] == ["llm_server_error", "llm_auth_failed"]
    assert all(MARKER not in repr(e) and MARKER not in str(e) for e in errors)
    names = {r.name for r in caplog.records}  # debug logging was on: there is something to search
    assert {"openai._base_client", "httpx2"} <= names
    assert not [r for r in caplog.records if MARKER in r.getMessage() or MARKER in str(r.args)]
    assert MARKER not in (tmp_path / "c.sqlite").read_bytes().decode("latin-1")

