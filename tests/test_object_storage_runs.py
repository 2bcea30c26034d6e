"""Runs with their inputs and output on a bucket of a real S3 API (moto's server on 127.0.0.1,
tests/s3_server.py), as a user runs them: `peakclips run` and every reader as subprocesses with
the standard AWS variables; a run killed with SIGKILL and resumed on the bucket; and two runs
started seconds apart on one output, on a local folder and on a bucket."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from peakclips import shards
from peakclips.config import load_config
from peakclips.pipeline import run
from peakclips.verify import verify
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.shards import SHORT_CLIPS, leftovers, run_command, small_manifest, snapshot
from tests.test_resume import RayRuns

pytestmark = [pytest.mark.slow, pytest.mark.s3]


@pytest.fixture
def ray_runs(tmp_path):
    runs = RayRuns(tmp_path)
    yield runs
    runs.cleanup()


def peakclips(*args: str, env: dict | None = None, cwd: Path = REPO, check: bool = True,
              tool: str = "peakclips.cli") -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", tool, *args], cwd=cwd, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, env=env or dict(os.environ), timeout=900)
    if check:
        assert proc.returncode == 0, f"{args[:2]}: {proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_videos_in_and_shards_out_on_a_bucket(s3, tmp_path):
    """Videos and the manifest on the bucket; the run writes there (its endpoint from the config's
    storage_options only); verify, stats, export, report, upload --dry-run, frames, annotator-eval
    and a few peakclips-train steps read the dataset back from the bucket."""
    sample = {json.loads(line)["video_id"]: json.loads(line) for line in open(REPO / "manifests/sample.jsonl")}
    lines = []
    for clip in SHORT_CLIPS:
        row = sample[clip]
        s3.fs.put_file(str(REPO / "manifests" / row["uri"]), f"{s3.name}/videos/{Path(row['uri']).name}")
        lines.append(json.dumps(dict(row, uri=f"videos/{Path(row['uri']).name}")))  # relative to the manifest
    s3.fs.pipe_file(f"{s3.name}/manifest.jsonl", ("\n".join(lines) + "\n").encode())
    out = s3.url("out")
    run_env = {k: v for k, v in os.environ.items() if k != "AWS_ENDPOINT_URL"}
    started = time.monotonic()
    proc = peakclips("run", str(SAMPLE_CONFIG), "--manifest", s3.url("manifest.jsonl"), "--output", out,
                     "--set", f"ingest.allowed_prefixes=[{s3.url('videos/')}]", "--set", "clip.enabled=false",
                     "--set", f"annotator.reference_dir={REPO / 'manifests/reference'}", "--set", "ray.num_cpus=2",
                     "--set", "frames.num_candidates=32", "--set", f"storage_options.s3.endpoint_url={s3.server.endpoint}",
                     env=run_env)
    print(f"run on the bucket: {time.monotonic() - started:.0f} s")
    assert "building 1 shard(s) into " + out in proc.stdout
    assert s3.keys() == ["manifest.jsonl", "out/peakclips-000000.parquet", "out/peakclips-000000.tar",
                         "out/peakclips-000000_stats.json"] + sorted(f"videos/{Path(sample[c]['uri']).name}" for c in SHORT_CLIPS)
    assert not [p for m, p, _ in s3.requests() if m == "PUT" and ".tmp-" in p]  # no temporary name, ever

    assert "verified 1 shard(s)" in peakclips("verify", out).stdout
    stats = json.loads(peakclips("stats", out, "--json").stdout)
    assert stats["videos"]["total"] == 3 and stats["videos"]["error"] == 0 and stats["videos"]["ok"] >= 2
    assert "wrote" in peakclips("export", "qvhighlights", out, s3.url("exports/qvh.jsonl")).stdout
    assert s3.fs.cat_file(f"{s3.name}/exports/qvh.jsonl").count(b"\n") == stats["queries"]["ok"]
    report = peakclips("report", out, cwd=tmp_path).stdout
    assert report.strip() == "wrote out-report/index.html" and (tmp_path / "out-report/index.html").exists()
    peakclips("upload", out, "--repo-id", "org/name", "--dry-run", cwd=tmp_path)
    assert b"license:" in s3.fs.cat_file(f"{s3.name}/out/README.md")
    assert (tmp_path / "out-hub/data/peakclips-000000.tar").stat().st_size == s3.fs.size(
        f"{s3.name}/out/peakclips-000000.tar")
    frames = json.loads(peakclips("frames", out, "--video-id", SHORT_CLIPS[1], "--query", "0", "--k", "4",
                                  "--json").stdout)
    assert len(frames["timestamps_s"]) == 4
    agreement = peakclips("annotator-eval", out, "--json", str(tmp_path / "eval.json")).stdout
    assert json.loads((tmp_path / "eval.json").read_text()) and "reference" in agreement.lower()

    from tests.train.conftest import TINY

    train = peakclips("sft1", "--config", "pipelines/train/sft1.yaml", *(a for o in TINY + [
        f"run.output_dir={tmp_path / 'runs'}", f"data.shards={out}", "data.num_frames=8", "optim.max_steps=2",
        "optim.save_steps=2"] for a in ("--set", o)), tool="peakclips.train.cli")
    metrics = [json.loads(line) for line in (tmp_path / "runs/sft1/metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2], train.stdout[-2000:]


def test_a_run_killed_on_a_bucket_resumes_to_exactly_the_uninterrupted_output(ray_local, ray_runs, s3, tmp_path):
    manifest, overrides = small_manifest(tmp_path)
    baseline = tmp_path / "baseline"
    run(load_config(SAMPLE_CONFIG, overrides), str(manifest), str(baseline))
    out = s3.url("out")
    cmd = run_command(manifest, out, overrides)

    def staged() -> list[str]:
        return [k for k in s3.keys() if k.startswith("out/_staging/") and k.endswith(".json")]

    def complete() -> list[str]:
        return [k for k in s3.keys() if k.endswith("_stats.json")]

    outcome, _ = ray_runs.run_until(cmd, lambda: staged())  # mid-shard
    assert outcome == "killed" and not complete()
    assert s3.keys().count(f"out/{shards.LOCK}") == 1  # a SIGKILL leaves the lock behind...
    outcome, log = ray_runs.run_until(cmd, lambda: False)  # ...which the re-run takes over: its run is gone
    assert outcome == "exited 0", log[-3000:]
    assert f"taking over the stale lock {s3.url('out/' + shards.LOCK)}: its run (pid " in log
    assert int(log.split(" staged by an earlier run kept")[0].rsplit(", ", 1)[1]) >= 1, log

    local = tmp_path / "from-bucket"
    s3.fs.get(f"{s3.name}/out/", str(local), recursive=True)
    assert snapshot(local) == snapshot(baseline)  # sample by sample, byte for byte; index; stats
    assert leftovers(local) == []  # no lock, staged, scratch or temporary object left
    assert verify(out) == (4, [])


@pytest.mark.parametrize("where", ["folder", "bucket"])
def test_two_runs_started_seconds_apart_on_one_output(ray_runs, s3, tmp_path, where):
    """The second run, with another config, is refused with one sentence naming the lock; the first
    finishes; every shard holds the first run's samples only and verifies; a later run with the
    other config says the complete shards were built with another config."""
    manifest, overrides = small_manifest(tmp_path)
    manifest.write_text("".join(manifest.read_text().splitlines(keepends=True)[:2]))  # one shard of two
    out = str(tmp_path / "out") if where == "folder" else s3.url("out")
    lock = shards.lock_path(out)
    first = ray_runs.start(run_command(manifest, out, overrides))
    deadline = time.monotonic() + 120
    while not (Path(lock).exists() if where == "folder" else s3.fs.exists(lock.removeprefix("s3://"))):
        assert first.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)
    second = peakclips(*run_command(manifest, out, overrides + ["highlights.p1_threshold=4.5"])[3:], check=False)
    assert second.returncode == 2 and second.stdout.count("\n") <= 1, second
    message = second.stderr.strip()
    assert message.startswith(f"peakclips: error: {out} is being written by another run (pid {first.pid} on ")
    assert f"lock {lock}): wait for it to end, or if it is gone, run `peakclips unlock {out}`" in message
    assert "\n" not in message
    assert first.wait(600) == 0
    assert verify(out) == (1, [])  # samples' config hash = the shard's (verify checks each sample)
    later = peakclips(*run_command(manifest, out, overrides + ["highlights.p1_threshold=4.5"])[3:])
    assert "1 complete shard(s) (0) were built with another config" in later.stdout
