"""The data engine as a selector (`peakclips`): the real pipeline on real local Ray, its annotator
the seeing test server (captions say whether a scene shows the needle; relevance scores those
scenes 5), then clip2frame over the highlights. On the generated needle set it beats uniform
sampling at k = 8, in hit rate and in the same server's answers."""

from __future__ import annotations

import json

import pytest

from peakclips.config import AnnotatorConfig
from peakclips.eval.harness import EvalSettings, evaluate
from tests.vlm_server import SeeingServer

pytestmark = pytest.mark.slow


def test_the_engine_beats_uniform_at_k8(ray_local, needle_set, tmp_path):
    out, items = needle_set
    with SeeingServer() as srv:
        vlm = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="seeing-vlm",
                              cache=str(tmp_path / "vlm.sqlite"), max_retries=0)
        results = evaluate(EvalSettings(
            benchmark=str(out / "benchmark.jsonl"), format="needle", selectors=["uniform", "peakclips"], ks=[8],
            output=str(tmp_path / "eval"), vlm=vlm,
            pipeline_overrides=[f"annotator.base_url={srv.base_url}", "annotator.model=seeing-vlm",
                                f"annotator.cache={tmp_path / 'annotator.sqlite'}", "clip.enabled=false"]),
            log=lambda *_: None)
        annotator_calls = srv.count(path="/chat/completions")
    runs = {r["selector"]: r for r in results["runs"]}
    engine, uniform = runs["peakclips"], runs["uniform"]
    assert engine["hit_rate"] == 1.0 and engine["accuracy"] == 1.0, engine["items"]
    assert uniform["hit_rate"] < 1.0 and uniform["accuracy"] < engine["accuracy"], uniform
    assert all("note" not in e for e in engine["items"])  # every question got highlights
    # the engine's frames are focused (k <= 8): all of them inside the needle's window
    assert engine["frames_in_window"] > 0.9
    # the pipeline really ran: one manifest row per video, its shard, the annotator asked per scene
    (run_dir,) = (tmp_path / "eval" / "engine").iterdir()
    rows = [json.loads(x) for x in (run_dir / "manifest.jsonl").read_text().splitlines()]
    assert [r["queries"] for r in rows] == [[i["question"]] for i in items]
    assert (run_dir / "out" / "peakclips-000000_stats.json").exists()
    assert annotator_calls > 3 * len(items)
