"""The openai annotator inside real pipeline runs on local Ray, against the project's own
OpenAI-compatible server (tests/llm_server.py): faults on 30 % of requests, exact accounting
from the server's records, `--force` re-runs answered from the cache, the key never written
anywhere, and requests in flight across videos on one actor."""

from __future__ import annotations

import hashlib
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from peakclips.config import AnnotatorConfig, load_config
from peakclips.pipeline import run
from tests.conftest import REPO, SAMPLE_MANIFEST
from tests.llm_server import FakeLLMServer

pytestmark = pytest.mark.slow

MARKER = "sk-peakclips-e2e-MARKER-93ab17"
# The faults, 3 % each: 30 % of requests fail, one way or another.
FAULTS = {k: 0.03 for k in ("429", "500", "503", "408", "drop", "slow",
                            "malformed_json", "out_of_range", "wrong_length", "extra_key")}
SPECIFIC = {"annotate:llm_rate_limited", "annotate:llm_server_error", "annotate:llm_timeout",
            "annotate:llm_unreachable", "annotate:invalid_reply"}
PRICE = {"input_per_mtok": 0.4, "output_per_mtok": 1.6}
CHAT = "/chat/completions"


def _config(srv, tmp_path, response_format="json_schema"):
    # json_schema unless told: `auto` would add its check request to the server's records
    return load_config(REPO / "pipelines/peakclips.yaml", [
        f"annotator.base_url={srv.base_url}", "annotator.model=fake-llm", f"annotator.response_format={response_format}",
        f"annotator.cache={tmp_path / 'cache.sqlite'}", "annotator.timeout_s=2", "annotator.max_retries=3",
        f"annotator.prices={{fake-llm: {json.dumps(PRICE)}}}",
        f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]", "clip.enabled=false",
        "frames.num_candidates=16"])


def _videos(out) -> dict[str, dict]:
    """The index's first row per video (the accounting columns are per video)."""
    rows = pq.read_table(out / "peakclips-000000.parquet").to_pylist()
    return {r["video_id"]: r for r in reversed(rows)}


def _stats(out) -> dict:
    return json.loads((out / "peakclips-000000_stats.json").read_text())


def test_fault_injected_run_then_force_reruns_from_the_cache(ray_local, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("OPENAI_API_KEY", MARKER)
    out = tmp_path / "out"
    with FakeLLMServer(faults=FAULTS, seed=7, slow_s=4.0, retry_after_s=0.05) as srv:
        cfg = _config(srv, tmp_path)

        # 1. 30 % faults: the run finishes; each clip ends ok, dropped, or with a specific code.
        run(cfg, str(SAMPLE_MANIFEST), str(out))
        first, stats = _videos(out), _stats(out)
        assert len(first) == 6 and stats["videos"]["total"] == 6
        for v in first.values():
            assert v["status"] in ("ok", "dropped") or v["error"] in SPECIFIC, (v["error"], v["error_detail"])
        faults = Counter(r["fault"] for r in srv.requests if r["path"].endswith(CHAT))
        assert sum(n for k, n in faults.items() if k != "ok") >= 0.2 * sum(faults.values()), faults
        # accounting: exactly what the server answered and billed, per video and per shard
        # (a "slow" reply is billed by the server but comes after the client gave up)
        answered = [r for r in srv.requests if r["usage"] is not None and r["fault"] != "slow"]
        calls = sum(v["llm_calls"] for v in first.values())
        assert calls == len(answered) == stats["llm"]["calls"]
        prompt = sum(r["usage"]["prompt_tokens"] for r in answered)
        completion = sum(r["usage"]["completion_tokens"] for r in answered)
        assert sum(v["prompt_tokens"] for v in first.values()) == prompt == stats["llm"]["prompt_tokens"]
        assert sum(v["completion_tokens"] for v in first.values()) == completion == stats["llm"]["completion_tokens"]
        assert stats["llm"]["cost_usd"] == pytest.approx((prompt * 0.4 + completion * 1.6) / 1e6, abs=1e-6)
        assert stats["llm"]["price_per_mtok"] == PRICE
        # the driver's key went to the workers and out with every request
        assert {r["auth_sha256"] for r in srv.requests} == {hashlib.sha256(f"Bearer {MARKER}".encode()).hexdigest()}

        # 2. --force, faults off: nothing answered before is asked again; only what failed is.
        srv.faults = {}
        srv.reset()
        run(cfg, str(SAMPLE_MANIFEST), str(out), force=True)
        second = _videos(out)
        assert all(v["error"] is None for v in second.values())
        for vid, v in first.items():
            if v["error"] is None:
                assert second[vid]["llm_calls"] == 0, vid
        assert srv.count(path=CHAT) == sum(v["llm_calls"] for v in second.values())
        # every video asked exactly scenes + queries + 2 questions (captions, chapters, queries, relevance)
        for v in second.values():
            assert v["llm_calls"] + v["llm_cache_hits"] == v["num_scenes"] + 3 + 2, v["video_id"]

        # 3. --force again: zero requests.
        srv.reset()
        run(cfg, str(SAMPLE_MANIFEST), str(out), force=True)
        third = _videos(out)
        assert srv.count(path=CHAT) == 0 and _stats(out)["llm"]["calls"] == 0
        assert {v: r["llm_cache_hits"] for v, r in third.items()} == {
            v: r["llm_calls"] + r["llm_cache_hits"] for v, r in second.items()}

    # The key is in no output file, no cache, no captured output and no Ray log.
    captured = capfd.readouterr()
    assert MARKER not in captured.out + captured.err
    files = [p for p in [*out.rglob("*"), *tmp_path.glob("cache.sqlite*")] if p.is_file()]
    logs = ray_local._private.worker.global_worker.node.get_logs_dir_path()
    from pathlib import Path

    files += [p for p in Path(logs).rglob("*") if p.is_file()]
    assert len(files) > 10
    leaked = [str(p) for p in files if MARKER.encode() in p.read_bytes()]
    assert leaked == []


def test_a_server_that_refuses_json_schema_costs_one_request_and_one_line(ray_local, tmp_path):
    """As llama-cpp-python does (HTTP 500): `auto` asks once on the driver, steps down, and the
    workers (two actors, six videos) send every request as json_object without asking again."""
    lines: list[str] = []
    with FakeLLMServer(refuse={"json_schema": 500}) as srv:
        run(_config(srv, tmp_path, response_format="auto"), str(SAMPLE_MANIFEST), str(tmp_path / "out"),
            log=lines.append)
        videos = _videos(tmp_path / "out")
        assert [v["error"] for v in videos.values()] == [None] * 6
        chat = [r for r in srv.requests if r["path"].endswith(CHAT)]
        assert [r["fault"] for r in chat].count("refused") == 1 and chat[0]["fault"] == "refused"
        assert len(chat) == 1 + 1 + sum(v["llm_calls"] for v in videos.values())  # + the accepted check
        assert {r["body"]["response_format"]["type"] for r in chat[1:]} == {"json_object"}
    assert [line for line in lines if "response_format" in line] == [
        "annotator: response_format auto chose json_object (json_schema refused with HTTP 500)"]


def test_requests_stay_in_flight_across_videos_on_one_actor(ray_local, tmp_path):
    """Ray Data runs the async stage on `videos_per_actor` rows at once; one video alone never
    has more than one request in flight here (1 scene, 1 query), so the server sees 6 at
    once only if six videos are being annotated together on the one actor."""
    import ray

    from peakclips.prompts import load_prompts
    from peakclips.stages.annotate import Annotate
    from tests.stages.test_annotate import InFlight, one_request_at_a_time_videos

    rows = one_request_at_a_time_videos(12)
    for per_actor in (1, 6):
        meter = InFlight(0.2)
        with FakeLLMServer(reply_fn=meter) as srv:
            cfg = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="m", max_concurrency=6,
                                  videos_per_actor=per_actor, cache=str(tmp_path / f"c{per_actor}.sqlite"))
            ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(  # as pipeline.py does
                Annotate, fn_constructor_kwargs={"cfg": cfg, "prompts": load_prompts(REPO / "prompts"),
                                                 "references": {}},
                num_cpus=0, compute=ray.data.ActorPoolStrategy(
                    size=1, max_concurrent_calls_per_actor=cfg.videos_per_actor))
            done = ds.take_all()
            assert [r["error"] for r in done] == [None] * 12 and srv.count() == 12 * 3
        assert meter.peak == per_actor
