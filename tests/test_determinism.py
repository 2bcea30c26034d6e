"""Same inputs and config give the same shards: sample JSON byte for byte (timings aside), the
same order, byte-identical tars. Each source of non-determinism found has its own test."""

import json

import pytest

from peakclips.config import ClipConfig, FramesConfig, load_config
from peakclips.pipeline import run
from peakclips.video import probe
from tests.conftest import REPO, SAMPLE_CONFIG, SAMPLE_MANIFEST
from tests.shards import snapshot


def test_candidate_stream_is_byte_stable_in_a_reused_process():
    """x264's macroblock-tree rate control gave different bytes for identical frames once a
    process had encoded a couple of streams (Ray reuses its workers); peakclips turns it off."""
    import hashlib

    from peakclips.config import ScenesConfig
    from peakclips.stages.scenes import preprocess

    uri = str(REPO / "manifests/videos/sintel_10s_640x360.mp4")
    info = probe(uri)
    cfg = FramesConfig(num_candidates=64, per_scene=1)
    runs = [preprocess(uri, info.duration_s, info.fps, info.width, info.height, ScenesConfig(), cfg) for _ in range(4)]
    assert len({hashlib.sha256(r.candidates_mp4).hexdigest() for r in runs}) == 1
    assert len({hashlib.sha256(b"".join(j for s in r.scene_frames for j in s)).hexdigest() for r in runs}) == 1


@pytest.mark.model
def test_random_clip_weights_are_the_same_in_every_actor():
    import torch

    from peakclips.clipmodel import load_clip

    cfg = ClipConfig(model="ViT-B-32", pretrained=None)  # a tokenizer open_clip bundles (offline)
    a, _, tok = load_clip(cfg)
    torch.manual_seed(1234)  # whatever else ran in the worker before does not matter
    torch.rand(100)
    b, _, _ = load_clip(cfg)
    with torch.inference_mode():
        text = tok(["a dog jumps"])
        assert torch.equal(a.encode_text(text), b.encode_text(text))


def test_config_hash_covers_content_not_machine_or_parallelism():
    base = load_config(SAMPLE_CONFIG)
    same = load_config(SAMPLE_CONFIG, ["annotator.reference_dir=/elsewhere", "ingest.allowed_roots=[/data]",
                                       "ray.num_cpus=64", "annotator.num_actors=8", "ingest.scratch=s3://b/x"])
    assert base.hash() == same.hash()
    for change in ("frames.num_candidates=128", "highlights.p1_threshold=4.8", "annotator.model=m", "shard_size=7"):
        assert load_config(SAMPLE_CONFIG, [change]).hash() != base.hash(), change
    assert base.hash(extra="other reference annotations") != base.hash()


@pytest.mark.slow
def test_two_clean_runs_of_the_sample_give_identical_shards(sample_output, tmp_path):
    first, _ = sample_output
    cfg = load_config(SAMPLE_CONFIG, [f"annotator.reference_dir={REPO / 'manifests/reference'}",
                                      f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]"])
    second = tmp_path / "again"
    run(cfg, str(SAMPLE_MANIFEST), str(second))
    a, b = snapshot(first), snapshot(second)
    assert list(a) == list(b) == ["peakclips-000000"]
    names = [n for n, _ in a["peakclips-000000"]["samples"]]
    kept = json.loads((first / "peakclips-000000_stats.json").read_text())["videos"]["ok"]
    assert kept >= 4 and len(names) == 2 * kept  # KEY.json + KEY.mp4 per kept video
    assert names == [n for n, _ in b["peakclips-000000"]["samples"]]  # same order
    for (name, x), (_, y) in zip(a["peakclips-000000"]["samples"], b["peakclips-000000"]["samples"]):
        assert x == y, name  # JSON and frames, byte for byte
    assert a == b  # index rows and stats (timings and node ids aside) too
    tar = "peakclips-000000.tar"
    assert (first / tar).read_bytes() == (second / tar).read_bytes()
