"""Stage 3: T candidates and m frames per scene from one pass; times from pts; upright frames."""

import numpy as np
import pytest

from peakclips.config import FramesConfig
from peakclips.stages.frames import midpoints, sample_frames
from peakclips.video import decode_jpeg, decode_mp4, probe
from tests import media


def test_candidates_and_scene_frames(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[48], n_frames=96)
    scenes = [{"start_s": 0.0, "end_s": 2.0}, {"start_s": 2.0, "end_s": 4.0}]
    cfg = FramesConfig(num_candidates=16, per_scene=3)
    mp4, times, jpegs, scene_times = sample_frames(str(info.path), 4.0, scenes, 320, 240, cfg)
    assert len(times) == 16 and times == sorted(times) and 0 <= times[0] and times[-1] < 4.0
    frames = decode_mp4(mp4)
    assert len(frames) == 16 and frames[0].shape == (240, 320, 3)
    assert [len(j) for j in jpegs] == [3, 3] and all(j for js in jpegs for j in js)
    for (a, b), ts in zip([(0, 2), (2, 4)], scene_times):
        assert all(a <= t < b for t in ts)  # each scene's frames come from inside it


def test_rotated_video_frames_come_out_upright(tmp_path):
    info = media.make_rotated_clip(tmp_path / "r.mp4", rotation=90)
    p = probe(str(info.path))
    assert [p.width, p.height] == list(info.extra["display_size"])
    cfg = FramesConfig(num_candidates=4, per_scene=1, scene_frame_size=1000)
    _, _, jpegs, _ = sample_frames(str(info.path), p.duration_s, [{"start_s": 0.0, "end_s": p.duration_s}],
                                   p.width, p.height, cfg)
    img = decode_jpeg(jpegs[0][0]).astype(int)
    h = img.shape[0]
    assert img.shape[:2] == (info.extra["display_size"][1], info.extra["display_size"][0])
    assert img[: h // 10].mean() > img[h // 2:].mean() + 40  # the white band is on top


def test_vfr_times_come_from_pts(tmp_path):
    info = media.make_vfr_clip(tmp_path / "v.mp4")
    p = probe(str(info.path))
    scenes = [{"start_s": 0.0, "end_s": p.duration_s}]
    _, times, _, _ = sample_frames(str(info.path), p.duration_s, scenes, p.width, p.height,
                                   FramesConfig(num_candidates=64, per_scene=1))
    pts_times = np.array(info.extra["frame_pts"]) / 90000
    for t in times:  # every chosen time is a real frame time
        assert np.min(np.abs(pts_times - t)) < 1e-3


def test_midpoints():
    assert midpoints(0.0, 1.0, 4) == pytest.approx([0.125, 0.375, 0.625, 0.875])
