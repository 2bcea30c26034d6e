"""Tests of the project's fake OpenAI-compatible server, driven by the real `openai` client."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Literal

import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tests.llm_server import FAULT_KINDS, IMAGE_TOKENS, FakeLLMServer, llm_server_fixture


class Scene(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scene: int = Field(ge=0, le=100)
    caption: str = Field(min_length=5, max_length=200)
    relevance: int = Field(ge=1, le=5)
    tags: list[Literal["action", "talk", "scenery"]] = Field(min_length=1, max_length=3)


class Reply(BaseModel):  # nested model -> $defs/$ref in its JSON schema
    model_config = ConfigDict(extra="forbid")
    scenes: list[Scene] = Field(min_length=4, max_length=4)
    confidence: float = Field(ge=0, le=1)
    is_highlight: bool
    kind: Literal["sport", "talk"]
    note: str | None
    version: Literal[2] = 2


REPLY_SCHEMA = Reply.model_json_schema()
MESSAGES = [{"role": "system", "content": "Rate each scene 1-5."},
            {"role": "user", "content": [
                {"type": "text", "text": "Query: a goal is scored"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + "A" * 4000}}]}]


def _fmt(schema=REPLY_SCHEMA, name="scene_relevance"):
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _client(srv, **kw):
    kw.setdefault("max_retries", 0)
    kw.setdefault("timeout", 5.0)
    return openai.OpenAI(base_url=srv.base_url, api_key="test", **kw)


def _ask(client, messages=MESSAGES, **kw):
    return client.chat.completions.create(model="m", messages=messages, response_format=_fmt(), **kw)


llm_server = llm_server_fixture()  # the conftest-style usage


def test_schema_reply_validates_and_reports_usage(llm_server):
    assert "$defs" in REPLY_SCHEMA and llm_server.base_url.startswith("http://127.0.0.1:")
    resp = _ask(_client(llm_server))
    reply = Reply.model_validate_json(resp.choices[0].message.content)
    assert len(reply.scenes) == 4 and resp.choices[0].finish_reason == "stop"
    assert "scene_relevance" in reply.scenes[0].caption  # plausible text naming the schema
    u = resp.usage
    # the image counts as IMAGE_TOKENS, not as the 4000-character data URL
    assert IMAGE_TOKENS < u.prompt_tokens < IMAGE_TOKENS + 40
    assert u.completion_tokens > 0 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    rec = llm_server.requests[0]
    assert rec["fault"] == "ok" and rec["body"]["response_format"]["json_schema"]["strict"] is True
    assert "authorization" not in rec["headers"]


def test_parse_helper_with_openai_strict_schema(llm_server):
    # chat.completions.parse sends openai's own strict transform of the pydantic schema
    parsed = _client(llm_server).chat.completions.parse(
        model="m", messages=MESSAGES, response_format=Reply).choices[0].message.parsed
    assert isinstance(parsed, Reply) and len(parsed.scenes) == 4


def test_replies_are_deterministic_per_request(llm_server):
    client = _client(llm_server)
    a, b = (_ask(client).choices[0].message.content for _ in range(2))
    c = _ask(client, messages=[{"role": "user", "content": "another video"}]).choices[0].message.content
    assert a == b != c
    with FakeLLMServer() as other:  # a fresh server agrees
        assert _ask(_client(other)).choices[0].message.content == a


def test_text_reply_json_object_and_models(llm_server):
    client = _client(llm_server)
    text = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert text.choices[0].message.content.startswith("synthetic reply")
    obj = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}],
                                         response_format={"type": "json_object"})
    assert isinstance(json.loads(obj.choices[0].message.content), dict)
    assert [m.id for m in client.models.list()] == ["fake-llm"]


def test_generator_covers_schema_keywords(llm_server):
    schema = {"type": "object", "additionalProperties": False, "required": ["a", "b", "c", "d", "t"],
              "properties": {"a": {"const": "fixed"}, "b": {"enum": [3, 4]},
                             "c": {"type": "array", "items": {"type": "integer", "minimum": 10,
                                                              "maximum": 12}, "minItems": 7, "maxItems": 7},
                             "d": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                             "m": {"type": "object", "additionalProperties": {"type": "boolean"}},
                             "s": {"type": "string", "minLength": 60, "maxLength": 61},
                             "t": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "null"}]}}}
    out = json.loads(_client(llm_server).chat.completions.create(
        model="m", messages=MESSAGES, response_format=_fmt(schema, "kw")).choices[0].message.content)
    assert out["a"] == "fixed" and out["b"] in (3, 4) and 0 < out["d"] < 1
    assert len(out["c"]) == 7 and all(10 <= x <= 12 for x in out["c"])
    assert all(isinstance(v, bool) for v in out["m"].values()) and 60 <= len(out["s"]) <= 61
    assert isinstance(out["t"][0], str) and out["t"][1] is None


def test_reply_fn_overrides_and_none_falls_back():
    calls = []

    def reply_fn(body):
        calls.append(body)
        return None if len(calls) > 1 else {"scenes": [], "fixed": True}

    with FakeLLMServer(reply_fn=reply_fn) as srv:
        client = _client(srv)
        assert json.loads(_ask(client).choices[0].message.content) == {"scenes": [], "fixed": True}
        Reply.model_validate_json(_ask(client).choices[0].message.content)
        assert len(calls) == 2 and calls[0]["messages"] == MESSAGES


def test_429_retry_honours_retry_after_then_succeeds():
    with FakeLLMServer(script=["429", "429", "ok"], retry_after_s=0.1) as srv:
        t0 = time.monotonic()
        resp = _ask(_client(srv, max_retries=2))
        elapsed = time.monotonic() - t0
        Reply.model_validate_json(resp.choices[0].message.content)
        assert srv.count() == 3 and srv.count("429") == 2 and srv.count("ok") == 1
        # two waits of 0.1 s; the client's own backoff (0.5 s, then 1 s) would take > 1 s
        assert 0.2 <= elapsed < 1.0
        assert [r["headers"]["x-stainless-retry-count"] for r in srv.requests] == ["0", "1", "2"]
        srv.reset()
        assert srv.count() == 0 and srv.plan(2) == ["429", "429"]


def test_429_exhausts_retries():
    with FakeLLMServer(script=["429"] * 5, retry_after_s=0.01) as srv:
        with pytest.raises(openai.RateLimitError):
            _ask(_client(srv, max_retries=2))
        assert srv.count() == 3


@pytest.mark.parametrize("kind, status", [("500", 500), ("503", 503), ("408", 408)])
def test_status_faults(kind, status):
    with FakeLLMServer(script=[kind, kind, "ok"], retry_after_s=0.01) as srv:
        with pytest.raises(openai.APIStatusError) as err:
            _ask(_client(srv, max_retries=0))
        assert err.value.status_code == status
        assert _ask(_client(srv, max_retries=1)).choices[0].message.content  # retried once, then ok
        assert srv.count() == 3 and srv.count(kind) == 2


def test_drop_gives_connection_error_after_retries():
    with FakeLLMServer(faults={"drop": 1.0}) as srv:
        with pytest.raises(openai.APIConnectionError) as err:
            _ask(_client(srv, max_retries=1))
        assert not isinstance(err.value, openai.APITimeoutError)
        assert srv.count() == 2 and srv.count("drop") == 2


def test_slow_gives_timeout():
    with FakeLLMServer(script=["slow"], slow_s=3.0) as srv:
        t0 = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            _ask(_client(srv, timeout=0.3))
        assert time.monotonic() - t0 < 1.5 and srv.count("slow") == 1
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 1.0  # stop() wakes the sleeping handler


@pytest.mark.parametrize("kind", ["malformed_json", "out_of_range", "wrong_length", "extra_key"])
def test_content_faults_fail_validation(kind):
    with FakeLLMServer(script=[kind]) as srv:
        resp = _ask(_client(srv))
        content = resp.choices[0].message.content
        with pytest.raises(ValidationError):
            Reply.model_validate_json(content)
        if kind == "malformed_json":
            with pytest.raises(ValueError):
                json.loads(content)
            return
        data = json.loads(content)
        if kind == "out_of_range":
            assert all(s["relevance"] == 7 and s["scene"] == 102 for s in data["scenes"])
            assert data["confidence"] == 3
        elif kind == "wrong_length":
            assert len(data["scenes"]) == 3
        else:
            assert "unexpected_extra" in data and all("unexpected_extra" in s for s in data["scenes"])
        assert srv.requests[0]["fault"] == kind


def test_fault_rates_are_a_deterministic_plan():
    kw = {"faults": {"500": 0.3, "drop": 0.2}, "seed": 7}
    plan = FakeLLMServer(**kw).plan(400)
    assert plan == FakeLLMServer(**kw).plan(400) != FakeLLMServer(faults=kw["faults"], seed=8).plan(400)
    assert 90 < plan.count("500") < 150 and 50 < plan.count("drop") < 110
    with FakeLLMServer(**kw) as srv:
        client = _client(srv)
        for _ in range(10):
            try:
                _ask(client)
            except openai.APIError:
                pass
        assert [r["fault"] for r in srv.requests] == plan[:10]
    with pytest.raises(ValueError):
        FakeLLMServer(faults={"teapot": 0.1})
    assert set(FAULT_KINDS) >= {"429", "slow", "extra_key"}


def test_concurrent_requests_overlap():
    async def run(srv):
        client = openai.AsyncOpenAI(base_url=srv.base_url, api_key="test", max_retries=0, timeout=5)
        msgs = [[{"role": "user", "content": f"video {i}"}] for i in range(16)]
        t0 = time.monotonic()
        out = await asyncio.gather(*(client.chat.completions.create(
            model="m", messages=m, response_format=_fmt()) for m in msgs))
        await client.close()
        return out, time.monotonic() - t0

    with FakeLLMServer(latency_s=0.2) as srv:
        out, elapsed = asyncio.run(run(srv))
        assert len(out) == 16 and srv.count() == 16
        assert elapsed < 1.0  # serialised they would take 16 x 0.2 = 3.2 s
        assert all(Reply.model_validate_json(r.choices[0].message.content) for r in out)


def test_no_per_request_stall_on_keep_alive(llm_server):
    # Headers and body are two writes: with Nagle on, each reply waits ~40 ms for a delayed ACK,
    # which would quietly cap a throughput benchmark. 20 sequential calls take ~0.05 s, not ~0.9 s.
    client = _client(llm_server)
    client.models.list()  # open the keep-alive connection first
    t0 = time.monotonic()
    for i in range(20):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"v{i}"}])
    assert time.monotonic() - t0 < 0.5


def test_stop_frees_the_port():
    srv = FakeLLMServer().start()
    _, port = srv.address
    _ask(_client(srv))  # leaves a keep-alive connection open in the client pool
    url = srv.base_url
    srv.stop()
    with socket.socket() as s:  # bind the very same port again
        s.bind(("127.0.0.1", port))
    with pytest.raises(openai.APIConnectionError):
        openai.OpenAI(base_url=url, api_key="test", max_retries=0, timeout=1).models.list()
    with FakeLLMServer(port=port) as again:  # and a server can serve on it
        assert again.base_url == url
    srv.stop()  # idempotent


def test_cli_prints_base_url_and_serves():
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-m", "tests.llm_server", "--port", "0", "--faults",
                             "429=0.0,500=0.0"], cwd=root, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        client = openai.OpenAI(base_url=url, api_key="test", max_retries=0, timeout=5)
        assert client.chat.completions.create(model="m", messages=MESSAGES).choices[0].message.content
    finally:
        proc.terminate()
        tail = proc.communicate(timeout=5)[0]
    assert proc.returncode == 0 and "served 1 requests" in tail
