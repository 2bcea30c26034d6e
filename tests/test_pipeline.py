"""End to end on real local Ray: the sample run, read back with webdataset and `datasets`;
bad files; resume; fail-fast; the summary."""

import json
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from peakclips.config import load_config
from peakclips.pipeline import run
from peakclips.schema import INDEX_COLUMNS, Sample
from peakclips.verify import verify
from tests import media
from tests.conftest import REPO, SAMPLE_CONFIG

pytestmark = pytest.mark.slow


def test_sample_run_writes_complete_verified_shards(sample_output):
    out, summary = sample_output
    assert sorted(p.name for p in out.iterdir()) == [
        "peakclips-000000.parquet", "peakclips-000000.tar", "peakclips-000000_stats.json"]
    checked, defects = verify(str(out))
    assert checked == 1 and defects == []
    stats = json.loads((out / "peakclips-000000_stats.json").read_text())
    assert stats["videos"]["total"] == 6 and stats["videos"]["error"] == 0
    assert stats["videos"]["ok"] >= 4
    assert set(stats["stage_seconds"]) == {"ingest", "scenes", "annotate", "clipscore", "highlights", "shard"}
    assert stats["clip_model"]["used"] is False and "could not be loaded" in stats["clip_note"]


def test_index_has_one_row_per_video_and_query(sample_output):
    out, _ = sample_output
    table = pq.read_table(out / "peakclips-000000.parquet")
    assert table.column_names == list(INDEX_COLUMNS)
    rows = table.to_pylist()
    assert {r["video_id"] for r in rows} == {json.loads(line)["video_id"] for line in
                                             (REPO / "manifests/sample.jsonl").read_text().splitlines()}
    for r in rows:
        assert r["status"] in ("ok", "dropped", "error")
        assert (r["status"] == "dropped") == bool(r["drop_reason"])
        assert r["query"] is not None and len(r["llm_scores"]) == r["num_scenes"]


def test_webdataset_reads_every_sample(sample_output):
    import webdataset as wds

    out, _ = sample_output
    table = pq.read_table(out / "peakclips-000000.parquet").to_pylist()
    ok = sorted({r["key"] for r in table if r["status"] == "ok"})
    samples = list(wds.WebDataset(str(out / "peakclips-000000.tar"), shardshuffle=False))
    assert sorted(s["__key__"] for s in samples) == ok
    for s in samples:
        doc = Sample.model_validate_json(s["json"])
        assert len(doc.frame_times_s) == 256 and doc.queries and s["mp4"][4:8] == b"ftyp"


def test_hugging_face_datasets_reads_every_sample(sample_output):
    import datasets

    out, _ = sample_output
    ds = datasets.load_dataset("webdataset", data_files={"train": str(out / "*.tar")}, split="train")
    keys = [r["key"] for r in pq.read_table(out / "peakclips-000000.parquet").to_pylist() if r["status"] == "ok"]
    assert ds.num_rows == len(set(keys))
    row = ds[0]
    assert row["json"]["schema_version"] == "1.0"
    frames = row["mp4"].get_frames_in_range(0, 4)  # decoded by torchcodec
    assert tuple(frames.data.shape[:2]) == (4, 3)


def test_rerun_skips_complete_shards_in_seconds(sample_output):
    out, _ = sample_output
    before = (out / "peakclips-000000.tar").stat().st_mtime_ns
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--output", str(out),
                           "--manifest", str(REPO / "manifests/sample.jsonl")],
                          capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "already complete" in proc.stdout and time.perf_counter() - started < 20
    assert (out / "peakclips-000000.tar").stat().st_mtime_ns == before


def test_bad_files_become_row_errors_and_the_run_finishes(ray_local, tmp_path):
    files = media.build_fault_set(tmp_path / "media")
    long = media.make_cuts_clip(tmp_path / "media/long.mp4", (24,), 24 * 9)  # 9 s > max_duration_s
    files.append({"name": "too_long", **long.as_dict(), "kind": "too_long"})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video_id": f["name"], "uri": str(f["path"])}) + "\n" for f in files))
    cfg = load_config(SAMPLE_CONFIG, [f"ingest.allowed_roots=[{tmp_path / 'media'}]", "clip.enabled=false",
                                      "ingest.max_width=4096", "ingest.max_height=4096", "ingest.max_duration_s=8",
                                      "frames.num_candidates=8"])
    summary = run(cfg, str(manifest), str(tmp_path / "out"))
    rows = pq.read_table(tmp_path / "out/peakclips-000000.parquet").to_pylist()
    by_video = {}
    for r in rows:
        by_video.setdefault(r["video_id"], r)
    assert set(by_video) == {f["name"] for f in files}  # one status row per video, none lost
    expected = {"empty_file": "ingest:empty_file", "not_a_video": "ingest:not_a_video",
                "no_video_stream": "ingest:no_video_stream", "too_large": "ingest:resolution_too_large",
                "missing_file": "ingest:not_found", "too_long": "ingest:too_long",
                "decode_failed": "ingest:decode_failed"}
    # valid files (kind ok, and the truncated one, processed as far as it decodes) pass every
    # stage; the sample config has no reference annotations for them, the only error they may get
    passes = (None, "annotate:no_reference")
    for f in files:
        r = by_video[f["name"]]
        if f["name"] == "one_frame":
            want = ("scenes:too_few_frames",)
        elif f["name"] == "truncated" or f["kind"] == "ok":
            want = passes
        else:
            want = (expected[f["kind"]],)
        assert r["error"] in want, (f["name"], r["error"], r["error_detail"])
        assert r["truncated"] == (f["name"] == "truncated"), f["name"]
    assert by_video["truncated"]["num_scenes"] >= 1
    assert summary.stats[0].videos.total == len(files)


def test_real_config_without_an_endpoint_fails_fast_with_one_sentence(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "run", "pipelines/peakclips.yaml",
                           "--output", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO, env=env, timeout=60)
    elapsed = time.perf_counter() - started
    assert proc.returncode == 2 and elapsed < 5, (elapsed, proc.stderr)
    assert "annotator.base_url" in proc.stderr and "OPENAI_BASE_URL" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0  # one line, no traceback


def test_unreachable_endpoint_fails_fast(tmp_path):
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens here now
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "run", "pipelines/peakclips.yaml",
                           "--output", str(tmp_path / "o"), "--set", f"annotator.base_url=http://127.0.0.1:{port}/v1",
                           "--set", "annotator.model=m"],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    assert proc.returncode == 2 and time.perf_counter() - started < 5
    assert "not reachable" in proc.stderr
