"""Probing and decoding real-world files: limits before decoding, files without timestamps,
corrupt streams, truncation."""

import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from peakclips.errors import VideoError
from peakclips.video import decode_ahead, iter_frames, probe
from tests import media


def scramble_packets(path: Path) -> None:
    """Overwrite every video packet with random bytes; the container header stays valid."""
    with av.open(str(path)) as c:
        packets = [(p.pos, p.size) for p in c.demux(video=0) if p.size]
    data = bytearray(path.read_bytes())
    for pos, size in packets:
        data[pos:pos + size] = np.random.default_rng(0).bytes(size)
    path.write_bytes(bytes(data))


def test_resolution_limit_is_checked_before_any_decoding(tmp_path):
    info = media.make_huge_resolution_clip(tmp_path / "huge.mp4")
    scramble_packets(Path(info.path))  # decoding would fail: only a header check can answer
    with pytest.raises(VideoError) as e:
        probe(info.path, max_width=7680, max_height=4320)
    assert e.value.code == "resolution_too_large"
    with pytest.raises(VideoError) as e:
        probe(info.path)  # no limits: it decodes, and the scrambled stream fails
    assert e.value.code == "decode_failed"


def test_limits_apply_to_the_upright_picture(tmp_path):
    info = media.make_rotated_clip(tmp_path / "r.mp4", rotation=90, display_size=(240, 320))
    assert probe(info.path, max_width=320, max_height=320).width == 240
    with pytest.raises(VideoError, match="upright 240x320"):
        probe(info.path, max_width=320, max_height=240)


def test_corrupt_stream_is_decode_failed(tmp_path):
    info = media.make_corrupt_clip(tmp_path / "c.mp4")
    with pytest.raises(VideoError) as e:
        probe(info.path)
    assert e.value.code == "decode_failed"


def test_raw_stream_without_timestamps_gets_duration_and_times(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", (20,), 48)
    raw = tmp_path / "c.h264"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", info.path, "-c", "copy", "-f", "h264", str(raw)], check=True)
    p = probe(str(raw))
    assert p.duration_s > 0 and p.n_frames == 48
    times = [d.time_s for d in iter_frames(str(raw))]
    assert len(times) == 48 and all(b > a for a, b in zip(times, times[1:]))


def test_truncated_stream_decodes_as_far_as_it_goes(tmp_path):
    info = media.make_truncated_clip(tmp_path / "t.mp4")
    errors: list[str] = []  # FFmpeg's frame-threaded decoder may end quietly instead of raising
    frames = list(iter_frames(info.path, errors))
    assert len(frames) == info.extra["decodable_frames"] < probe(info.path).n_frames
    assert all("decoding stopped" in e for e in errors)


def _live_threads(name: str) -> int:
    import threading

    return sum(t.name == name for t in threading.enumerate())


def test_decode_ahead_yields_what_iter_frames_does_and_raises_its_errors_in_the_caller(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", (20,), 48)
    w, h = info.width, info.height
    ahead = [(d.time_s, d.index, d.frame.to_ndarray().sum()) for d in decode_ahead(iter_frames(info.path), w, h)]
    assert ahead == [(d.time_s, d.index, d.frame.to_ndarray().sum()) for d in iter_frames(info.path)]

    corrupt = media.make_corrupt_clip(tmp_path / "bad.mp4")
    with pytest.raises(VideoError) as e:
        list(decode_ahead(iter_frames(corrupt.path), w, h))
    assert e.value.code == "decode_failed"
    assert _live_threads("decode-ahead") == 0

    truncated = media.make_truncated_clip(tmp_path / "t.mp4")
    errors: list[str] = []
    frames = list(decode_ahead(iter_frames(truncated.path, errors), w, h))
    assert len(frames) == truncated.extra["decodable_frames"]
    assert all("decoding stopped" in e for e in errors)  # set before the caller sees the end


def test_decode_ahead_stops_its_thread_and_closes_the_file_when_the_caller_stops_early(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", (20,), 96)
    w, h = info.width, info.height
    source = iter_frames(info.path)
    frames = decode_ahead(source, w, h)
    first = next(frames)
    assert first.index == 0 and _live_threads("decode-ahead") == 1
    frames.close()  # what a caller's `finally` does, e.g. after its own error
    assert _live_threads("decode-ahead") == 0
    assert source.gi_frame is None  # the decoding generator finished: its `with` closed the file


def test_small_frames_decode_on_one_thread_large_ones_on_ffmpegs_threads(tmp_path):
    from peakclips.video import SINGLE_THREAD_MAX_PIXELS, open_media, video_stream

    small = media.make_cuts_clip(tmp_path / "s.mp4", (20,), 24)
    large = media.make_cuts_clip(tmp_path / "l.mp4", (4,), 8, size=(1920, 1080))
    assert 1920 * 1080 > SINGLE_THREAD_MAX_PIXELS
    with open_media(small.path) as c:
        assert video_stream(c).thread_count == 1
    with open_media(large.path) as c:
        stream = video_stream(c)
        assert stream.thread_type.name == "AUTO" and stream.thread_count == 0  # 0: FFmpeg picks per CPU
