"""Stage 2: cuts found on synthetic clips with exact cut frames and on the bundled clips;
scene rules as properties."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peakclips.config import ScenesConfig
from peakclips.stages.scenes import Scenes, analyse, apply_scene_rules
from tests import media
from tests.conftest import REPO


def test_cuts_found_within_one_frame_on_a_synthetic_clip(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[24, 60, 100], n_frames=130)
    a = analyse(str(info.path), ScenesConfig(), info.fps)
    assert len(a.cut_times_s) == 3
    for found, true in zip(a.cut_times_s, info.cut_times_s):
        assert abs(found - true) <= 1.0 / info.fps + 1e-6
    assert len(a.frame_times_s) == 130
    assert a.duration_s == pytest.approx(130 / info.fps, abs=1e-3)


def test_scenes_stage_on_the_bundled_mix_finds_the_exact_joins():
    row = {"path": str(REPO / "manifests/videos/blender_mix_60s_640x360.mp4"), "fps": 24.0, "error": None}
    out = Scenes(ScenesConfig())(row)
    starts = [s["start_s"] for s in out["scenes"]]
    for join in (10.0, 20.0, 30.0):  # the joins between source clips are exact
        assert any(abs(s - join) < 0.05 for s in starts), join
    assert out["scenes"][0]["start_s"] == 0.0 and out["scenes"][-1]["end_s"] == pytest.approx(60.0)
    assert out["scenes"][-1]["end_frame"] == 1440


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
