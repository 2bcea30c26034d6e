"""Stage 4: the reference backend lines up by time; the openai backend against the project's
own OpenAI-compatible server, through the real `openai` client."""

import json

import pytest

from peakclips.config import AnnotatorConfig
from peakclips.prompts import load_prompts
from peakclips.reference import annotate_reference, load_references
from peakclips.stages.annotate import Annotate
from tests.conftest import REPO
from tests.llm_server import FakeLLMServer

REFS = load_references(REPO / "manifests/reference")


def test_every_sample_clip_has_a_reference():
    ids = {json.loads(line)["video_id"] for line in (REPO / "manifests/sample.jsonl").read_text().splitlines()}
    assert ids <= set(REFS)


def test_reference_is_keyed_by_time_not_index():
    ref = REFS["tears_of_steel_10s"]
    # Detected scenes that differ from the reference's: one merged span and one split span.
    scenes = [{"scene_id": 0, "start_s": 0.0, "end_s": 2.71}, {"scene_id": 1, "start_s": 2.71, "end_s": 5.0},
              {"scene_id": 2, "start_s": 5.0, "end_s": 10.0}]
    out = annotate_reference(ref, "tears_of_steel_10s", scenes, [])
    by_time = {(s["start_s"], s["end_s"]): s for s in ref["scenes"]}
    ref_spans = list(by_time)
    # scene 0 overlaps reference scene 1 (0.88-2.71) most; scenes 1 and 2 both lie in reference scene 2
    assert out["captions"][0] == by_time[ref_spans[1]]["caption"]
    assert out["captions"][1] == out["captions"][2] == by_time[ref_spans[2]]["caption"]
    assert len(out["llm_scores"]) == len(ref["queries"]) and all(len(s) == 3 for s in out["llm_scores"])


def test_unknown_video_is_a_row_error():
    row = {"video_id": "nope", "scenes": [{"scene_id": 0, "start_s": 0.0, "end_s": 1.0}],
           "manifest": json.dumps({"video_id": "nope", "uri": "x"}), "error": None}
    out = Annotate(AnnotatorConfig(), {}, REFS)(row)
    assert out["error"] == "annotate:no_reference"


def _row(n_scenes=3, manifest=None):
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, format="JPEG")
    scenes = [{"scene_id": i, "start_s": 2.0 * i, "end_s": 2.0 * i + 2} for i in range(n_scenes)]
    return {"video_id": "v", "scenes": scenes, "duration_s": 2.0 * n_scenes, "error": None,
            "scene_frames": [[buf.getvalue()] * 2 for _ in scenes],
            "manifest": json.dumps(manifest or {"video_id": "v", "uri": "x"})}


def _cfg(srv, tmp_path, **kw):
    kw = {"max_retries": 2, "timeout_s": 60, **kw}  # generous: CI machines can be slow
    return AnnotatorConfig(backend="openai", base_url=srv.base_url, model="fake", cache=str(tmp_path / "c.sqlite"), **kw)


def test_openai_backend_calls_per_video_and_cache(tmp_path):
    prompts = load_prompts(REPO / "prompts")
    with FakeLLMServer() as srv:
        stage = Annotate(_cfg(srv, tmp_path, queries_per_video=2), prompts, {})
        out = stage(_row(3))
        assert out["error"] is None, out.get("error_detail")
        assert len(out["captions"]) == 3 and len(out["queries"]) == 2
        assert all(q["origin"] == "generated" for q in out["queries"])
        assert [len(s) for s in out["llm_scores"]] == [3, 3]
        assert all(1 <= v <= 5 for s in out["llm_scores"] for v in s)
        # scenes (captions) + chapters/summary + queries + one relevance call per query
        assert srv.count() == 3 + 1 + 1 + 2 == out["llm_calls"]
        assert out["prompt_tokens"] > 0 and out["completion_tokens"] > 0
        first = srv.requests[0]["body"]
        assert first["response_format"]["type"] == "json_schema"
        assert any(p.get("type") == "image_url" for m in first["messages"] if isinstance(m["content"], list)
                   for p in m["content"])
        srv.reset()
        again = Annotate(_cfg(srv, tmp_path, queries_per_video=2), prompts, {})(_row(3))
        assert srv.count() == 0 and again["llm_cache_hits"] == 7  # a repeated video sends nothing
        assert again["llm_scores"] == out["llm_scores"]


def test_manifest_queries_and_qa_are_used_as_given(tmp_path):
    manifest = {"video_id": "v", "uri": "x", "queries": ["a red car"],
                "qa": [{"question": "what colour is the car?", "options": ["red", "blue"], "answer": 0}]}
    with FakeLLMServer() as srv:
        out = Annotate(_cfg(srv, tmp_path), load_prompts(REPO / "prompts"), {})(_row(2, manifest))
        assert [q["query"] for q in out["queries"]] == ["a red car", "what colour is the car?"]
        assert [q["origin"] for q in out["queries"]] == ["manifest", "qa"]
        assert srv.count() == 2 + 1 + 2  # no query-generation call


@pytest.mark.parametrize("fault", ["malformed_json", "out_of_range", "wrong_length", "extra_key"])
def test_invalid_reply_is_re_asked_once_then_a_row_error(tmp_path, fault):
    # Requests 1-3 are caption, chapters and queries; then the relevance call, whose reply
    # carries the bounded scores and the pinned array the faults corrupt.
    # One query, so there is a single relevance call; no transport retries, so the server sees
    # exactly the asks and re-asks.
    cfg = lambda srv, d: _cfg(srv, d, queries_per_video=1, max_retries=0)  # noqa: E731
    with FakeLLMServer(script=["ok"] * 3 + [fault, fault]) as srv:
        out = Annotate(cfg(srv, tmp_path), load_prompts(REPO / "prompts"), {})(_row(1))
        assert out["error"] == "annotate:invalid_reply"
        assert srv.count() == 5  # the bad reply and one re-ask
    with FakeLLMServer(script=["ok"] * 3 + [fault, "ok"]) as srv:  # bad, then good: recovered
        out = Annotate(cfg(srv, tmp_path / "b"), load_prompts(REPO / "prompts"), {})(_row(1))
        assert out["error"] is None and srv.count() == 5


def test_persistent_server_errors_become_a_row_error(tmp_path):
    with FakeLLMServer(faults={"500": 1.0}) as srv:
        out = Annotate(_cfg(srv, tmp_path), load_prompts(REPO / "prompts"), {})(_row(1))
        assert out["error"] == "annotate:llm_http_error"
        assert srv.count() == 3  # the openai client's own retries: 1 + max_retries
