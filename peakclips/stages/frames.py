"""Frame sampling for stage 3 (SPEC: frames), fed frame by frame by the scenes stage's single
decode pass (`peakclips/stages/scenes.py`); nothing here decodes.

Two outputs, with memory that does not grow with the video's length:

* T candidate frames (the selector's input) at the midpoints of T equal slices of the video.
  A frame "at time t" is the frame on screen at t (peakclips/frametimes.py). The targets
  come from the probed duration, so a candidate is known the moment the next frame arrives; it
  is scaled and streamed into the H.264 writer (on a worker thread) at once. Only the latest
  decoded frame is held.
* m frames per scene (captions, CLIP) at the midpoints of m equal slices of each scene. A
  scene is only known after it ends (the detector reports a cut up to a second late, and the
  scene rules split long shots into equal parts), so the current shot's frames wait in a
  bounded **decimating reservoir**: frames at least `step` apart (first min_scene_s / m);
  when it holds more than 4m, every other one is dropped and `step` doubles. Whatever the
  shot's length S, kept frames are then at most 2S/4m apart: each of the m slices has one
  within a quarter slice of its midpoint. Doubling stops before `step` passes
  max_scene_s / 4m, a quarter slice of a part of a split shot; a shot that runs on past that
  (longer than about max_scene_s) keeps a frame per `step`, JPEG-encoded at once (a few per
  minute, like the output itself). A short ring holds new frames for the detector's reporting
  lag, so a late cut still finds the new shot's first frames.
  When a shot closes, the frames nearest the m midpoints of each of its parts (the split the
  scene rules will make) are JPEG-encoded and kept, the rest dropped. At the end,
  `pick_scene_frames` gives each final scene the kept frames nearest its midpoints: the same
  frames, unless the rules merged a tiny last shot into its neighbour.

So memory is: the detector's ring, <= 4m + 1 held frames, the lag ring, and the output (m
JPEGs per scene). Held frames are the decoded frames themselves (no work per frame) up to
1080p; above that, copies scaled to the per-scene size (a 4K frame weighs 12 MB).
"""

from __future__ import annotations

import bisect
import collections
import queue
import threading
from dataclasses import dataclass

import numpy as np

from peakclips.config import FramesConfig
from peakclips.frametimes import OnScreen, nearest
from peakclips.spans import midpoints, split
from peakclips.video import Mp4Writer, Scaler, encode_jpeg

HOLD_DECODED_MAX_PIXELS = 1920 * 1088


class Candidates:
    """The T candidate frames, streamed into an H.264 MP4 as the decode pass goes.

    Scaling and x264 run on a worker thread (both release the GIL), so on a machine with a
    spare core the encoding overlaps the decoding; a short queue bounds the frames in flight.
    """

    def __init__(self, duration_s: float, size: tuple[int, int], cfg: FramesConfig, scaler: Scaler):
        self.screen = OnScreen(midpoints(0.0, duration_s, cfg.num_candidates))
        self.writer = Mp4Writer(*size, crf=cfg.candidate_crf, preset=cfg.candidate_preset,
                                extra_x264_params=cfg.candidate_x264_params)
        self.size, self.scaler = size, scaler
        self.times: list[float] = []
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._worker = threading.Thread(target=self._encode_loop, name="candidates-x264", daemon=True)
        self._worker.start()

    def push(self, frame, t: float) -> None:
        self._serve(self.screen.push(t, frame))

    def _serve(self, shown: list) -> None:
        for _, t, frame in shown:
            self._queue.put(frame)
            self.times.append(round(t, 4))

    def _encode_loop(self) -> None:
        last, scaled = None, None
        while (frame := self._queue.get()) is not None:
            if self._error is None:
                try:
                    if frame is not last:  # a frame shown at several targets is scaled once
                        last, scaled = frame, self.scaler.yuv_frame(frame, *self.size)
                    self.writer.add(scaled)
                except BaseException as e:  # re-raised by finish(), in the caller's thread
                    self._error = e

    def finish(self) -> tuple[bytes, list[float]]:
        """The MP4 and the candidates' times. Targets past the last decoded frame (a file
        shorter than its header says) show that last frame."""
        self._serve(self.screen.finish())
        self.close()
        if self._error is not None:
            raise self._error
        return self.writer.finish(), self.times

    def close(self) -> None:
        """Stop the worker thread (idempotent; call it on any way out of the decode pass)."""
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join()


@dataclass
class _Entry:
    t: float
    frame: object = None  # a decoded av.VideoFrame, or an upright RGB array (large sources)
    jpeg: bytes = b""


class _Reservoir:
    """Frames of one open shot, at least `step` apart; decimated while that keeps step <= max_step."""

    def __init__(self, start: float, step: float, cap: int, max_step: float):
        self.start, self.step, self.cap, self.max_step = start, step, cap, max_step
        self.entries: list[_Entry] = []
        self.long = False  # past decimation: entries accumulate at `step`, as JPEG

    def wants(self, t: float) -> bool:
        return not self.entries or t >= self.entries[-1].t + self.step - 1e-9

    def add(self, entry: _Entry) -> None:
        self.entries.append(entry)
        if len(self.entries) > self.cap and not self.long:
            if 2 * self.step <= self.max_step:
                self.entries = self.entries[::2]
                self.step *= 2
            else:
                self.long = True


class SceneFrames:
    """Per-shot reservoirs that keep m JPEG frames per (anticipated) scene; see module doc."""

    def __init__(self, cfg: FramesConfig, min_scene_s: float, max_scene_s: float, lag_frames: int,
                 size: tuple[int, int], scaler: Scaler):
        self.cfg, self.m, self.max_scene_s = cfg, cfg.per_scene, max_scene_s
        self.size, self.scaler = size, scaler
        self.step0 = min_scene_s / self.m  # m frames even in the shortest scene
        self.max_step = max(self.step0, max_scene_s / (4 * self.m))  # a quarter slice of a split part
        self.cap = 4 * self.m
        self.lag = lag_frames
        self._ring: collections.deque[tuple[int, _Entry]] = collections.deque()
        self._ring_next = 0.0
        self._count = 0
        self._shot = self._new_reservoir(0.0)
        self.kept: list[_Entry] = []  # JPEG frames of closed shots, in time order

    def _new_reservoir(self, start: float) -> _Reservoir:
        return _Reservoir(start, self.step0, self.cap, self.max_step)

    def push(self, frame, t: float) -> None:
        """Every decoded frame, in order. Frames enter the reservoir `lag` frames later."""
        self._count += 1
        if t >= self._ring_next - 1e-9:
            self._ring.append((self._count, _Entry(t, self._hold(frame))))
            self._ring_next = t + self.step0
        while self._ring and self._ring[0][0] <= self._count - self.lag:
            self._offer(self._ring.popleft()[1])

    def cut(self, t: float) -> None:
        """A cut at time t (a frame time not later than the last pushed one)."""
        if t <= self._shot.start:
            return
        while self._ring and self._ring[0][1].t < t:  # frames of the closing shot still waiting
            self._offer(self._ring.popleft()[1])
        late = [e for e in self._shot.entries if e.t >= t]  # only if the lag was too short
        self._shot.entries = [e for e in self._shot.entries if e.t < t]
        self._close(self._shot, t)
        self._shot = self._new_reservoir(t)
        for e in late:
            self._shot.add(e)

    def finish(self, end_s: float) -> list[_Entry]:
        while self._ring:
            self._offer(self._ring.popleft()[1])
        self._close(self._shot, end_s)
        return self.kept

    def _hold(self, frame):
        if frame.width * frame.height <= HOLD_DECODED_MAX_PIXELS:
            return frame
        return self.scaler.rgb(frame, *self.size)

    def _offer(self, entry: _Entry) -> None:
        shot = self._shot
        if shot.wants(entry.t):
            if shot.long:
                entry = self._encoded(entry)  # a few per minute: encode now, drop the frame
            shot.add(entry)

    def _encoded(self, entry: _Entry) -> _Entry:
        if not entry.jpeg:
            img = entry.frame if isinstance(entry.frame, np.ndarray) else self.scaler.rgb(entry.frame, *self.size)
            entry = _Entry(entry.t, None, encode_jpeg(img, self.cfg.jpeg_quality))
        return entry

    def _close(self, shot: _Reservoir, end: float) -> None:
        if not shot.entries:
            return
        times = [e.t for e in shot.entries]
        chosen: dict[int, _Entry] = {}
        for a, b in split(shot.start, end, self.max_scene_s):
            for target in midpoints(a, b, self.m):
                i = nearest(times, target)
                chosen.setdefault(i, shot.entries[i])
        self.kept += [self._encoded(chosen[i]) for i in sorted(chosen)]


def pick_scene_frames(kept: list, scenes: list[dict], m: int) -> tuple[list[list[bytes]], list[list[float]]]:
    """For each scene, the kept frame nearest each of its m midpoints (inside the scene when
    the scene holds any kept frame)."""
    times = [e.t for e in kept]
    jpegs, stamps = [], []
    for s in scenes:
        lo = bisect.bisect_left(times, s["start_s"] - 1e-4)
        hi = bisect.bisect_left(times, s["end_s"] - 1e-4)
        if lo == hi:  # no kept frame inside: the nearest one outside
            lo, hi = 0, len(times)
        picks = [lo + nearest(times[lo:hi], t) for t in midpoints(s["start_s"], s["end_s"], m)]
        jpegs.append([kept[i].jpeg for i in picks])
        stamps.append([round(kept[i].t, 4) for i in picks])
    return jpegs, stamps
