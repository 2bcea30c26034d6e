"""Stages 2-3 (one decode pass): cuts, scenes, candidates and per-scene frames on synthetic
clips with exact content, on the bundled mix, and on every real-world file kind; scene rules
as properties."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from peakclips.config import FramesConfig, IngestConfig, ScenesConfig
from peakclips.errors import VideoError
from peakclips.stages.ingest import check_video
from peakclips.stages.scenes import Scenes, apply_scene_rules, preprocess
from peakclips.video import decode_mp4
from tests import media
from tests.conftest import REPO

FRAMES = FramesConfig(num_candidates=32, per_scene=3)


def run(path, scenes: ScenesConfig | None = None, frames=FRAMES):
    info = check_video(str(path), IngestConfig())
    return preprocess(str(path), info.duration_s, info.fps, info.width, info.height, scenes or ScenesConfig(), frames)


def assert_consistent(out, m=FRAMES.per_scene, t=FRAMES.num_candidates):
    """Scenes tile [0, duration]; every scene has m frames inside it; T candidates that decode."""
    s = out.scenes
    assert s[0]["start_s"] == 0.0 and s[-1]["end_s"] == pytest.approx(out.duration_s, abs=1e-3)
    assert all(a["end_s"] == b["start_s"] and a["end_frame"] == b["start_frame"] for a, b in zip(s, s[1:]))
    assert s[0]["start_frame"] == 0 and s[-1]["end_frame"] == out.decoded_frames
    for scene, jpegs, times in zip(s, out.scene_frames, out.scene_frame_times):
        assert len(jpegs) == m and all(jpegs)
        assert all(scene["start_s"] - 1e-3 <= x < scene["end_s"] for x in times), (scene, times)
    assert len(out.frame_times_s) == t and out.frame_times_s == sorted(out.frame_times_s)
    assert len(decode_mp4(out.candidates_mp4)) == t


def test_cuts_found_within_one_frame_on_a_synthetic_clip(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[24, 60, 100], n_frames=130)
    out = run(info.path)
    assert out.cut_times_s == pytest.approx(info.cut_times_s, abs=1 / info.fps)
    assert [s["start_frame"] for s in out.scenes] == [0, 24, 60, 100]
    assert out.decoded_frames == 130 and out.duration_s == pytest.approx(130 / info.fps)
    assert not out.truncated
    assert_consistent(out)


def test_scenes_stage_on_the_bundled_mix_finds_the_exact_joins(tmp_path):
    row = {"path": str(REPO / "manifests/videos/blender_mix_60s_640x360.mp4"), "fps": 24.0, "duration_s": 60.0,
           "width": 640, "height": 360, "error": None, "shard_id": 3, "index": 7}
    out = Scenes(ScenesConfig(), FramesConfig(), str(tmp_path))(row)
    assert out["error"] is None
    # the candidates' MP4 goes straight to the shard's staging folder; the row carries its name only
    assert out["candidates"] == str(tmp_path / "_staging" / "000003" / "000000007.mp4")
    assert len(decode_mp4((tmp_path / "_staging" / "000003" / "000000007.mp4").read_bytes())) == 256
    assert not any(isinstance(v, bytes) for v in out.values())
    starts = [s["start_s"] for s in out["scenes"]]
    for join in (10.0, 20.0, 30.0):  # the joins between source clips are exact
        assert join in starts, join
    assert out["scenes"][0]["start_s"] == 0.0 and out["scenes"][-1]["end_s"] == 60.0
    assert out["scenes"][-1]["end_frame"] == 1440 and len(out["frame_times_s"]) == 256
    assert [len(f) for f in out["scene_frames"]] == [4] * len(out["scenes"])


@pytest.mark.parametrize("codec", ["h264", "vp8", "vp9", "av1", "mpeg4"])
def test_every_codec_gives_the_same_cuts(codec, tmp_path):
    try:
        info = media.make_codec_clip(tmp_path / f"c{media.DEFAULT_EXT[codec]}", codec)
    except media.EncoderUnavailable as e:
        pytest.skip(str(e))
    out = run(info.path)
    assert out.cut_times_s == pytest.approx(info.cut_times_s, abs=1 / info.fps)
    assert_consistent(out)


def test_odd_size(tmp_path):
    info = media.make_cuts_clip(tmp_path / "odd.mp4", (20,), 40, size=(321, 241))
    out = run(info.path)
    assert out.cut_times_s == pytest.approx(info.cut_times_s, abs=1 / 24)
    assert_consistent(out)
    assert media.jpeg_rgb(out.scene_frames[0][0]).shape == (240, 320, 3)  # not upscaled; even for 4:2:0


def test_rotated_video_frames_come_out_upright(tmp_path):
    info = media.make_rotated_clip(tmp_path / "r.mp4", rotation=90)
    out = run(info.path, frames=FramesConfig(num_candidates=4, per_scene=1, scene_frame_size=1000))
    w, h = info.extra["display_size"]
    for img in [media.jpeg_rgb(out.scene_frames[0][0]), decode_mp4(out.candidates_mp4)[0]]:
        img = img.astype(int)
        assert img.shape[:2] == (h, w)
        assert img[: h // 10].mean() > img[h // 2:].mean() + 40  # the white band is on top
        assert img[2, 2, 0] > 150 and img[2, 2, 1] < 100  # the red block is top-left


def test_vfr_times_come_from_pts(tmp_path):
    info = media.make_vfr_clip(tmp_path / "v.mp4")
    out = run(info.path, frames=FramesConfig(num_candidates=64, per_scene=2))
    assert out.cut_times_s == pytest.approx(info.cut_times_s, abs=1e-3)  # exact, though fps varies
    pts_times = np.array(info.extra["frame_pts"]) / 90000
    for t in out.frame_times_s + [x for ts in out.scene_frame_times for x in ts]:
        assert np.min(np.abs(pts_times - t)) < 1e-3  # every chosen time is a real frame time
    assert out.scenes[2]["start_frame"] == info.cut_frames[1]  # frame indices, not time x fps
    assert_consistent(out, m=2, t=64)


def test_truncated_file_is_flagged_and_processed_as_far_as_it_decodes(tmp_path):
    info = media.make_truncated_clip(tmp_path / "t.mp4", n_frames=96, keep_fraction=0.75)
    out = run(info.path)
    assert out.truncated and out.decoded_frames == info.extra["decodable_frames"]
    assert out.duration_s == pytest.approx(out.decoded_frames / 24)
    assert out.cut_times_s == pytest.approx(info.cut_times_s, abs=1 / 24)
    assert_consistent(out)  # T candidates still: targets past the end show the last frame


def test_one_frame_is_too_few(tmp_path):
    info = media.make_one_frame_clip(tmp_path / "one.mp4")
    with pytest.raises(VideoError) as e:
        run(info.path)
    assert e.value.code == "too_few_frames"


def test_long_shots_split_evenly_with_frames_in_every_part(tmp_path):
    info = media.make_cuts_clip(tmp_path / "long.mp4", cut_frames=[24], n_frames=24 * 11)
    out = run(info.path, scenes=ScenesConfig(max_scene_s=3.0))
    # 1 s shot, then a 10 s shot in four parts of 2.5 s
    assert [s["start_s"] for s in out.scenes] == pytest.approx([0, 1, 3.5, 6, 8.5], abs=1e-3)
    assert_consistent(out)
    for scene, times in zip(out.scenes[1:], out.scene_frame_times[1:]):
        slice_len = (scene["end_s"] - scene["start_s"]) / 3
        for k, t in enumerate(times):  # within a quarter slice of each slice's midpoint
            assert abs(t - (scene["start_s"] + (k + 0.5) * slice_len)) <= slice_len / 4 + 1 / 24


@pytest.mark.parametrize("detector", ["content", "adaptive", "histogram"])
def test_each_detector_option_drives_the_same_pass(detector, tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[30], n_frames=72)
    out = run(info.path, scenes=ScenesConfig(detector=detector))
    assert any(abs(c - 30 / 24) <= 2 / 24 for c in out.cut_times_s)
    assert_consistent(out)


def test_errors_become_row_errors_of_this_stage(tmp_path):
    path = tmp_path / "gone.mp4"
    row = {"path": str(path), "fps": 24.0, "duration_s": 1.0, "width": 320, "height": 240, "error": None,
           "shard_id": 0, "index": 0}
    out = Scenes(ScenesConfig(), FramesConfig(), str(tmp_path / "out"))(row)
    assert out["error"] == "scenes:not_found" and out["scenes"] == [] and out["candidates"] == ""
    assert not (tmp_path / "out").exists()


@given(cuts=st.lists(st.floats(0.01, 99.99), max_size=30), min_s=st.floats(0.0, 5.0), max_s=st.floats(5.0, 50.0))
def test_scene_rules_tile_the_video(cuts, min_s, max_s):
    duration = 100.0
    scenes = apply_scene_rules(sorted(cuts), duration, min_s, max_s)
    assert scenes[0][0] == 0.0 and scenes[-1][1] == duration
    for (_, b), (c, _) in zip(scenes, scenes[1:]):
        assert b == c  # no gaps, no overlaps
    for a, b in scenes:
        assert b - a <= max_s + 1e-3
    if len(scenes) > 1:
        # merging leaves no scene shorter than min_s, except pieces of an evenly split long scene
        assert all(b - a >= min(min_s, max_s / 2) - 1e-3 for a, b in scenes)


def test_scene_rules_merge_a_tiny_scene_into_its_shorter_neighbour():
    assert apply_scene_rules([5.0, 5.2], 20.0, 1.0, 100.0) == [(0.0, 5.2), (5.2, 20.0)]
    assert apply_scene_rules([], 10.0, 1.0, 4.0) == [(0.0, 3.3333), (3.3333, 6.6667), (6.6667, 10.0)]


def test_scene_rule_keys_are_checked():
    with pytest.raises(ValueError, match="min_scene_s"):
        ScenesConfig(min_scene_s=40.0, max_scene_s=60.0)  # parts of a split scene would be "tiny"
