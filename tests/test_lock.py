"""The output lock (peakclips/lock.py, SPEC section 7: "two runs on one output"): exclusive,
stale after a crash, broken by hand with `peakclips unlock`, lost when someone takes it; and the
two checks behind it: `finalize_shard` publishes no staged video of another run, and a re-run
whose config differs from the complete shards says so. Two real `peakclips run` processes on one
folder: tests/test_two_runs.py."""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from peakclips import shards
from peakclips.config import load_config
from peakclips.errors import OutputError
from peakclips.lock import OutputLock, OutputLocked, machine_id, unlock
from peakclips.pipeline import run
from peakclips.stages.shard import StageSample, finalize_shard
from tests.conftest import SAMPLE_CONFIG
from tests.media import candidate_mp4
from tests.shards import TEST_RUN, video_row, write_dataset


def _write_lock(out, **holder):
    out.mkdir(parents=True, exist_ok=True)
    record = {"owner": "someone", "host": "elsewhere", "machine": "elsewhere/boot", "pid": 4242,
              "pid_started": 1.0, "started": "2026-01-01T00:00:00+00:00", "heartbeat": time.time(), **holder}
    (out / shards.LOCK).write_text(json.dumps(record))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], stdin=subprocess.DEVNULL)
    proc.wait()
    return proc.pid


def test_a_second_lock_on_the_same_output_is_refused_with_the_lock_named(tmp_path):
    out = tmp_path / "out"
    with OutputLock(str(out), log=lambda _: None):
        holder = json.loads((out / shards.LOCK).read_text())
        assert holder["pid"] > 0 and holder["machine"] == machine_id()
        with pytest.raises(OutputLocked) as refused:
            OutputLock(str(out)).acquire()
        message = str(refused.value)
        assert str(out / shards.LOCK) in message and f"pid {holder['pid']}" in message
        assert f"peakclips unlock {out}" in message
    assert not (out / shards.LOCK).exists()
    with OutputLock(str(out), log=lambda _: None):  # free again
        pass


def test_a_lock_the_run_created_the_folder_for_leaves_no_folder(tmp_path):
    with OutputLock(str(tmp_path / "a" / "b"), log=lambda _: None):
        assert (tmp_path / "a" / "b" / shards.LOCK).exists()
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("holder, why", [
    ({"machine": machine_id(), "pid": None}, "is gone"),  # this machine, a dead process: stale at once
    ({"heartbeat": time.time() - 600}, "last showed signs of life"),  # another machine, silent for 10 min
    ({"garbage": True}, "not a lock a PeakClips run wrote"),
])
def test_a_stale_lock_is_taken_over_and_said_so(tmp_path, holder, why):
    out = tmp_path / "out"
    if "garbage" in holder:
        out.mkdir()
        (out / shards.LOCK).write_text("{}")
    else:
        _write_lock(out, **(dict(holder, pid=_dead_pid()) if holder.get("pid", 0) is None else holder))
    said = []
    with OutputLock(str(out), log=said.append) as lock:
        assert json.loads((out / shards.LOCK).read_text())["owner"] == lock.owner
    assert len(said) == 1 and said[0].startswith(f"taking over the stale lock {out / shards.LOCK}") and why in said[0]


def test_a_live_lock_from_another_machine_is_refused(tmp_path):
    out = tmp_path / "out"
    _write_lock(out, heartbeat=time.time() - 30)
    with pytest.raises(OutputLocked, match="pid 4242 on elsewhere"):
        OutputLock(str(out)).acquire()


def test_unlock_breaks_a_lock_and_the_run_that_held_it_stops(tmp_path):
    out = tmp_path / "out"
    lost = threading.Event()
    lock = OutputLock(str(out), log=lambda _: None, on_lost=lost.set, heartbeat_s=0.1)
    with lock:
        said = subprocess.run([sys.executable, "-m", "peakclips.cli", "unlock", str(out)], capture_output=True,
                              text=True, stdin=subprocess.DEVNULL)
        assert said.returncode == 0 and said.stdout.startswith(f"removed the lock {out / shards.LOCK}")
        assert "stops at its next heartbeat" in said.stdout
        assert lost.wait(10)
    assert lock.lost.startswith(f"the lock {out / shards.LOCK} was broken")
    assert unlock(str(out)) == f"no lock in {out}"


def _staged_shard(out):
    """Shard 0 of two videos, staged by the real stage writer with resume keys k0 and k1."""
    stage = StageSample(str(out), TEST_RUN)
    for i in range(2):
        row = video_row(f"v{i}", [0.0, 2.0], 4.0, [{"query": "q", "llm": [5, 1],
                                                    "highlights": [{"start_s": 0.0, "end_s": 2.0, "priority": "P1",
                                                                    "scene_ids": [0], "reason": "r"}]}], index=i)
        mp4 = out / "_staging" / "000000" / f"{i:09d}.mp4"
        mp4.parent.mkdir(parents=True, exist_ok=True)
        mp4.write_bytes(candidate_mp4([np.full((16, 16, 3), 40 * j, np.uint8) for j in range(2)]))
        stage(dict(row, resume_key=f"k{i}"))


def test_finalize_publishes_no_staged_video_of_another_run(tmp_path):
    out = tmp_path / "out"
    _staged_shard(out)
    with pytest.raises(OutputError, match=r"staged video\(s\) \[1\] .* were written by another run"):
        finalize_shard(str(out), 0, {0: "k0", 1: "another-run's key"}, TEST_RUN)
    assert not list(out.glob("peakclips-*"))  # nothing published
    finalize_shard(str(out), 0, {0: "k0", 1: "k1"}, TEST_RUN)  # its own: published
    assert shards.is_complete(str(out), 0)


def test_a_rerun_with_another_config_says_so_in_one_line(tmp_path):
    out = write_dataset(tmp_path / "out", [(video_row("v0", [0.0, 2.0], 4.0, []), None)])
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"video_id": "v0", "uri": str(tmp_path / "v0.mp4")}) + "\n")
    said = []
    run(load_config(SAMPLE_CONFIG, ["shard_size=1"]), str(manifest), str(out), log=said.append)
    notes = [line for line in said if "another config" in line]
    assert len(notes) == 1 and notes[0].startswith("1 complete shard(s) (0) were built with another config "
                                                   "(config hash test; this run's is ")
    assert "kept as they are; use --force to rebuild them" in notes[0]
    assert said[-1].startswith("all 1 selected shard(s) already complete")
