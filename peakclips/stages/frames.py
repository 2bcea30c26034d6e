"""Stage 3, frames: the T candidate frames (the selector's input) and m frames per scene
(for captions and CLIP), taken in one sequential decode pass.

A frame "at time t" is the frame on screen at t: the last decoded frame whose pts <= t.
Candidates sit at the midpoints of T equal slices of the video; per-scene frames at the
midpoints of m equal slices of each scene. Candidates are streamed straight into an H.264
encoder (memory stays flat for long videos); per-scene frames become JPEG bytes.
"""

from __future__ import annotations

import io

import numpy as np

from peakclips.config import FramesConfig
from peakclips.errors import VideoError
from peakclips.stages import Stage
from peakclips.video import X264_OPTIONS, encode_jpeg, fit_size, iter_frames, to_rgb


def midpoints(start: float, end: float, n: int) -> list[float]:
    """n times at the midpoints of n equal slices of [start, end).

    >>> midpoints(0.0, 4.0, 2)
    [1.0, 3.0]
    """
    step = (end - start) / n
    return [start + (i + 0.5) * step for i in range(n)]


class _Mp4Writer:
    """Streams RGB frames into an in-memory H.264 MP4 with deterministic settings."""

    def __init__(self, width: int, height: int):
        import av

        self.buf = io.BytesIO()
        self.out = av.open(self.buf, mode="w", format="mp4")
        self.out.metadata["creation_time"] = "1970-01-01T00:00:00Z"
        self.stream = self.out.add_stream("libx264", rate=1)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, "yuv420p"
        self.stream.options = {"crf": "23", **X264_OPTIONS}  # byte-stable output (see video.py)

    def add(self, img: np.ndarray) -> None:
        import av

        for packet in self.stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            self.out.mux(packet)

    def finish(self) -> bytes:
        for packet in self.stream.encode():
            self.out.mux(packet)
        self.out.close()
        return self.buf.getvalue()


def sample_frames(uri: str, duration: float, scenes: list[dict], width: int, height: int, cfg: FramesConfig):
    """Return (mp4 bytes, candidate times, per-scene JPEGs, per-scene frame times)."""
    cand_targets = midpoints(0.0, duration, cfg.num_candidates)
    scene_targets = [midpoints(s["start_s"], s["end_s"], cfg.per_scene) for s in scenes]
    # (time, kind, a, b): kind 0 = candidate a; kind 1 = scene a, slot b. Sorted by time.
    targets = sorted(
        [(t, 0, i, 0) for i, t in enumerate(cand_targets)]
        + [(t, 1, s, k) for s, ts in enumerate(scene_targets) for k, t in enumerate(ts)]
    )
    cw, ch = fit_size(width, height, cfg.candidate_size)
    sw, sh = fit_size(width, height, cfg.scene_frame_size)
    writer = _Mp4Writer(cw, ch)
    cand_times: list[float] = []
    scene_jpegs: list[list[bytes]] = [[b""] * cfg.per_scene for _ in scenes]
    scene_times: list[list[float]] = [[0.0] * cfg.per_scene for _ in scenes]
    pending = 0  # index into targets

    def emit(next_time: float | None) -> None:
        """Serve every target that falls before the next frame's time with the held frame."""
        nonlocal pending
        cache: dict[str, object] = {}  # convert the held frame at most once per size
        while pending < len(targets) and (next_time is None or targets[pending][0] < next_time):
            _, kind, a, b = targets[pending]
            frame, t = held
            if kind == 0:
                if "c" not in cache:
                    cache["c"] = to_rgb(frame, cw, ch)
                writer.add(cache["c"])
                cand_times.append(round(t, 4))
            else:
                if "s" not in cache:
                    cache["s"] = encode_jpeg(to_rgb(frame, sw, sh), cfg.jpeg_quality)
                scene_jpegs[a][b] = cache["s"]
                scene_times[a][b] = round(t, 4)
            pending += 1

    held = None
    for decoded in iter_frames(uri):
        if held is not None:
            emit(decoded.time_s)
        held = (decoded.frame, decoded.time_s)
    if held is None:
        raise VideoError("no_frames", "no frame decoded")
    emit(None)  # the last frame shows until the end
    return writer.finish(), cand_times, scene_jpegs, scene_times


class Frames(Stage):
    name = "frames"
    empty = {"candidates_mp4": b"", "frame_times_s": [], "scene_frames": [], "scene_frame_times": []}

    def __init__(self, cfg: FramesConfig):
        self.cfg = cfg

    def process(self, row: dict) -> dict:
        mp4, times, jpegs, scene_times = sample_frames(
            row["path"], row["duration_s"], row["scenes"], row["width"], row["height"], self.cfg
        )
        return {
            "candidates_mp4": mp4,
            "frame_times_s": times,
            "scene_frames": jpegs,
            "scene_frame_times": scene_times,
        }
