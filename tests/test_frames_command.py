"""`peakclips frames` and `peakclips calibrate-clip` on the built sample dataset."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from peakclips.calibrate import auc, calibrate, scene_candidates, similarities
from peakclips.commands.frames import keyframes
from peakclips.config import ClipConfig
from peakclips.dataset import iter_samples
from tests.conftest import REPO, SAMPLE_MANIFEST

pytestmark = pytest.mark.slow


def frames_json(capsys, dataset, video_id, query_id, k, *args, **kwargs):
    """`peakclips frames ... --json` as the library returns it (the CLI prints this dict)."""
    return keyframes(str(dataset), video_id, query_id, k, *args, **kwargs)


def test_every_kept_query_gets_exactly_k_timestamps_inside_its_highlights(sample_output, capsys):
    out, _ = sample_output
    checked = 0
    for _, sample, _ in iter_samples(str(out)):
        for q in sample["queries"]:
            for k in (1, 3, 8):
                r = frames_json(capsys, out, sample["video_id"], q["query_id"], k, "focused")
                times = r["timestamps_s"]
                assert len(times) == k == len(set(times)) and times == sorted(times)
                assert all(any(h["start_s"] <= t < h["end_s"] for h in q["highlights"]) for t in times)
            hybrid = frames_json(capsys, out, sample["video_id"], q["query_id"], 16)
            assert hybrid["mode"] == "hybrid" and len(hybrid["timestamps_s"]) == 16
            assert all(0 <= t < sample["duration_s"] for t in hybrid["timestamps_s"])
            checked += 1
    assert checked >= 10


def test_frames_are_written_from_the_candidates_or_the_source_video(sample_output, capsys, tmp_path):
    out, _ = sample_output
    sample = next(s for _, s, _ in iter_samples(str(out)) if s["video_id"] == "blender_mix_60s")
    q = sample["queries"][0]
    from_candidates = frames_json(capsys, out, "blender_mix_60s", q["query_id"], 5, out=str(tmp_path / "c"))
    from_video = frames_json(capsys, out, "blender_mix_60s", q["query_id"], 5, out=str(tmp_path / "v"),
                             manifest=str(SAMPLE_MANIFEST))
    assert from_candidates["source"] == "candidates" and from_video["source"] == "video"
    assert from_candidates["timestamps_s"] == from_video["timestamps_s"]
    # each candidate used is the one nearest in time
    cand = np.asarray(sample["frame_times_s"])
    for t, c in zip(from_candidates["timestamps_s"], from_candidates["candidate_times_s"]):
        assert abs(c - t) == pytest.approx(np.abs(cand - t).min())
    cuts = [sc["start_s"] for sc in sample["scenes"][1:]]
    compared = 0
    for a, b, t, c in zip(from_candidates["paths"], from_video["paths"], from_candidates["timestamps_s"],
                          from_candidates["candidate_times_s"]):
        small, big = Image.open(a), Image.open(b)
        assert big.size == (sample["width"], sample["height"]) and max(small.size) == 448
        if any(min(c, t) < cut <= max(c, t) for cut in cuts):
            continue  # a cut between the candidate and t: two shots, rightly unlike
        compared += 1
        # the same moment of the film: the candidate (<= 1 candidate step away, same shot) looks alike
        diff = np.abs(np.asarray(big.resize(small.size), dtype=float) - np.asarray(small, dtype=float)).mean()
        assert diff < 40, diff
    assert compared >= 3


def test_unreadable_source_video_falls_back_to_the_candidates(sample_output, capsys, tmp_path):
    out, _ = sample_output
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    r = frames_json(capsys, out, "blender_mix_60s", 0, 2, out=str(tmp_path / "f"), video=str(tmp_path / "broken.mp4"))
    assert r["source"] == "candidates" and "not readable" in r["note"] and len(r["paths"]) == 2


@pytest.mark.parametrize("video_id, query_id, k, message", [
    ("no_such_video", 0, 4, "video no_such_video is not in"),
    ("intel_car_detection_30s", 0, 4, "it was dropped (too_few_scenes)"),
    ("blender_mix_60s", 99, 4, "has no query 99"),
    ("blender_mix_60s", 0, 0, "k must be a positive integer"),
])
def test_cli_refuses_what_the_dataset_does_not_have_with_one_line(sample_output, video_id, query_id, k, message):
    out, _ = sample_output
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "frames", str(out), "--video-id", video_id,
                           "--query", str(query_id), "--k", str(k)], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_cli_text_output_lists_k_timestamps(sample_output):
    out, _ = sample_output
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "frames", str(out), "--video-id",
                           "blender_mix_60s", "--query", "0", "--k", "6"], capture_output=True, text=True, cwd=REPO)
    lines = [line for line in proc.stdout.splitlines() if not line.startswith("#")]
    assert proc.returncode == 0 and len(lines) == 6
    assert all(line.split("\t")[1] in ("P1", "P2") for line in lines)


# calibrate-clip

def test_auc_and_percentiles_on_known_distributions():
    rng = np.random.default_rng(0)
    matched, unmatched = rng.normal(0.15, 0.03, 4000), rng.normal(0.0, 0.03, 20000)
    r = calibrate(matched, unmatched)
    assert r["alpha"] == pytest.approx(0.0, abs=0.003) and r["beta"] == pytest.approx(0.15 + 1.2816 * 0.03, abs=0.004)
    assert r["auc"] == pytest.approx(0.9998, abs=0.001)  # Phi(0.15 / (0.03 * sqrt 2))
    assert auc(unmatched[:100], unmatched[100:300]) == pytest.approx(0.5, abs=0.1)


def test_calibration_pairs_each_caption_with_its_own_scene_and_other_videos_scenes(sample_output):
    from peakclips.clipmodel import ClipModel
    from peakclips.video import decode_mp4

    out, _ = sample_output
    stage = ClipModel(ClipConfig(model="ViT-B-32", pretrained=None))
    matched, unmatched, n_videos = similarities(str(out), stage, max_videos=2)
    samples = [(s, mp4) for _, s, mp4 in iter_samples(str(out), frames=True)][:2]
    sizes = [len(s[0]["scenes"]) for s in samples]
    assert n_videos == 2 and len(matched) == sum(sizes) and len(unmatched) == 2 * sizes[0] * sizes[1]
    # the first matching pair, computed by hand: caption 0 vs the candidates nearest its scene's frames
    sample, mp4 = samples[0]
    frames = decode_mp4(mp4)
    idx = scene_candidates(sample)[0]
    assert len(idx) >= 2 and all(abs(sample["frame_times_s"][i] - t) < 0.5
                                 for i, t in zip(idx, sample["scenes"][0]["frame_times_s"]))
    text = stage.embed_texts([sample["scenes"][0]["caption"]])
    expected = float((text @ stage.embed_images([frames[i] for i in idx]).T).max())
    assert matched[0] == pytest.approx(expected, abs=1e-5)


def test_calibrate_cli_with_random_weights_reports_the_distributions_and_refuses_to_suggest(sample_output):
    out, _ = sample_output
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "calibrate-clip", str(out), "--json",
                           "--set", "clip.model=ViT-B-32", "--set", "clip.pretrained=null", "--max-videos", "3"],
                          capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    r = json.loads(proc.stdout)
    assert proc.returncode == 1 and r["usable"] is False, proc.stderr  # random weights separate nothing
    assert r["videos"] == 3 and r["matching"]["n"] > 5 and r["non_matching"]["n"] > r["matching"]["n"]
    assert 0.2 < r["auc"] < 0.8


def test_calibrate_cli_says_why_when_the_model_cannot_load(sample_output):
    out, _ = sample_output
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "calibrate-clip", str(out)],
                          capture_output=True, text=True, cwd=REPO, env={"PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 2 and "ViT-B-16-SigLIP (webli) could not be loaded" in proc.stderr
