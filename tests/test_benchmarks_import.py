"""Every benchmark module imports and has the runner's entry point, so `make bench` does not
break unnoticed when a stage's API moves (benchmarks are not run by the tests: they take minutes)."""

import importlib
from pathlib import Path

import pytest

NAMES = sorted(p.stem for p in (Path(__file__).resolve().parent.parent / "benchmarks").glob("bench_*.py"))


@pytest.mark.parametrize("name", NAMES)
def test_benchmark_imports(name):
    module = importlib.import_module(f"benchmarks.{name}")
    assert callable(module.main)


def test_there_are_benchmarks():
    assert {"bench_annotator", "bench_clip", "bench_preprocess", "bench_scene_accuracy"} <= set(NAMES)


def test_clip_benchmark_rows_come_from_the_frames_stage():
    """bench_clip's input is built with the pipeline's own decode pass (its imports are lazy)."""
    from benchmarks.bench_clip import MAX_SCENES, make_rows

    rows = make_rows()
    assert len(rows) == 6
    assert all(0 < len(r["scene_frames"]) <= MAX_SCENES and len(r["scene_frames"]) == len(r["scenes"]) for r in rows)
    assert all(f[:2] == b"\xff\xd8" for r in rows for s in r["scene_frames"] for f in s)  # JPEGs
