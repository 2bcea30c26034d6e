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


def test_scale_report_reads_back_a_partial_scale_json():
    """bench_scale's report over a scale.json read back (string keys), one N without its pool
    part: the tables show what ran, '-' for what did not, and the driver's slope between the N."""
    import json
    import math

    from benchmarks.bench_scale import halves, report

    def pipeline(n, rss):
        done_at = {0: 5.0, **{k: 5.0 + k for k in range(1, n + 1)}}
        return {"wall_s": 10.0 + n, "done_at": done_at, "worker_processes": 11,
                "memory": {"driver_rss": rss, "workers_pss": 2000.0, "object_store": 1.0},
                "stage_seconds": {"ingest": 0.1 * n, "scenes": 0.3 * n}}

    results = {"load_1min": {10: 1.0, 30: 2.0}, 10: {"pipeline": pipeline(10, 250.0), "pool": {
        "wall_s": 8.0, "stage_seconds": {"ingest": 1.0, "scenes": 3.0}}}, 30: {"pipeline": pipeline(30, 251.0)},
        "manifest": {"all": {"rows": 100, "shards": 1, "kept": 100, "wall_s": 0.1, "peak_mib": 50.0}}}
    text = report(json.loads(json.dumps(results)))
    assert "| 10 | 20 s | 30.0 | 60.0 | 60.0 | 1.00 | 75.0 | **0.40** | 250 MiB |" in text
    assert "| 30 | 40 s | 45.0 | 60.0 | 60.0 | 1.00 | - | - | 251 MiB |" in text
    assert "Driver slope from 10 to 30 videos: **+51.2 KiB per video**" in text
    assert math.isnan(halves({0: 1.0, 1: 2.0, 10: 3.0, 20: 3.0}, 20)[1])  # the second half ended within one line


def test_scale_window_table_fits_the_driver_growth_from_the_second_window():
    """The driver's peak RSS per window of videos, from the RSS trace and the progress lines; the
    slope is a least-squares fit over the windows after the first (which holds the start-up)."""
    from benchmarks.bench_scale import window_peaks, window_table

    # 40 videos, one a second from t = 1; windows of 10 end at t = 10, 20, 30, 40. The driver
    # starts at 100 MiB, jumps to 200 in the first window, then grows 1 MiB per window of 10.
    done_at = {k: float(k) for k in range(1, 41)}
    trace = [(0.0, 100)] + [(float(t), 200 + (t - 1) // 10) for t in range(1, 41)]
    run = {"done_at": {str(k): v for k, v in done_at.items()}, "driver_rss_trace": trace}
    assert window_peaks(run, 40, 10) == [200, 201, 202, 203]
    lines = window_table({40: {"pipeline": run}}, [40], window=10)
    assert lines[-1] == "| 40 | 200 | 201 | 202 | 203 | +102.4 KiB/video |"  # 1 MiB per 10 videos, w2..w4
    short = {"done_at": {str(k): float(k) for k in range(1, 16)}, "driver_rss_trace": trace[:16]}
    lines = window_table({15: {"pipeline": short}, 40: {"pipeline": run}}, [15, 40], window=10)
    assert lines[-2] == "| 15 | 200 | 201 |  |  | - |"  # fewer windows: empty cells, no fit from one window
    assert window_table({40: {"pipeline": {"done_at": {}}}}, [40], window=10) == []  # no trace: no table
