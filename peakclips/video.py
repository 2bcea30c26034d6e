"""Video I/O with PyAV: open any input (local path or fsspec URI), probe it, stream its frames,
and encode the JPEG and MP4 bytes that flow between stages and into shards.

Timestamps always come from the stream's pts (never frame index / nominal fps), so variable
frame rate files get correct times. Frames come out upright: rotation metadata is applied.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Generator, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from fractions import Fraction
from urllib.parse import urlsplit

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


# Demuxers of single-file media: the only ones PeakClips lets FFmpeg use. FFmpeg picks a demuxer
# by content, not by name, and some of its demuxers follow references to other files or URLs:
# hls (an .m3u8 playlist under any name), dash, concat (ffconcat lists), image2 (file-name
# patterns), tee... A playlist inside the allowed roots would make the pipeline decode a file
# outside them. A file whose content FFmpeg reads as anything else is `unsupported_container`.
# (FFmpeg matches each comma-separated name of a demuxer: "mov" is mov/mp4/m4a/3gp, "matroska"
# is matroska/webm.) mov's external data references stay off, FFmpeg's default.
DEMUXERS = "mov,mp4,matroska,webm,avi,mpegts,mpeg,flv,ogg,asf,ivf,h264,hevc,m4v,obu"
SHARD_FORMAT = "mp4"  # the candidate frames in a shard: always opened as MP4, never probed


@contextmanager
def open_media(source: str | bytes, format: str | None = None):
    """The one way PeakClips opens media for reading: a local path, an fsspec URI or bytes.

    Only the `DEMUXERS` allow-list may read it, and it may open no other file: a path is read
    through FFmpeg's `file` protocol alone, a URI or bytes through PyAV's own I/O with no
    protocol at all. `format` forces a demuxer (no probing). Raises VideoError: `not_found`,
    `unsupported_container` (a playlist, a concat list, any demuxer not on the list) or
    `not_a_video`; details never name the path (it may be a scratch file of this machine).
    """
    import av

    with ExitStack() as opened:
        try:
            if isinstance(source, bytes | bytearray):
                fileobj = io.BytesIO(source)
            elif _local(source) is None:
                import fsspec

                fileobj = opened.enter_context(fsspec.open(source, "rb"))
            else:
                fileobj = None
            target, protocols = (fileobj, "none") if fileobj is not None else (_local(source), "file")
            container = opened.enter_context(av.open(target, format=format, container_options={
                "format_whitelist": DEMUXERS, "protocol_whitelist": protocols}))
        except FileNotFoundError:
            raise VideoError("not_found", "no such file") from None
        except av.error.ArgumentError:  # EINVAL: what the allow-lists refuse
            raise VideoError("unsupported_container", "FFmpeg reads it as a format that is not a single-file "
                             f"media container (allowed demuxers: {DEMUXERS})") from None
        except (av.error.FFmpegError, OSError) as e:
            if _lists_other_files(source):
                raise VideoError("unsupported_container", "a playlist or list of other files; only "
                                 "single-file media are read") from None
            raise VideoError("not_a_video", f"cannot open as media: {e.strerror or type(e).__name__}") from None
        yield container


def _local(source: str) -> str | None:
    """The path of a local source (a path or a file:// URI; never handed to fsspec, which would
    read a `::` in a file name as a chained URL), else None."""
    if source[:7].lower() == "file://":
        return source[7:]
    try:
        return source if not urlsplit(source).scheme else None
    except ValueError:  # not a URI at all
        return source


# How playlists and lists of files begin (HLS, ffconcat, DASH, PLS). FFmpeg already refused to
# open the file; this only names the refusal right when FFmpeg did not even recognise the list
# (its hls demuxer ignores a playlist whose name does not end in .m3u8).
LIST_MAGIC = (b"#EXTM3U", b"ffconcat", b"<?xml", b"<MPD", b"[playlist]")


def _lists_other_files(source: str | bytes) -> bool:
    try:
        if isinstance(source, bytes | bytearray):
            head = bytes(source[:64])
        elif (path := _local(source)) is not None:
            with open(path, "rb") as f:
                head = f.read(64)
        else:
            import fsspec

            with fsspec.open(source, "rb") as f:
                head = f.read(64)
    except (OSError, ValueError):
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(LIST_MAGIC)


# Decoder threads by frame size. FFmpeg's frame threads cost 30-45 % more CPU per frame on
# 360p video than one thread (a hand-over between threads per frame), and a Ray node already
# runs one decode pass per CPU; from 1080p on a frame is big enough that they pay off (a
# 1080p video decodes 1.7x faster with them). Measured in docs/benchmarks.md (preprocess).
SINGLE_THREAD_MAX_PIXELS = 1280 * 720


def video_stream(container):
    if not container.streams.video:
        raise VideoError("no_video_stream", "the file has no video stream")
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx.width * ctx.height > SINGLE_THREAD_MAX_PIXELS:
        stream.thread_type = "AUTO"  # frame + slice threads
    else:
        stream.thread_count = 1
    return stream


def probe(uri: str, max_width: int | None = None, max_height: int | None = None) -> Probe:
    """Read the header, check the size limits, then decode the first frame (for rotation).

    The limits are checked on the header's size before anything is decoded (a hostile header
    can claim 8192x8192); they apply to the upright picture, and since rotation is only known
    from the first frame, the header's size must fit one way round or the other.
    """
    import av

    with open_media(uri) as container:
        stream = video_stream(container)
        ctx = stream.codec_context
        if max_width and max_height:
            w, h = ctx.width, ctx.height
            if not ((w <= max_width and h <= max_height) or (h <= max_width and w <= max_height)):
                raise VideoError("resolution_too_large", f"{w}x{h} exceeds {max_width}x{max_height}")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        fps = float(rate)
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        n_frames = stream.frames or int(round(duration * fps))
        try:
            first = next(container.decode(stream), None)
        except av.error.FFmpegError as e:
            raise VideoError("decode_failed", f"first frame does not decode: {e}") from None
        if first is None:
            raise VideoError("no_frames", "the video stream holds no decodable frame")
        rotation = int(first.rotation or 0) % 360
        codec, width, height = ctx.name, ctx.width, ctx.height
        if rotation in (90, 270):
            width, height = height, width
        if max_width and max_height and (width > max_width or height > max_height):
            raise VideoError("resolution_too_large", f"upright {width}x{height} exceeds {max_width}x{max_height}")
    if duration <= 0:
        duration = demux_duration(uri, fps)
    return Probe(duration, fps, n_frames or int(round(duration * fps)), width, height, codec, rotation)


def demux_duration(uri: str, fps: float) -> float:
    """Duration from the packets, for files whose header has none (read, not decoded)."""
    with open_media(uri) as container:
        stream = video_stream(container)
        start, end, count = stream.start_time or 0, None, 0
        for packet in container.demux(stream):
            if packet.size:
                count += 1
                if packet.pts is not None:
                    end = max(end or 0, packet.pts + (packet.duration or 0))
        if end is not None and stream.time_base:
            return float((end - start) * stream.time_base)
        return count / fps if fps else 0.0  # a raw elementary stream: no timestamps at all


@dataclass
class DecodedFrame:
    time_s: float  # presentation time from the stream start
    index: int  # decode order index (0-based)
    frame: object  # av.VideoFrame; convert with to_rgb()
    pts: int  # pts relative to the stream start, in units of time_base
    time_base: Fraction


def iter_frames(uri: str, errors: list[str] | None = None) -> Iterator[DecodedFrame]:
    """Decode every frame once, in presentation order, with pts-based times.

    A stream that breaks after its first frame (a truncated download) ends the iteration
    quietly: callers get the frames that decode, and the error is appended to `errors`.
    """
    import av

    with open_media(uri) as container:
        stream = video_stream(container)
        start = stream.start_time or 0
        tb = Fraction(stream.time_base)
        rate = stream.average_rate or stream.guessed_rate or 25
        step = max(1, round(1 / (rate * tb)))  # for frames without pts (raw elementary streams)
        index, pts = 0, -step
        try:
            for frame in container.decode(stream):
                pts = frame.pts - start if frame.pts is not None else pts + step
                yield DecodedFrame(float(pts * tb), index, frame, pts, tb)
                index += 1
        except av.error.FFmpegError as e:
            if index == 0:
                raise VideoError("decode_failed", f"no frame decodes: {e}") from None
            if errors is not None:
                errors.append(f"decoding stopped after {index} frames: {e}")


DECODE_AHEAD_BYTES = 32 << 20  # decoded frames waiting for the caller, at most (and 32 frames)


def decode_ahead(frames: Generator[DecodedFrame, None, None], width: int, height: int) -> Iterator[DecodedFrame]:
    """`frames` (an `iter_frames` generator of width x height frames) run on a background
    thread, up to DECODE_AHEAD_BYTES of frames ahead of the caller.

    Decoding and demuxing release the GIL, so the next frames decode while the caller scales
    and analyses the last ones, and the decoder keeps going through the caller's pauses (a
    shot's JPEGs): a decode pass then takes about the decoder's time, not the sum (32 frames
    ahead rather than 4: 11 % less wall time on the 60 s mix). A decoding error is raised in the
    caller. A caller that stops early (its own error, or it closes this generator) stops the
    thread, which closes the file.
    """
    depth = max(2, min(32, DECODE_AHEAD_BYTES // max(1, width * height * 3 // 2)))  # yuv420p bytes
    done = object()
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)  # a timeout, to notice `stop` when the caller left
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for frame in frames:
                if not put(frame):
                    return
            put(done)
        except BaseException as e:  # re-raised in the caller's thread
            put(e)
        finally:
            frames.close()

    worker = threading.Thread(target=produce, name="decode-ahead", daemon=True)
    worker.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


class Scaler:
    """Scale and convert decoded frames through one reused swscale context.

    `frame.to_ndarray(width=..., height=...)` builds a new swscale context for every call,
    which costs more than decoding a 360p frame; a reused `VideoReformatter` does not, as long
    as the sizes and formats stay the same: use one Scaler per output. Area averaging is the
    right filter for the large downscales done here. One swscale thread: swscale's default
    ("auto", a slice thread per CPU) spends more on waking its threads than on scaling these
    small frames (10 % of the decode pass's CPU on a 2-core machine, docs/benchmarks.md), and
    a Ray node already runs a decode pass per CPU.
    """

    def __init__(self):
        from av.video.reformatter import Interpolation, VideoReformatter

        self._reformatter = VideoReformatter()
        self._area = Interpolation.AREA

    def array(self, frame, width: int, height: int, fmt: str = "bgr24") -> np.ndarray:
        """The frame as stored (not rotated), scaled; for analysis, where orientation is moot."""
        return self._reformatter.reformat(frame, width, height, fmt, interpolation=self._area,
                                          threads=1).to_ndarray()

    def rgb(self, frame, width: int, height: int) -> np.ndarray:
        """An upright RGB array of (width, height), the size of the *upright* picture."""
        rotation = int(frame.rotation or 0) % 360
        if rotation in (90, 270):
            width, height = height, width
        img = self.array(frame, width, height, "rgb24")
        return np.ascontiguousarray(np.rot90(img, k=rotation // 90)) if rotation else img

    def yuv_frame(self, frame, width: int, height: int):
        """An upright yuv420p `av.VideoFrame` for an encoder (no RGB round trip when upright)."""
        import av

        if int(frame.rotation or 0) % 360:
            return av.VideoFrame.from_ndarray(self.rgb(frame, width, height), format="rgb24")
        return self._reformatter.reformat(frame, width, height, "yuv420p", interpolation=self._area, threads=1)


def to_rgb(frame, width: int | None = None, height: int | None = None) -> np.ndarray:
    """An upright RGB array, optionally scaled to (width, height) of the *upright* frame."""
    if not (width and height):
        width, height = upright_size(frame)
    return Scaler().rgb(frame, width, height)


def upright_size(frame) -> tuple[int, int]:
    if int(frame.rotation or 0) % 180:
        return frame.height, frame.width
    return frame.width, frame.height


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


# x264 settings for every stored frame stream. `mbtree=0`: with macroblock-tree rate control and
# B-frames, x264 (the build PyAV ships) gives different bytes for identical input once the
# process has encoded a few streams (Ray reuses worker processes), so shards would not be
# reproducible; turning it off makes the output byte-stable (tests/test_determinism.py) for
# about 7-18 % more bytes at the same CRF. One thread: no thread-count-dependent decisions.
X264_OPTIONS = {"threads": "1", "x264-params": "mbtree=0"}


def x264_params(extra: str = "") -> str:
    """The x264-params of a stored stream: `extra` (key=value:...) and then ours, last because
    x264 takes the last value of a repeated key."""
    return f"{extra}:{X264_OPTIONS['x264-params']}" if extra else X264_OPTIONS["x264-params"]


class Mp4Writer:
    """Streams frames into an in-memory H.264 MP4, one frame per time unit (1/fps s).

    Candidate streams use fps 1: their true timestamps live in the sample JSON
    (`frame_times_s`); the stream just keeps the order. `peakclips make-needle` writes whole
    videos at their real rate. `X264_OPTIONS` make the bytes deterministic. The preset is a
    measured trade-off (docs/benchmarks.md, candidate storage): `veryfast` writes files as small
    as `medium` at a third of its encoding time.
    """

    def __init__(self, width: int, height: int, crf: int = 23, preset: str = "veryfast", extra_x264_params: str = "",
                 fps: int = 1):
        import av

        self.width, self.height, self.fps = width, height, fps
        self._buf = io.BytesIO()
        self._out = av.open(self._buf, mode="w", format="mp4")
        self._out.metadata["creation_time"] = "1970-01-01T00:00:00Z"
        self._stream = self._out.add_stream("libx264", rate=fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": preset, **X264_OPTIONS,
                                "x264-params": x264_params(extra_x264_params)}
        self.count = 0

    def add(self, frame) -> None:
        """Append an `av.VideoFrame` of the writer's size (any pixel format) or an RGB array."""
        import av

        if isinstance(frame, np.ndarray):
            frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
        # Our own clock: a frame scaled from a decoded one keeps the source's time base, and
        # x264's rate control then sees nonsense durations (a 6x smaller, blurred file).
        frame.pts, frame.time_base = self.count, Fraction(1, self.fps)
        self._out.mux(self._stream.encode(frame))
        self.count += 1

    def finish(self) -> bytes:
        self._out.mux(self._stream.encode(None))
        self._out.close()
        return self._buf.getvalue()


# What a reader of shards decodes at most: the config's bounds (frames.num_candidates <= 4096,
# frames.candidate_size <= 4096) can write nothing larger, so anything larger is not ours.
MAX_SHARD_FRAMES = 4096
MAX_SHARD_SIDE = 4096
MAX_DECODED_BYTES = 2 << 30


def shard_frames(data: bytes) -> Iterator:
    """The frames of a shard's candidate MP4, one at a time, refusing sizes no config produces."""
    with open_media(data, SHARD_FORMAT) as container:
        stream = video_stream(container)
        w, h = stream.codec_context.width, stream.codec_context.height
        if max(w, h) > MAX_SHARD_SIDE:
            raise VideoError("too_large", f"{w}x{h} frames: larger than any candidate PeakClips writes")
        for i, frame in enumerate(container.decode(stream)):
            if i >= MAX_SHARD_FRAMES:
                raise VideoError("too_large", f"more than {MAX_SHARD_FRAMES} frames")
            yield frame


def count_mp4_frames(data: bytes) -> int:
    """Frames in a shard's candidate MP4 (decoded, none kept)."""
    return sum(1 for _ in shard_frames(data))


def decode_mp4(data: bytes) -> list[np.ndarray]:
    """Every frame of a shard's candidate MP4 as RGB, at most MAX_DECODED_BYTES of them."""
    out, size = [], 0
    for frame in shard_frames(data):
        size += frame.width * frame.height * 3
        if size > MAX_DECODED_BYTES:
            raise VideoError("too_large", f"the frames decode to more than {MAX_DECODED_BYTES >> 20} MiB")
        out.append(frame.to_ndarray(format="rgb24"))
    return out
