"""Readers of shards and the command line trust nothing they did not write (SPEC section 7): a
tar member that claims gigabytes (PAX sparse) is not allocated, a sample key is never a path out
of `frames --out`, `frames --manifest` checks the manifest's URI as ingest does, and bad command
line input (a manifest that is not UTF-8 text or is a folder, a huge --shards range) is one
sentence with exit code 2."""

import json
import subprocess
import sys
import tarfile
import time
import tracemalloc

import pytest

from peakclips.commands.frames import keyframes
from peakclips.dataset import iter_samples
from peakclips.verify import verify
from tests.conftest import REPO
from tests.shards import one_sample_dataset as dataset
from tests.train.shards import make_sample

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"
SCENES = [(0.0, 2.0, "red"), (2.0, 4.0, "green")]


def sparse_member(name: str, claimed: int) -> tuple[tarfile.TarInfo, bytes]:
    """A PAX (GNU 1.0) sparse member: a few bytes on disk that read back as `claimed` bytes."""
    info = tarfile.TarInfo(name)
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": name,
                        "GNU.sparse.realsize": str(claimed)}
    sparse_map = f"1\n{claimed - 1}\n1\n".encode().ljust(512, b"\0")  # one data byte at the very end
    data = sparse_map + b"}"
    info.size = len(data)
    return info, data


def test_verify_does_not_allocate_a_member_that_claims_gigabytes(tmp_path):
    doc, mp4 = make_sample("v0", SCENES, {"red": [(0.0, 2.0, "P1")]})
    members = [sparse_member("v0.json", 512 << 20), sparse_member("v0.mp4", 512 << 20)]
    out = dataset(tmp_path / "d", doc, mp4, members)
    tracemalloc.start()
    try:
        _, defects = verify(str(out))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert any("v0.json" in d and "not a plain file" in d for d in defects), defects
    assert peak < 64 << 20, f"{peak >> 20} MiB allocated"
    with pytest.raises(ValueError, match="not a plain file"):
        list(iter_samples(str(out)))


def test_verify_refuses_a_member_larger_than_any_we_write(tmp_path):
    doc, mp4 = make_sample("v0", SCENES, {"red": [(0.0, 2.0, "P1")]})
    big = tarfile.TarInfo("v0.json")
    body = b" " * ((64 << 20) + 1)
    big.size = len(body)
    out = dataset(tmp_path / "d", doc, mp4, [(big, body)])
    assert any("claims" in d for d in verify(str(out), decode_frames=False)[1])


def test_frames_out_never_writes_outside_its_folder(tmp_path, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    doc, mp4 = make_sample("v0", SCENES, {"red": [(0.0, 2.0, "P1")]})
    doc = dict(doc, key=f"{outside}/escape")  # the key makes the JPEG names; a path is not a name
    out = dataset(tmp_path / "d", doc, mp4)
    with pytest.raises(ValueError, match="not a safe file name"):
        keyframes(str(out), doc["key"], 0, 2, out=str(tmp_path / "frames"))  # the index names it so
    assert list(outside.iterdir()) == []


def test_frames_manifest_uri_gets_ingests_checks(tmp_path, capsys):
    doc, mp4 = make_sample("v0", SCENES, {"red": [(0.0, 2.0, "P1")]})
    out = dataset(tmp_path / "d", doc, mp4)
    manifest = tmp_path / "m" / "m.jsonl"
    manifest.parent.mkdir()
    for uri, note in [(str(CLIP), "path_not_allowed"), ("http://127.0.0.1:9/v.mp4", "host_not_allowed"),
                      ("ftp://videos.test/v.mp4", "scheme_not_allowed")]:
        manifest.write_text(json.dumps({"video_id": "v0", "uri": uri}) + "\n")
        result = keyframes(str(out), "v0", 0, 2, out=str(tmp_path / "f"), manifest=str(manifest))
        assert result["source"] == "candidates" and note in result["note"], result
    manifest.with_name("v.mp4").write_bytes(CLIP.read_bytes())  # under the manifest's folder: read
    manifest.write_text(json.dumps({"video_id": "v0", "uri": "v.mp4"}) + "\n")
    assert keyframes(str(out), "v0", 0, 2, out=str(tmp_path / "f"), manifest=str(manifest))["source"] == "video"


def cli(*args, timeout=60):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout)
    return proc, time.monotonic() - started


@pytest.mark.parametrize("make, words", [
    (lambda p: p.write_bytes(b'{"video_id": "a", "uri": "\xff\xfe"}\n'), "not UTF-8"),
    (lambda p: p.mkdir(), "is a folder"),
])
def test_a_manifest_that_is_not_text_is_one_sentence(tmp_path, make, words):
    make(tmp_path / "m.jsonl")
    proc, _ = cli("run", "pipelines/sample.yaml", "--manifest", str(tmp_path / "m.jsonl"), "--output", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("peakclips: error: ") and words in proc.stderr


def test_a_huge_shard_range_costs_nothing(tmp_path):
    proc, elapsed = cli("run", "pipelines/sample.yaml", "--shards", "5-2000000000", "--output", str(tmp_path / "o"))
    assert proc.returncode == 2 and "matches none of the manifest's 1 shard(s)" in proc.stderr
    assert elapsed < 10, elapsed


def test_a_file_error_in_a_command_is_one_sentence(tmp_path):
    (tmp_path / "afile").write_text("x")
    doc, mp4 = make_sample("v0", SCENES, {"red": [(0.0, 2.0, "P1")]})
    out = dataset(tmp_path / "d", doc, mp4)
    proc, _ = cli("frames", str(out), "--video-id", "v0", "--query", "0", "--k", "2", "--out", str(tmp_path / "afile" / "x"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "Not a directory" in proc.stderr
