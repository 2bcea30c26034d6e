"""Video I/O with PyAV: open any input (local path or fsspec URI), probe it, stream its frames,
and encode the JPEG and MP4 bytes that flow between stages and into shards.

Timestamps always come from the stream's pts (never frame index / nominal fps), so variable
frame rate files get correct times. Frames come out upright: rotation metadata is applied.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from peakclips.errors import VideoError


@dataclass(frozen=True)
class Probe:
    duration_s: float
    fps: float
    n_frames: int  # from the header when present, else estimated from duration x fps
    width: int  # upright (after rotation)
    height: int
    codec: str
    rotation: int  # degrees counter-clockwise from the display matrix


def open_container(uri: str):
    """Open a local path or any fsspec URI for reading; raise VideoError on anything unreadable."""
    import av

    try:
        if "://" in uri and not uri.startswith("file://"):
            import fsspec

            return av.open(fsspec.open(uri, "rb").open())
        return av.open(uri.removeprefix("file://"))
    except FileNotFoundError:
        raise VideoError("not_found", f"no such file: {uri}") from None
    except av.error.FFmpegError as e:
        raise VideoError("not_a_video", f"cannot open as media: {e}") from None


def video_stream(container):
    if not container.streams.video:
        raise VideoError("no_video_stream", "the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: decoding is the bulk of stages 2-3
    return stream


def probe(uri: str) -> Probe:
    """Read the header (and, for rotation, the first frame)."""
    import av

    with open_container(uri) as container:
        stream = video_stream(container)
        ctx = stream.codec_context
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        fps = float(rate)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        n_frames = stream.frames or int(round(duration * fps))
        rotation = 0
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as e:
            raise VideoError("decode_failed", f"first frame does not decode: {e}") from None
        if first is None:
            raise VideoError("no_frames", "the video stream holds no decodable frame")
        rotation = int(first.rotation or 0) % 360
        width, height = ctx.width, ctx.height
        if rotation in (90, 270):
            width, height = height, width
        return Probe(duration, fps, n_frames, width, height, ctx.name, rotation)


@dataclass
class DecodedFrame:
    time_s: float  # presentation time from the stream start
    index: int  # decode order index (0-based)
    frame: object  # av.VideoFrame; convert with to_rgb()
    pts: int  # pts relative to the stream start, in units of time_base
    time_base: Fraction


def iter_frames(uri: str) -> Iterator[DecodedFrame]:
    """Decode every frame once, in presentation order, with pts-based times."""
    import av

    with open_container(uri) as container:
        stream = video_stream(container)
        start = stream.start_time or 0
        tb = stream.time_base
        index = 0
        try:
            for frame in container.decode(stream):
                pts = (frame.pts if frame.pts is not None else start) - start
                yield DecodedFrame(float(pts * tb), index, frame, pts, Fraction(tb))
                index += 1
        except av.error.FFmpegError as e:
            if index == 0:
                raise VideoError("decode_failed", f"no frame decodes: {e}") from None
            # A damaged tail: keep what decoded; callers see fewer frames than the header said.
            return


def to_rgb(frame, width: int | None = None, height: int | None = None) -> np.ndarray:
    """An upright RGB array, optionally scaled to (width, height) of the *upright* frame."""
    rotation = int(frame.rotation or 0) % 360
    if width and height and rotation in (90, 270):
        width, height = height, width
    img = frame.to_ndarray(format="rgb24", width=width, height=height)
    if rotation:
        img = np.ascontiguousarray(np.rot90(img, k=rotation // 90))
    return img


def fit_size(width: int, height: int, longest: int) -> tuple[int, int]:
    """Scale (width, height) so the longest side is at most `longest`; keep even dimensions."""
    scale = min(1.0, longest / max(width, height))
    w = max(2, int(round(width * scale / 2)) * 2)
    h = max(2, int(round(height * scale / 2)) * 2)
    return w, h


def encode_jpeg(img: np.ndarray, quality: int = 90) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# x264 settings for every stored frame stream. `mbtree=0`: with macroblock-tree rate control and
# B-frames, x264 (the build PyAV ships) gives different bytes for identical input once the
# process has encoded a few streams (Ray reuses worker processes), so shards would not be
# reproducible; turning it off makes the output byte-stable (tests/test_determinism.py) for
# about 7-18 % more bytes at the same CRF. One thread: no thread-count-dependent decisions.
X264_OPTIONS = {"preset": "medium", "threads": "1", "x264-params": "mbtree=0"}


def encode_mp4(frames: list[np.ndarray], crf: int = 23) -> bytes:
    """Encode equally sized RGB frames as a short H.264 stream (one frame per time unit).

    The true timestamps live in the sample JSON (`frame_times_s`); the stream just keeps order.
    """
    import av

    buf = io.BytesIO()
    h, w = frames[0].shape[:2]
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=1)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), **X264_OPTIONS}
        out.metadata["creation_time"] = "1970-01-01T00:00:00Z"
        for img in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()


def decode_mp4(data: bytes) -> list[np.ndarray]:
    import av

    with av.open(io.BytesIO(data)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
