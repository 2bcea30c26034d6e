"""Stage 5: real open_clip (random weights, ViT-B-32: its tokenizer ships with open_clip) on
real JPEG frames; both `clip.required` paths, offline and with an unreachable hub, never
touching the network."""

import io
import logging
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from peakclips.clipmodel import clip_status, load_clip
from peakclips.config import ClipConfig
from peakclips.stages.clipscore import ClipScore
from tests.conftest import REPO, SAMPLE_CONFIG

pytestmark = pytest.mark.model  # loads a neural network on CPU: not in `make test-fast`

TEST_MODEL = {"model": "ViT-B-32", "pretrained": None}


def jpeg(seed: int, size=(160, 90)) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    img = (rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG")
    return buf.getvalue()


def row(n_scenes=3, per_scene=4, queries=("a dog", "a red car", "sunset")):
    return {"error": None, "scenes": [{"scene_id": i} for i in range(n_scenes)],
            "scene_frames": [[jpeg(10 * s + f) for f in range(per_scene)] for s in range(n_scenes)],
            "queries": [{"query_id": i, "query": q} for i, q in enumerate(queries)]}


@pytest.fixture(scope="module")
def stage():
    return ClipScore(ClipConfig(**TEST_MODEL, batch_size=5), use_clip=True)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve or connect fails at once (as on a machine with no route to the hub),
    and is recorded; nothing leaves the machine."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:2])
        raise socket.gaierror(socket.EAI_NONAME, "stubbed resolver: no network in tests")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: refuse(addr))
    return attempts


def test_similarity_is_the_max_cosine_over_each_scenes_frames(stage):
    r = row(n_scenes=2, per_scene=3)
    jpegs = [j for s in r["scene_frames"] for j in s]
    sims = np.array(stage(r)["clip_sims"])
    assert r["error"] is None and sims.shape == (3, 2)
    assert "scene_frames" not in r  # the last stage that reads the JPEGs drops them from the row
    images = stage.clip.embed_images(jpegs)
    texts = stage.clip.embed_texts([q["query"] for q in r["queries"]])
    expected = (texts @ images.T).reshape(3, 2, 3).max(axis=2)
    np.testing.assert_allclose(sims, expected, atol=2e-6)
    assert np.abs(np.linalg.norm(images, axis=1) - 1).max() < 1e-5


def test_mean_reduce(stage):
    mean_stage = ClipScore.__new__(ClipScore)
    mean_stage.__dict__.update(stage.__dict__, cfg=ClipConfig(**TEST_MODEL, batch_size=5, reduce="mean"))
    r = row(n_scenes=2, per_scene=3)
    images = stage.clip.embed_images([j for s in r["scene_frames"] for j in s])
    texts = stage.clip.embed_texts([q["query"] for q in r["queries"]])
    np.testing.assert_allclose(mean_stage(r)["clip_sims"], (texts @ images.T).reshape(3, 2, 3).mean(axis=2),
                               atol=2e-6)


def test_frames_are_embedded_once_in_batches_and_queries_once(stage, monkeypatch):
    image_batches, text_batches = [], []
    encode_image, encode_text = stage.clip.model.encode_image, stage.clip.model.encode_text
    monkeypatch.setattr(stage.clip.model, "encode_image", lambda x: image_batches.append(len(x)) or encode_image(x))
    monkeypatch.setattr(stage.clip.model, "encode_text", lambda x: text_batches.append(len(x)) or encode_text(x))
    stage(row(n_scenes=3, per_scene=4, queries=("q1", "q2", "q3", "q4")))
    assert image_batches == [5, 5, 2]  # 12 frames, batch_size 5, each frame once for all 4 queries
    assert text_batches == [4]


def test_random_weights_are_the_same_in_every_actor():
    a, _, _ = load_clip(ClipConfig(**TEST_MODEL))
    b, _, _ = load_clip(ClipConfig(**TEST_MODEL))
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_bad_frames_become_row_errors(stage):
    r = row()
    r["scene_frames"][1][2] = b"not a jpeg"
    out = stage(r)
    assert out["error"] == "clipscore:bad_frame" and out["clip_sims"] == []
    r = row()
    r["scene_frames"][2] = [b"", b""]
    out = stage(r)
    assert out["error"] == "clipscore:no_scene_frames" and "scene_frames" not in out  # failed rows drop them too


def test_a_video_without_queries_gets_no_similarities(stage):
    assert stage(row(queries=()))["clip_sims"] == []


def test_clip_off_passes_rows_through():
    assert ClipScore(ClipConfig(), use_clip=False)(row())["clip_sims"] == []


def test_offline_hub_default_weights_fail_in_seconds_without_touching_the_network(no_network, monkeypatch, caplog):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    started = time.perf_counter()
    note = clip_status(ClipConfig())  # ViT-B-16-SigLIP / webli, not in the cache
    assert time.perf_counter() - started < 10
    assert note.startswith("open_clip model ViT-B-16-SigLIP (webli) could not be loaded")
    assert "clip.required=false" in note and "\n" not in note
    assert no_network == []
    # open_clip's own "Failed to download weights" log line would say it a second time
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_missing_local_checkpoint_fails_without_asking_the_hub(no_network, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the hub would be allowed
    note = clip_status(ClipConfig(model="ViT-B-32", pretrained="/nonexistent/clip.safetensors"))
    assert "no checkpoint file at /nonexistent/clip.safetensors" in note
    assert no_network == []


def test_unreachable_hub_fails_in_seconds(no_network, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    started = time.perf_counter()
    note = clip_status(ClipConfig())
    assert time.perf_counter() - started < 10
    assert "could not be loaded" in note
    assert no_network, "the hub was asked (and refused by the stubbed resolver)"
    assert constants.HF_HUB_ETAG_TIMEOUT > 2  # timeouts restored after the short-timeout attempt


def test_random_weights_need_no_hub(no_network, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert clip_status(ClipConfig(**TEST_MODEL)) is None and no_network == []


def test_required_clip_that_cannot_load_stops_the_run_at_start_with_one_sentence(tmp_path):
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--output", str(tmp_path / "o"),
         "--set", "clip.required=true", "--set", f"annotator.reference_dir={REPO / 'manifests/reference'}",
         "--manifest", str(REPO / "manifests/sample.jsonl")],
        capture_output=True, text=True, cwd=REPO, timeout=120,
        env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)})
    elapsed = time.perf_counter() - started  # interpreter start and torch/open_clip imports included
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("peakclips: error: open_clip model ViT-B-16-SigLIP (webli) could not be loaded")
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()
    assert proc.stderr.count("Failed to download weights") <= 1  # in our sentence, not a log line before it
    assert elapsed < 30, elapsed
