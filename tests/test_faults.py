"""A video whose processing kills or hangs its worker costs that row only (SPEC section 7;
peakclips/faults.py): the deadline, the driver's second chance for videos that did not come back,
and a real `peakclips run` whose worker is SIGKILLed every time it holds the poison video."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
import yaml
from ray import cloudpickle

from peakclips import faults
from peakclips.config import FaultsConfig
from peakclips.driver import ShardTracker, stream
from peakclips.faults import guarded, run_isolated
from peakclips.pipeline import StageSpec
from peakclips.stages import Stage
from tests.conftest import REPO, SAMPLE_CONFIG

cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers get these test stages by value

pytestmark = pytest.mark.faults  # `pytest -m faults`: the fault model's tests


class Doubles(Stage):
    name = "doubles"
    empty = {"x2": 0}

    def process(self, row):
        return {"x2": 2 * row["x"]}


class Hangs(Stage):
    """Never returns for the row whose key is "hang" (as a decoder stuck on a file would)."""

    name = "hangs"
    empty = {}

    def process(self, row):
        if row["key"] == "hang":
            threading.Event().wait()
        return {}


class DiesOn(Stage):
    """Kills its own worker process for the row whose key is "poison" (a segfault, an OOM kill)."""

    name = "dies"
    empty = {}

    def process(self, row):
        if row["key"] == "poison":
            os.kill(os.getpid(), signal.SIGKILL)
        return {}


class Last(Stage):
    name = "last"
    empty = {}

    def __call__(self, row):
        return {"index": row["index"], "error": row.get("error"), "x2": row.get("x2"),
                "stages": sorted(k[2:-2] for k in row if k.startswith("t_"))}


def row(index: int, key: str) -> dict:
    return {"index": index, "key": key, "x": index, "error": None, "duration_s": 1.0}


def test_a_stage_past_its_deadline_leaves_the_row_with_a_timeout(monkeypatch):
    monkeypatch.setattr(faults, "_tainted", None)
    assert guarded(Doubles(), row(3, "ok"), seconds=5)["x2"] == 6
    started = time.monotonic()
    out = guarded(Hangs(), row(1, "hang"), seconds=0.5)
    assert 0.5 <= time.monotonic() - started < 5
    assert out["error"] == "hangs:timeout" and "did not finish within" in out["error_detail"]
    assert faults._tainted  # the stuck thread is still here: the process ends before its next video


def test_deadlines_scale_with_the_duration_within_bounds():
    f = FaultsConfig(timeout_s=60, timeout_per_video_s=2, max_timeout_s=3600)
    assert f.deadline_s(0) == 60 and f.deadline_s(100) == 260 and f.deadline_s(10_000) == 3600
    assert faults.deadline_s("ingest", {"duration_s": None}, f, download_timeout_s=600) == 660


def test_the_stream_runs_what_did_not_come_back_again():
    """A failed dataset is run once more for its unfinished videos; what still did not come back
    goes to the isolated run, which accounts for every one."""
    items = [{"index": i} for i in range(5)]
    attempts, isolated, logged = [], [], []

    def build(todo):
        attempts.append([t["index"] for t in todo])
        if len(attempts) == 1:
            yield {"index": 0}
            yield {"index": 0}  # a retried task reports a video twice
            raise RuntimeError("a node died\nwith details")
        yield from ({"index": t["index"]} for t in todo if t["index"] != 3)  # 3 is lost past its retries

    def isolate(todo):
        isolated.extend(t["index"] for t in todo)
        return [{"index": t["index"], "error": "scenes:worker_lost"} for t in todo]

    out = list(stream(items, build, isolate, staged=lambda todo: {}, log=logged.append))
    assert [r["index"] for r in out] == [0, 1, 2, 4, 3]
    assert attempts == [[0, 1, 2, 3, 4], [1, 2, 3, 4]] and isolated == [3]
    assert "RuntimeError: a node died" in logged[0] and "running each once more on its own" in logged[1]


def test_the_stream_does_not_run_again_what_was_staged_although_its_row_was_lost():
    """Video 1 was staged, but the dataset died before its row reached the driver: it is
    reported from its staged record and not sent to the stages again."""
    items = [{"index": i} for i in range(3)]
    attempts, asked, logged = [], [], []

    def build(todo):
        attempts.append([t["index"] for t in todo])
        if len(attempts) == 1:
            yield {"index": 0}
            raise RuntimeError("a node died")
        yield from ({"index": t["index"]} for t in todo)

    def staged(todo):
        asked.append([t["index"] for t in todo])
        return {t["index"]: {"index": t["index"], "from": "record"} for t in todo if t["index"] == 1}

    out = list(stream(items, build, lambda todo: [], staged, log=logged.append))
    assert out == [{"index": 0}, {"index": 1, "from": "record"}, {"index": 2}]
    assert attempts == [[0, 1, 2], [2]] and asked == [[1, 2]]
    assert "1 of the 2 video(s) whose rows did not come back were staged" in logged[0]


def test_the_tracker_completes_each_shard_once():
    tracker = ShardTracker({0: [0, 1], 1: [2]}, {0: {0}})
    assert tracker.complete() == [] and tracker.is_staged(0, 0) and not tracker.is_staged(0, 1)
    assert tracker.add(0, 1) and not tracker.add(0, 1)
    assert tracker.take(0) == [0, 1] and tracker.is_staged(0, 1)  # forgotten once finalized
    assert not tracker.add(0, 1)


@pytest.mark.slow
def test_isolated_videos_get_worker_lost_and_timeout_and_the_rest_go_on(ray_local):
    specs = [StageSpec("doubles", Doubles, {}, "tasks", 1), StageSpec("dies", DiesOn, {}, "tasks", 1),
             StageSpec("hangs", Hangs, {}, "actors", 0), StageSpec("last", Last, {}, "tasks", 1)]
    cfg = FaultsConfig(retries=1, timeout_s=3, timeout_per_video_s=0)
    logged = []
    rows = [row(0, "fine"), row(1, "poison"), row(2, "hang"), row(3, "also-fine")]
    out = {r["index"]: r for r in run_isolated(rows, specs, cfg, download_timeout_s=0, log=logged.append)}
    assert out[0] == {"index": 0, "error": None, "x2": 0, "stages": ["dies", "doubles", "hangs"]}
    assert out[3]["error"] is None and out[3]["x2"] == 6
    assert out[1]["error"] == "dies:worker_lost" and out[1]["stages"] == ["dies", "doubles", "hangs"]
    assert out[2]["error"] == "hangs:timeout"
    assert sum("trying again (1/1)" in line for line in logged) == 1  # one retry, then the row error
    assert any("dies:worker_lost" in line for line in logged)


# --- a real run: the worker holding the poison video is SIGKILLed, every time --------------------

SHORT = ["tears_of_steel_10s", "sintel_10s"]


def poison_manifest(folder):
    """Two short sample clips and the 60-s mix (long enough to be caught decoding) as `poison_mix`."""
    refs = folder / "reference"
    refs.mkdir(parents=True, exist_ok=True)
    sample = {json.loads(line)["video_id"]: json.loads(line) for line in open(REPO / "manifests/sample.jsonl")}
    rows = []
    for clip, vid in [(SHORT[0], "first"), ("blender_mix_60s", "poison_mix"), (SHORT[1], "last")]:
        ref = yaml.safe_load((REPO / "manifests/reference" / f"{clip}.yaml").read_text())
        (refs / f"{vid}.yaml").write_text(yaml.safe_dump(dict(ref, video_id=vid)))
        rows.append(dict(sample[clip], video_id=vid, uri=str(REPO / "manifests" / sample[clip]["uri"])))
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest, refs


def kill_while_held(title: str, stop: threading.Event, killed: list) -> None:
    """SIGKILL every process whose title says it holds `title` (faults.guarded names it)."""
    while not stop.wait(0.05):
        for p in psutil.process_iter(["cmdline"]):
            cmd = p.info["cmdline"] or []
            if cmd and title in cmd[0]:
                try:
                    p.kill()
                    killed.append(p.pid)
                except psutil.Error:
                    pass


@pytest.mark.slow
def test_a_worker_killed_whenever_it_decodes_the_poison_video_costs_that_row_only(tmp_path):
    manifest, refs = poison_manifest(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(manifest),
           "--output", str(out), "--set", "clip.enabled=false", "--set", f"annotator.reference_dir={refs}",
           "--set", "faults.retries=1", "--set", "frames.num_candidates=32", "--set", "ray.num_cpus=2",
           "--progress", "5"]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=kill_while_held, args=("ray::peakclips scenes poison_mix", stop, killed))
    killer.start()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=dict(os.environ, HF_HUB_OFFLINE="1"), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=900)
    finally:
        stop.set()
        killer.join()
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    stats = json.loads((out / "peakclips-000000_stats.json").read_text())
    assert stats["videos"]["total"] == 3 and stats["errors"] == {"scenes:worker_lost": 1}, stats
    assert stats["videos"]["ok"] + stats["videos"]["dropped"] == 2
    # Ray's retry in the stream (1 + 1), then the driver's isolated run (1 + 1): four deaths; six
    # when the dataset as a whole stopped first and got its second chance (driver.stream), which a
    # loaded machine can make happen. Bounded either way.
    assert 4 <= len(set(killed)) <= 6, killed
    assert "1 video(s) did not come back" in proc.stdout and "poison_mix: scenes:worker_lost" in proc.stdout
    # Without a terminal, progress comes as plain lines (every --progress seconds, and at the end).
    assert "progress: 3/3 videos 100% | ok " in proc.stderr and "\r" not in proc.stderr
