"""The output is checked before any work and watched during it (SPEC section 7): an output that
is a file, read-only or full fails in seconds with one sentence (exit 2); a disk that fills
mid-run ends the run with one sentence, not a traceback; a run killed while it finalizes a shard
leaves nothing in the system temp folder. Real `peakclips run` processes; the small and
read-only disks are real tmpfs mounts in a private mount namespace (`unshare`)."""

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from peakclips.verify import verify
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.shards import leftovers, run_command, small_manifest
from tests.test_resume import RayRuns

ENV = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(REPO))


def _can_mount() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


needs_mount = pytest.mark.skipif(not _can_mount(), reason="needs unshare -rm (user + mount namespaces) for tmpfs")


def one_video_manifest(folder):
    row = json.loads((REPO / "manifests/sample.jsonl").read_text().splitlines()[0])
    row["uri"] = str(REPO / "manifests" / row["uri"])
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps(row) + "\n")
    return manifest


def peakclips_run(manifest, output, *sets, mount: str | None = None, timeout=300):
    """`peakclips run` on the sample config; `mount` = tmpfs options for a disk mounted at `output`'s parent."""
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(manifest),
           "--output", str(output), "--set", "clip.enabled=false", "--set", "ray.num_cpus=2",
           "--set", f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]",
           "--set", f"annotator.reference_dir={REPO / 'manifests/reference'}", *[a for s in sets for a in ("--set", s)]]
    if mount:
        os.makedirs(output.parent, exist_ok=True)
        script = f'mount -t tmpfs -o {mount} tmpfs "$1" && shift && exec "$@"'
        cmd = ["unshare", "-rm", "sh", "-c", script, "sh", str(output.parent), *cmd]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=ENV, timeout=timeout)
    return proc, time.monotonic() - started


def assert_one_sentence(proc, *words):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("peakclips: error: ") and all(w in last for w in words), last


def test_an_output_that_is_a_file_fails_in_seconds(tmp_path):
    (tmp_path / "out").write_text("not a folder")
    proc, elapsed = peakclips_run(one_video_manifest(tmp_path), tmp_path / "out")
    assert_one_sentence(proc, "is a file")
    assert elapsed < 15 and "Started a local Ray instance" not in proc.stderr


@needs_mount
@pytest.mark.parametrize("mount, words", [("ro,size=4m", "Read-only"), ("size=256k", "No space left")])
def test_a_read_only_or_full_output_fails_in_seconds(tmp_path, mount, words):
    proc, elapsed = peakclips_run(one_video_manifest(tmp_path), tmp_path / "disk" / "out", mount=mount)
    assert_one_sentence(proc, words, "cannot write to")
    assert elapsed < 15 and "Started a local Ray instance" not in proc.stderr


@needs_mount
@pytest.mark.slow
def test_a_disk_that_fills_mid_run_ends_it_with_one_sentence(tmp_path):
    manifest, _ = small_manifest(tmp_path)
    proc, _ = peakclips_run(manifest, tmp_path / "disk" / "out", "frames.num_candidates=64", "shard_size=2",
                            f"annotator.reference_dir={tmp_path / 'reference'}",
                            f"ingest.allowed_roots=[{REPO / 'manifests/videos'},{tmp_path}]", mount="size=1536k")
    assert_one_sentence(proc, "No space left on device", "re-run")


STALL = '''
import os, time
import peakclips.storage as storage
_upload = storage.upload_atomic
def _stalled(local, uri):
    if uri.endswith(".parquet"):  # finalize has built the tar and the index: stall here, to be killed
        open(os.environ["PEAKCLIPS_TEST_FINALIZING"], "w").close()
        time.sleep(600)
    _upload(local, uri)
storage.upload_atomic = _stalled
'''


@pytest.mark.slow
def test_a_kill_during_finalize_leaves_nothing_in_the_system_temp_folder(tmp_path, monkeypatch):
    manifest, overrides = small_manifest(tmp_path)
    out, temp, hook = tmp_path / "out", tmp_path / "systemp", tmp_path / "hook"
    temp.mkdir()
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(STALL)
    marker = tmp_path / "finalizing"
    runs = RayRuns(tmp_path)
    try:
        monkeypatch.setenv("TMPDIR", str(temp))
        monkeypatch.setenv("PYTHONPATH", f"{hook}:{REPO}")
        monkeypatch.setenv("PEAKCLIPS_TEST_FINALIZING", str(marker))
        outcome, log = runs.run_until(run_command(manifest, out, overrides), marker.exists)
        assert outcome == "killed", log[-3000:]
        assert [p.name for p in temp.iterdir() if p.name.startswith("peakclips")] == []
        monkeypatch.setenv("PYTHONPATH", str(REPO))  # the re-run finalizes normally
        outcome, log = runs.run_until(run_command(manifest, out, overrides), lambda: False)
        assert outcome == "exited 0", log[-3000:]
    finally:
        runs.cleanup()
    assert [p.name for p in temp.iterdir() if p.name.startswith("peakclips")] == []
    assert leftovers(out) == [] and verify(str(out)) == (4, [])
