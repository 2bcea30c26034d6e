"""Checks that every synthetic-media generator in tests/media.py writes what it claims.

Each file is decoded back with PyAV: frame counts, sizes, pts, rotation, truncation,
and the cut positions (the mean absolute difference between consecutive decoded
frames peaks exactly at each true cut).
"""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import av
import numpy as np
import pytest

from tests import media

# --------------------------------------------------------------------------- helpers

def decode_rgb(path) -> tuple[np.ndarray, list[av.VideoFrame]]:
    """All frames as an (n, h, w, 3) uint8 array, plus the frame objects (small clips)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return np.stack([f.to_ndarray(format="rgb24") for f in frames]), frames


def mad_profile(path) -> np.ndarray:
    """d[i] = mean |gray_i - gray_{i-1}| (d[0] = 0), decoded streaming."""
    out, prev = [0.0], None
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            cur = frame.to_ndarray(format="gray").astype(np.int16)
            if prev is not None:
                out.append(float(np.abs(cur - prev).mean()))
            prev = cur
    return np.array(out)


def assert_cuts_are_peaks(d: np.ndarray, cuts: list[int], ratio: float = 5.0) -> None:
    """The len(cuts) largest frame differences are exactly at the cuts, and every cut
    is `ratio` times larger than any non-cut difference."""
    assert sorted(np.argsort(d)[::-1][:len(cuts)].tolist()) == sorted(cuts)
    rest = np.delete(d, [0, *cuts])
    assert d[cuts].min() > ratio * rest.max(), (d[cuts], rest.max())


def histogram(img: np.ndarray, bins: int = 16) -> np.ndarray:
    hist = np.concatenate([np.histogram(img[..., c], bins, (0, 256))[0] for c in range(3)])
    return hist / hist.sum()


# --------------------------------------------------------------------------- hard cuts

def test_cuts_clip_frames_sizes_times(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", (24, 60), 96, fps=24)
    rgb, frames = decode_rgb(info.path)
    assert rgb.shape == (96, 240, 320, 3)
    assert info.n_frames == 96 and info.duration_s == pytest.approx(4.0)
    assert info.cut_times_s == pytest.approx([1.0, 2.5])
    times = [float(f.time) for f in frames]
    assert times == pytest.approx([i / 24 for i in range(96)], abs=1e-3)
    # textured, not flat: each frame has real spatial variation
    assert rgb[::10].std(axis=(1, 2)).min() > 5
    with av.open(info.path) as c:
        stream = c.streams.video[0]
        assert (stream.codec_context.codec.canonical_name, stream.frames) == ("h264", 96)


def test_cuts_clip_mad_peaks_exactly_at_cuts(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", (17, 40, 41 + 22), 90, seed=3)
    d = mad_profile(info.path)
    assert len(d) == 90
    assert_cuts_are_peaks(d, info.cut_frames)
    assert np.median(d) < 4  # mild motion inside shots


def test_cuts_clip_scenedetect_finds_cuts(tmp_path):
    from scenedetect import ContentDetector, detect
    info = media.make_cuts_clip(tmp_path / "c.mp4", (24, 60, 100), 130)
    found = [start.frame_num for start, _ in detect(info.path, ContentDetector())[1:]]
    assert len(found) == len(info.cut_frames)
    for got, want in zip(found, info.cut_frames, strict=True):
        assert abs(got - want) <= 1


def test_cuts_clip_rejects_bad_cuts(tmp_path):
    for cuts in ((0, 5), (5, 5), (50,)):
        with pytest.raises(ValueError):
            media.make_cuts_clip(tmp_path / "x.mp4", cuts, 50)
    with pytest.raises(ValueError):
        media.make_codec_clip(tmp_path / "x.mp4", "h265")


# --------------------------------------------------------------------------- codecs, sizes

CODEC_CASES = [("h264", ".mp4"), ("vp8", ".webm"), ("vp9", ".webm"), ("av1", ".mp4"),
               ("av1", ".webm"), ("mpeg4", ".avi"), ("mpeg4", ".mp4")]


@pytest.mark.parametrize("codec,ext", CODEC_CASES)
def test_codec_clip(tmp_path, codec, ext):
    if media.available_codecs()[codec] is None:
        pytest.skip(f"no {codec} encoder in this PyAV build")
    info = media.make_codec_clip(tmp_path / f"c{ext}", codec)
    with av.open(info.path) as c:
        assert c.streams.video[0].codec_context.codec.canonical_name == codec
    rgb, _ = decode_rgb(info.path)
    assert rgb.shape == (info.n_frames, info.height, info.width, 3)
    assert_cuts_are_peaks(mad_profile(info.path), info.cut_frames)


def test_available_codecs_and_av1_error():
    enc = media.available_codecs()
    assert enc["h264"] == "libx264" and enc["vp9"] == "libvpx-vp9"
    if enc["av1"] is None:
        with pytest.raises(media.EncoderUnavailable):
            media.make_codec_clip("unused.mp4", "av1")


@pytest.mark.parametrize("codec,ext,pix_fmt", [("h264", ".mp4", "yuv444p"),
                                               ("vp8", ".webm", "yuv420p"),
                                               ("vp9", ".webm", "yuv420p"),
                                               ("mpeg4", ".avi", "yuv420p")])
def test_odd_size(tmp_path, codec, ext, pix_fmt):
    info = media.make_codec_clip(tmp_path / f"odd{ext}", codec, (12,), 24, size=(321, 241))
    assert info.pix_fmt == pix_fmt
    rgb, frames = decode_rgb(info.path)
    assert rgb.shape == (24, 241, 321, 3)
    assert frames[0].format.name == pix_fmt
    assert_cuts_are_peaks(mad_profile(info.path), [12])


# --------------------------------------------------------------------------- hard cases

def test_fade_clip(tmp_path):
    info = media.make_fade_clip(tmp_path / "f.mp4", shot_a=30, fade_len=8, black_len=6)
    x = info.extra
    rgb, _ = decode_rgb(info.path)
    assert len(rgb) == info.n_frames == 30 + 8 + 6 + 8 + 30
    brightness = rgb.mean(axis=(1, 2, 3))
    assert brightness[x["black_start"]:x["black_end"]].max() < 3
    assert np.all(np.diff(brightness[x["fade_out_start"] - 1:x["black_start"] + 1]) < 0)
    assert np.all(np.diff(brightness[x["black_end"] - 1:x["fade_in_end"] + 1]) > 0)
    assert info.cut_frames == [x["black_start"] + 6 // 2] == [41]
    assert x["black_start"] <= info.cut_frames[0] < x["black_end"]


def test_dissolve_clip(tmp_path):
    info = media.make_dissolve_clip(tmp_path / "d.mp4", shot_a=30, dissolve_len=12)
    s, e = info.extra["dissolve_start"], info.extra["dissolve_end"]
    assert info.cut_frames == [s + 6] == [36]
    rgb, _ = decode_rgb(info.path)
    d = mad_profile(info.path)
    full_change = np.abs(rgb[e].astype(int) - rgb[s - 1]).mean()
    # the change is spread over the dissolve: no single step looks like a hard cut
    assert d[s:e + 1].max() < 0.35 * full_change
    # the midpoint frame is about halfway between the shots
    mid = rgb[info.cut_frames[0]].astype(int)
    assert abs(np.abs(mid - rgb[s - 1]).mean() - np.abs(mid - rgb[e]).mean()) < 0.3 * full_change


def test_similar_colours_clip(tmp_path):
    info = media.make_similar_colours_clip(tmp_path / "s.mp4", shot_a=36, shot_b=36)
    rgb, _ = decode_rgb(info.path)
    cut = info.cut_frames[0]
    assert cut == 36
    h_a, h_b = histogram(rgb[cut - 1]), histogram(rgb[cut])
    assert np.corrcoef(h_a, h_b)[0, 1] > 0.97  # same colours
    other = media.make_cuts_clip(tmp_path / "o.mp4", (10,), 20)
    rgb_o, _ = decode_rgb(other.path)
    assert np.corrcoef(histogram(rgb_o[9]), histogram(rgb_o[10]))[0, 1] < 0.5
    assert_cuts_are_peaks(mad_profile(info.path), [cut])  # different structure


def test_fast_motion_clip_has_no_cut(tmp_path):
    info = media.make_fast_motion_clip(tmp_path / "m.mp4", n_frames=72, pan_px=24)
    assert info.cut_frames == [] and info.cut_times_s == []
    rgb, _ = decode_rgb(info.path)
    assert len(rgb) == 72
    d = mad_profile(info.path)[1:]
    assert d.min() > 8  # a lot of motion on every frame
    assert d.max() < 1.6 * np.median(d)  # but no isolated, cut-like spike
    # continuity: frame t+1 is best explained as frame t shifted left by the pan
    w = rgb.shape[2]
    for t in range(0, 71, 7):
        a, b = rgb[t].astype(int), rgb[t + 1].astype(int)
        residual = [np.abs(b[:, :w - s] - a[:, s:]).mean() for s in range(48)]
        assert int(np.argmin(residual)) == 24
        assert residual[24] < 0.7 * residual[0]


def test_flash_clip_has_no_cut(tmp_path):
    info = media.make_flash_clip(tmp_path / "fl.mp4", n_frames=60, flash_start=30,
                                 flash_len=2)
    assert info.cut_frames == [] and info.extra["flash_frames"] == [30, 31]
    rgb, _ = decode_rgb(info.path)
    brightness = rgb.mean(axis=(1, 2, 3))
    assert brightness[[30, 31]].min() > 200 and brightness[[29, 32]].max() < 170
    d = mad_profile(info.path)
    before_after = np.abs(rgb[32].astype(int) - rgb[29]).mean()
    assert d[30] > 50 and d[32] > 50  # the flash itself is a big change
    same_gap = np.abs(rgb[29].astype(int) - rgb[26]).mean()  # 3 frames apart, no flash
    assert before_after < 2 * same_gap + 1  # ...but the same scene goes on
    assert before_after < 0.1 * d[30]


def test_flash_one_frame(tmp_path):
    info = media.make_flash_clip(tmp_path / "fl1.mp4", n_frames=30, flash_start=10,
                                 flash_len=1)
    assert info.extra["flash_frames"] == [10] and info.cut_frames == []
    assert len(decode_rgb(info.path)[0]) == 30


# --------------------------------------------------------------------------- long

def test_long_clip_one_minute(tmp_path):
    info = media.make_long_clip(tmp_path / "long.mp4", minutes=1, shot_len_s=4.0)
    n, cuts = media.long_clip_cuts(1, shot_len_s=4.0)
    assert (info.n_frames, info.cut_frames) == (n, cuts) == (1440, cuts)
    assert 8 <= len(cuts) <= 30
    assert all(b - a >= 48 for a, b in zip([0, *cuts], cuts, strict=False))
    d = mad_profile(info.path)
    assert len(d) == 1440
    assert_cuts_are_peaks(d, cuts, ratio=3.0)


def test_long_clip_memory_does_not_grow(tmp_path):
    peaks = []
    for minutes in (0.1, 0.5):
        tracemalloc.start()
        media.make_long_clip(tmp_path / f"l{minutes}.mp4", minutes=minutes, shot_len_s=2)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 1.5 * peaks[0] + 1_000_000, peaks  # 5x the frames, same memory
    assert peaks[1] < 30_000_000


# --------------------------------------------------------------------------- odd files

@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_clip_pyav(tmp_path, rotation):
    info = media.make_rotated_clip(tmp_path / "r.mp4", rotation=rotation, n_frames=6)
    rgb, frames = decode_rgb(info.path)
    assert frames[0].rotation % 360 == rotation
    assert rgb.shape[1:3] == (info.height, info.width)
    upright = np.rot90(rgb[0], rotation // 90)
    assert upright.shape[:2] == (320, 240)  # display size 240x320 (portrait)
    band = info.extra["band_rows"]
    assert upright[:band, 80:].mean() > 230  # white band on top
    assert upright[-band:].mean() < 190 and upright[:, :band].mean() < 230
    red = upright[:band, :40].reshape(-1, 3).mean(axis=0)
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # red block top-left: not mirrored


def test_rotated_clip_ffmpeg_autorotates(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    info = media.make_rotated_clip(tmp_path / "r.mp4", rotation=90, n_frames=4)
    assert (info.width, info.height) == (320, 240)
    raw = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-nostdin", "-i", info.path,
                          "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    upright = np.frombuffer(raw, np.uint8).reshape(320, 240, 3)  # ffmpeg applied it
    assert upright[:info.extra["band_rows"], 80:].mean() > 230
    assert upright[:40, :40].reshape(-1, 3).mean(axis=0)[0] > 200


def test_vfr_clip(tmp_path):
    info = media.make_vfr_clip(tmp_path / "v.mp4")
    x = info.extra
    _, frames = decode_rgb(info.path)
    assert len(frames) == info.n_frames == 60 + 20 + 60
    with av.open(info.path) as c:
        stream = c.streams.video[0]
        assert stream.frames == info.n_frames
        tb = stream.time_base
    times = [float(f.time) for f in frames]
    assert times == pytest.approx([p / 90000 for p in x["frame_pts"]], abs=2 * float(tb))
    steps = np.round(np.diff(times), 4)
    assert set(steps.tolist()) == {0.0333, 0.1}
    assert info.cut_times_s == pytest.approx([1.0, 3.0, 5.0])
    assert info.cut_frames == [30, 70, 110]
    assert [times[c] for c in info.cut_frames] == pytest.approx(info.cut_times_s, abs=1e-3)
    assert info.duration_s == pytest.approx(6.0)
    assert_cuts_are_peaks(mad_profile(info.path), info.cut_frames)


def test_truncated_clip(tmp_path):
    info = media.make_truncated_clip(tmp_path / "t.mp4", n_frames=48, keep_fraction=0.5)
    assert not (tmp_path / "t.mp4.full.mp4").exists()
    with av.open(info.path) as c:
        stream = c.streams.video[0]
        assert stream.frames == info.extra["claimed_frames"] == 48
        decoded, error = 0, None
        try:
            for _ in c.decode(stream):
                decoded += 1
        except av.error.InvalidDataError as exc:
            error = exc
    assert decoded == info.extra["decodable_frames"] == 24 < 48
    assert error is not None
    assert info.kind == "decode_failed"


def test_one_frame_clip(tmp_path):
    info = media.make_one_frame_clip(tmp_path / "one.mp4")
    rgb, _ = decode_rgb(info.path)
    assert rgb.shape == (1, 240, 320, 3) and info.n_frames == 1
    with av.open(info.path) as c:
        assert c.streams.video[0].frames == 1


def test_huge_resolution_clip(tmp_path):
    info = media.make_huge_resolution_clip(tmp_path / "huge.mp4")
    assert Path(info.path).stat().st_size < 1_000_000
    with av.open(info.path) as c:  # header only, no decoding
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height) == (8192, 8192)
        assert c.streams.video[0].frames == 2
    assert info.kind == "too_large"


@pytest.mark.parametrize("ext,codec", [(".mp4", "aac"), (".ogg", "opus")])
def test_audio_only(tmp_path, ext, codec):
    info = media.make_audio_only(tmp_path / f"a{ext}")
    assert info.kind == "no_video_stream" and info.codec == codec
    with av.open(info.path) as c:
        assert len(c.streams.video) == 0 and len(c.streams.audio) == 1
        samples = sum(f.samples for f in c.decode(audio=0))
    assert samples / 48000 == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize("maker", [media.make_zero_byte, media.make_not_a_video,
                                   media.make_random_bytes])
def test_not_videos_fail_to_open(tmp_path, maker):
    info = maker(tmp_path / "bad.mp4")
    assert info.kind in ("empty_file", "not_a_video")
    with pytest.raises(av.error.InvalidDataError):
        av.open(info.path)


def test_random_bytes_size_and_determinism(tmp_path):
    a = media.make_random_bytes(tmp_path / "a.mp4", n=1000, seed=1)
    b = media.make_random_bytes(tmp_path / "b.mp4", n=1000, seed=1)
    assert Path(a.path).read_bytes() == Path(b.path).read_bytes()
    assert len(Path(a.path).read_bytes()) == 1000
    assert Path(media.make_zero_byte(tmp_path / "z.mp4").path).stat().st_size == 0


# --------------------------------------------------------------------------- fault set

MAX_PIXELS = 4096 * 2160


def classify(path: str) -> str:
    """A minimal reference ingest: what each fault-set file should be judged as."""
    p = Path(path)
    if not p.exists():
        return "missing_file"
    if p.stat().st_size == 0:
        return "empty_file"
    try:
        container = av.open(path)
    except av.error.InvalidDataError:
        return "not_a_video"
    with container:
        if not container.streams.video:
            return "no_video_stream"
        stream = container.streams.video[0]
        if stream.codec_context.width * stream.codec_context.height > MAX_PIXELS:
            return "too_large"
        try:
            n = sum(1 for _ in container.decode(stream))
        except av.error.InvalidDataError:
            return "decode_failed"
    return "ok" if n > 0 else "decode_failed"


def test_build_fault_set(tmp_path):
    entries = media.build_fault_set(tmp_path / "faults")
    names = [e["name"] for e in entries]
    assert len(names) == len(set(names))
    kinds = {e["kind"] for e in entries}
    assert kinds == set(media.KINDS)
    for e in entries:
        assert classify(e["path"]) == e["kind"], e["name"]
        if e["kind"] == "ok":
            with av.open(e["path"]) as c:
                assert sum(1 for _ in c.decode(video=0)) == e["n_frames"], e["name"]
    assert {"rotated", "vfr", "odd_size", "one_frame", "truncated", "huge_resolution",
            "audio_only", "zero_byte", "not_a_video", "random_bytes", "missing"} <= set(names)
