"""Resume and crash safety (SPEC section 7): what an interrupted run leaves, what a re-run
keeps, and a real `peakclips run` killed with SIGKILL at several moments, then re-run, compared
sample by sample with an uninterrupted run."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from peakclips import shards, storage
from peakclips.config import load_config
from peakclips.manifest import plan_tasks, read_manifest
from peakclips.pipeline import run, run_info
from peakclips.resume import fingerprint, prepare, resume_key
from peakclips.schema import RunInfo
from peakclips.stages.shard import StageSample, finalize_shard, staged_reports
from peakclips.verify import verify
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.shards import (
    leftovers,
    run_command,
    small_manifest,
    snapshot,
    stage_in_process,
    staged_files,
)

RUN = RunInfo(config_hash="c0ffee", annotator={"backend": "reference", "model": None, "prompts": []},
              clip_model=None)


def _stage(folder: Path, index: int, key: str, sample=True, mp4=True):
    folder.mkdir(parents=True, exist_ok=True)
    if mp4:
        (folder / f"{index:09d}.mp4").write_bytes(b"frames")
    record = {"index": index, "resume_key": key, "sample": {} if sample else None}
    (folder / f"{index:09d}.json").write_text(json.dumps(record))


def test_prepare_keeps_matching_staged_videos_and_deletes_the_rest(tmp_path):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video_id": f"v{i}", "uri": f"/v{i}.mp4"}) + "\n" for i in range(6)))
    tasks = plan_tasks(read_manifest(manifest), 3)
    run_ = RUN.model_copy(update={"fingerprint": fingerprint(RUN)})
    key = {t.index: resume_key(run_.fingerprint, t.index, t.key, t.row.model_dump_json()) for t in tasks}
    out = tmp_path / "out"
    staging = out / "_staging" / "000000"
    _stage(staging, 0, key[0])  # whole and matching: kept
    _stage(staging, 1, "from-another-config")  # another config or manifest: redone
    _stage(staging, 2, key[2], sample=False, mp4=False)  # a dropped video has no frames: kept
    (staging / "000000001.mp4.tmp-1234abcd").write_bytes(b"half")
    (out / "peakclips-000000.tar.tmp-deadbeef").write_bytes(b"half a tar")
    (out / "peakclips-000000_stats.json").write_text("{}")  # rebuilt shards lose their stats first
    (out / "peakclips-000001.tar.tmp-deadbeef").write_bytes(b"another shard's, not selected")
    plan = prepare(str(out), [0], [t for t in tasks if t.shard_id == 0], run_, force=False)
    assert plan.reused == {0: {0, 2}}
    assert sorted(p.name for p in staging.iterdir()) == ["000000000.json", "000000000.mp4", "000000002.json"]
    assert sorted(p.name for p in out.iterdir()) == ["_staging", "peakclips-000001.tar.tmp-deadbeef"]
    # A changed config changes the fingerprint: nothing is kept.
    other = run_.model_copy(update={"fingerprint": fingerprint(RUN.model_copy(update={"config_hash": "another"}))})
    assert prepare(str(out), [0], [t for t in tasks if t.shard_id == 0], other, force=False).reused == {0: set()}


def test_prepare_with_force_keeps_nothing(tmp_path):
    staging = tmp_path / "_staging" / "000000"
    _stage(staging, 0, "k")
    plan = prepare(str(tmp_path), [0], [], RUN.model_copy(update={"fingerprint": "f"}), force=True)
    assert plan.reused == {} and not staging.exists()


@pytest.mark.slow
def test_a_video_staged_by_this_run_is_not_staged_again(tmp_path):
    """Ray may run a video's shard stage twice (a retried call, a lost result rebuilt): the
    record staged first stands (same file, untouched) and the driver hears the same report."""
    from tests.shards import TEST_RUN, video_row

    out = tmp_path / "out"
    stage = StageSample(str(out), TEST_RUN)
    row = video_row("v0", [0.0, 2.0], 4.0, [], index=0)  # no queries: dropped, no frames needed
    first = stage(dict(row, resume_key="k0"))
    record = out / "_staging" / "000000" / "000000000.json"
    inode, text = record.stat().st_ino, record.read_text()
    assert stage(dict(row, resume_key="k0")) == first
    assert record.stat().st_ino == inode and record.read_text() == text
    assert staged_reports(str(out), [dict(row, resume_key="k0")]) == {0: {k: first[k] for k in first if k != "storage_fault"}}
    assert staged_reports(str(out), [dict(row, resume_key="another run's key")]) == {}
    stage(dict(row, resume_key="k1"))  # another run's key: not this run's record, written anew
    assert json.loads(record.read_text())["resume_key"] == "k1"


def test_a_staged_kept_video_without_its_frames_does_not_stand_for_it(tmp_path):
    folder = tmp_path / "_staging" / "000000"
    _stage(folder, 0, "k0", sample=True, mp4=False)
    _stage(folder, 1, "k1", sample=True, mp4=True)
    assert shards.staged_by_this_run(str(tmp_path), 0, 0, "k0") is None
    assert shards.staged_by_this_run(str(tmp_path), 0, 1, "k1")["resume_key"] == "k1"
    assert shards.staged_by_this_run(str(tmp_path), 0, 2, "k2") is None  # nothing staged


def test_a_finalize_killed_after_publishing_the_tar_is_completed_by_the_rerun(ray_local, tmp_path, monkeypatch):
    manifest, overrides = small_manifest(tmp_path)
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:2]))  # one shard, two videos
    cfg = load_config(SAMPLE_CONFIG, overrides + ["highlights.filters.dedup_queries=false"])
    out, clean = tmp_path / "out", tmp_path / "clean"
    info = run_info(cfg, "clip.enabled is false", str(out / "_scratch"))
    keys = stage_in_process(cfg, manifest, out, info)[0]  # shard 0's videos and resume keys
    shutil.copytree(out / "_staging", clean / "_staging")
    finalize_shard(str(clean), 0, keys, info.model_copy(update={"scratch": str(clean / "_scratch")}))

    real_upload = storage.upload_atomic

    def die_on_parquet(local, uri):
        if uri.endswith(".parquet"):
            raise KeyboardInterrupt("killed")  # what the process sees of a kill: nothing after this line
        real_upload(local, uri)

    monkeypatch.setattr(storage, "upload_atomic", die_on_parquet)
    with pytest.raises(KeyboardInterrupt):
        finalize_shard(str(out), 0, keys, info)
    monkeypatch.undo()
    # The tar is published whole under its final name, but without stats the shard is incomplete.
    assert (out / "peakclips-000000.tar").read_bytes() == (clean / "peakclips-000000.tar").read_bytes()
    assert not (out / "peakclips-000000_stats.json").exists()
    assert verify(str(out))[1] == ["peakclips-000000: no peakclips-000000_stats.json (shard incomplete)"]

    logged = []
    run(cfg, str(manifest), str(out), log=logged.append)
    assert any("0 videos to process, 2 staged by an earlier run kept" in line for line in logged), logged
    assert snapshot(out) == snapshot(clean) and leftovers(out) == []


class RayRuns:
    """`peakclips run` subprocesses, each in its own process group with its own Ray temp dir, so
    a kill stops exactly that run and its Ray processes can be found afterwards by that dir."""

    def __init__(self, logs: Path):
        self.logs = logs
        self.temp_dirs: list[str] = []

    def start(self, cmd: list[str]) -> subprocess.Popen:
        # Short temp dir: Ray's unix socket paths must stay under 108 bytes.
        temp = tempfile.mkdtemp(prefix="pck", dir="/tmp")
        self.temp_dirs.append(temp)
        env = dict(os.environ, RAY_TMPDIR=temp, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
        log = open(self.logs / f"run{len(self.temp_dirs)}.log", "w")
        return subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)

    def run_until(self, cmd: list[str], kill_when, timeout: float = 600) -> tuple[str, str]:
        """Run `cmd`; SIGKILL its whole process group as soon as `kill_when()` is true.
        Returns ("killed" | "exited <rc>", the run's log)."""
        proc = self.start(cmd)
        deadline = time.monotonic() + timeout
        outcome = None
        while outcome is None:
            if kill_when():
                os.killpg(proc.pid, signal.SIGKILL)
                outcome = "killed"
            elif proc.poll() is not None:
                outcome = f"exited {proc.returncode}"
            elif time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                outcome = "timed out"
            time.sleep(0.02)
        proc.wait()
        return outcome, (self.logs / f"run{len(self.temp_dirs)}.log").read_text()

    def processes(self) -> dict[int, str]:
        """Live processes started by these runs (found by their Ray temp dir in the environment)."""
        marks = [f"RAY_TMPDIR={t}\0".encode() for t in self.temp_dirs]
        found = {}
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                environ = (proc / "environ").read_bytes()
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:120].decode(errors="replace")
            except OSError:
                continue
            if any(m in environ for m in marks):
                found[int(proc.name)] = cmdline
        return found

    def cleanup(self) -> None:
        for pid in self.processes():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for t in self.temp_dirs:
            shutil.rmtree(t, ignore_errors=True)


@pytest.fixture
def ray_runs(tmp_path):
    runs = RayRuns(tmp_path)
    yield runs
    runs.cleanup()


def _final_files_match(out: Path, baseline: Path) -> list[str]:
    """Names of files under a final shard name that differ from the uninterrupted run's."""
    return [p.name for p in out.glob("peakclips-*") if ".tmp-" not in p.name
            and p.read_bytes() != (baseline / p.name).read_bytes() and not p.name.endswith("_stats.json")]


@pytest.mark.slow
def test_sigkilled_runs_resume_to_exactly_the_uninterrupted_output(ray_local, ray_runs, tmp_path):
    manifest, overrides = small_manifest(tmp_path)
    baseline, out = tmp_path / "baseline", tmp_path / "out"
    run(load_config(SAMPLE_CONFIG, overrides), str(manifest), str(baseline))
    assert len(list(baseline.glob("*_stats.json"))) == 4 and leftovers(baseline) == []
    cmd = run_command(manifest, out, overrides)

    def staged() -> list[Path]:
        return staged_files(out, "*.json")

    def complete() -> list[Path]:
        return list(out.glob("*_stats.json"))

    # 1: mid-shard, as soon as the first video is staged.
    outcome, _ = ray_runs.run_until(cmd, lambda: staged())
    assert outcome == "killed" and not complete()
    assert _final_files_match(out, baseline) == []
    # 2: the re-run keeps what run 1 staged; killed once a shard is complete, others in flight.
    outcome, log = ray_runs.run_until(cmd, lambda: complete())
    assert outcome == "killed", log[-2000:]
    kept = int(log.split(" staged by an earlier run kept")[0].rsplit(", ", 1)[1])
    assert kept >= 1, log
    assert _final_files_match(out, baseline) == []
    # 3: during start-up, before any work.
    started = time.monotonic()
    outcome, _ = ray_runs.run_until(cmd, lambda: time.monotonic() - started > 3)
    assert outcome == "killed"
    # 4: to the end.
    outcome, log = ray_runs.run_until(cmd, lambda: False)
    assert outcome == "exited 0", log[-3000:]

    assert snapshot(out) == snapshot(baseline)  # sample by sample, byte for byte; index; stats
    assert leftovers(out) == []  # no temporary, staged or scratch file left
    assert verify(str(out)) == (4, [])
    # The killed runs' Ray processes (raylet, GCS, workers) end by themselves once their driver
    # is gone; none may linger holding CPUs or memory.
    deadline = time.monotonic() + 120
    while ray_runs.processes() and time.monotonic() < deadline:
        time.sleep(1)
    assert ray_runs.processes() == {}
