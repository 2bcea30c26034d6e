"""Frame sampling (fed by the scenes stage's decode pass): candidates are the frames on screen at
their targets; the per-shot reservoir stays bounded however long the video, and still gives
every scene m frames near its slice midpoints."""

import av
import pytest

from peakclips.config import FramesConfig
from peakclips.stages.frames import Candidates, SceneFrames, pick_scene_frames
from peakclips.video import Scaler, decode_mp4


def solid(value: int, size=(64, 48)):
    frame = av.VideoFrame(*size, "rgb24")
    frame.planes[0].update(bytes([value]) * frame.planes[0].buffer_size)
    return frame


def test_candidates_show_the_frame_on_screen_at_each_target():
    cfg = FramesConfig(num_candidates=4)
    cands = Candidates(4.0, (64, 48), cfg, Scaler())  # targets 0.5, 1.5, 2.5, 3.5
    for value, t in [(10, 0.0), (60, 1.0), (110, 1.6), (160, 1.7), (210, 3.9)]:
        cands.push(solid(value), t)
    mp4, times = cands.finish()
    assert times == [0.0, 1.0, 1.7, 1.7]
    means = [f.mean() for f in decode_mp4(mp4)]
    assert means == pytest.approx([10, 60, 160, 160], abs=4)


def test_candidate_errors_surface_in_the_caller():
    cands = Candidates(1.0, (64, 48), FramesConfig(num_candidates=2), Scaler())
    cands.push(object(), 0.0)  # not a frame: the worker thread fails
    with pytest.raises(AttributeError):
        cands.finish()


def test_candidate_x264_params_reach_the_encoder_and_malformed_ones_are_config_errors():
    import numpy as np

    from peakclips.config import ConfigError, load_config

    rng = np.random.default_rng(0)
    frames = [av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)) for _ in range(6)]
    encoded = {}
    for params in ("partitions=i8x8,i4x4", "partitions=none:ref=2"):
        cfg = load_config(None, ["frames.num_candidates=6", f"frames.candidate_x264_params={params}"]).frames
        cands = Candidates(6.0, (64, 48), cfg, Scaler())
        assert cands.writer._stream.options["x264-params"] == f"{params}:mbtree=0"  # ours last: it wins
        for t, frame in enumerate(frames):
            cands.push(frame, float(t))
        encoded[params], _ = cands.finish()
        assert len(decode_mp4(encoded[params])) == 6
    assert encoded["partitions=i8x8,i4x4"] != encoded["partitions=none:ref=2"]
    for bad in ("partitions i8x8", "ref=1:", "=1"):
        with pytest.raises(ConfigError, match="frames.candidate_x264_params"):
            load_config(None, [f"frames.candidate_x264_params={bad}"])


def feed(sampler: SceneFrames, seconds: float, fps: float, cuts: list[float], track: dict):
    frame, cut_iter = solid(100), iter(cuts)
    next_cut = next(cut_iter, None)
    for i in range(int(seconds * fps)):
        t = i / fps
        if next_cut is not None and t >= next_cut + 0.5:  # detectors report cuts late
            sampler.cut(next_cut)
            next_cut = next(cut_iter, None)
        sampler.push(frame, t)
        track["ring"] = max(track.get("ring", 0), len(sampler._ring))
        track["raw"] = max(track.get("raw", 0), sum(e.frame is not None for e in sampler._shot.entries))
        track["entries"] = max(track.get("entries", 0), len(sampler._shot.entries))


def test_reservoir_memory_does_not_grow_with_the_video():
    cfg = FramesConfig(per_scene=4)
    cuts = [4.0 * k for k in range(1, 450)]  # 30 minutes of 4-second shots
    sampler, track = SceneFrames(cfg, 0.6, 60.0, lag_frames=15, size=(64, 48), scaler=Scaler()), {}
    feed(sampler, 1800.0, 24.0, cuts, track)
    kept = sampler.finish(1800.0)
    assert track["raw"] <= 4 * 4 + 1 and track["ring"] <= 15  # bounded: cap + 1, lag
    assert len(kept) == 4 * 450  # only the output stays: m frames per shot
    scenes = [{"start_s": 4.0 * k, "end_s": 4.0 * (k + 1)} for k in range(450)]
    _, times = pick_scene_frames(kept, scenes, 4)
    for s, ts in zip(scenes, times):
        for k, t in enumerate(ts):  # within a quarter slice (+1 frame) of each midpoint
            assert abs(t - (s["start_s"] + (k + 0.5))) <= 0.25 + 1 / 24


def test_a_long_single_shot_keeps_few_raw_frames():
    cfg = FramesConfig(per_scene=4)
    sampler, track = SceneFrames(cfg, 0.6, 60.0, lag_frames=15, size=(64, 48), scaler=Scaler()), {}
    feed(sampler, 1200.0, 24.0, [], track)
    kept = sampler.finish(1200.0)
    assert track["raw"] <= 4 * 4 + 1  # past max_scene_s the shot keeps JPEGs, a few per minute
    assert track["entries"] <= 1200 / (60 / 16 / 2) + 17
    assert len(kept) == 4 * 20  # 20 parts of 60 s, 4 frames each
    parts = [{"start_s": 60.0 * k, "end_s": 60.0 * (k + 1)} for k in range(20)]
    _, times = pick_scene_frames(kept, parts, 4)
    for s, ts in zip(parts, times):
        for k, t in enumerate(ts):
            assert abs(t - (s["start_s"] + 15 * (k + 0.5))) <= 15 / 4 + 1 / 24


def test_merged_scenes_take_the_nearest_kept_frames():
    cfg = FramesConfig(per_scene=2)
    sampler = SceneFrames(cfg, 0.6, 60.0, lag_frames=3, size=(64, 48), scaler=Scaler())
    for i in range(24 * 5):
        if i == 24 * 4 + 12:
            sampler.cut(4.0)
        sampler.push(solid(50), i / 24)
    kept = sampler.finish(5.0)
    jpegs, times = pick_scene_frames(kept, [{"start_s": 0.0, "end_s": 5.0}], 2)  # the rules merged both
    assert len(jpegs[0]) == 2 and all(jpegs[0])
    assert times[0][0] == pytest.approx(1.25, abs=0.3) and times[0][1] == pytest.approx(3.75, abs=0.6)
