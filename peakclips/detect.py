"""Shot-cut detectors for stage 2 (scenes): PySceneDetect's, and our default built on its API.

`make_detector(name, ...)` returns a PySceneDetect `SceneDetector`: `content`, `adaptive` and
`histogram` are PySceneDetect's own classes with their defaults; `combined` (the default) is
`CombinedDetector` below, chosen by measured F1 at +-2 frames (docs/benchmarks.md, scene
accuracy). It keeps ContentDetector's frame score (mean HSV difference to the previous frame)
and adds four rules, each fixing a failure we measured:

1. adaptive cuts: a frame scoring under the content threshold but `adaptive_ratio` times the
   mean of its two neighbours on each side (AdaptiveDetector's rule) is a cut too: this finds
   cuts between similar-looking shots inside fast action (Sintel 2.42 s and 7.33 s; the
   similar-colours clips) that ContentDetector misses. Conversely a frame above the threshold
   must still stand out from those neighbours (`min_ratio`): a fast pan scores high on every
   frame;
2. transient filter: a candidate is dropped when a frame in the `transient_s` after it looks
   like a frame in the `transient_s` before it (score under threshold / 2): the picture came
   back, so it was a camera flash, a car passing right in front of the lens (Caminandes
   4.29 s) or a flicker, not a cut;
3. dark guard: hue and saturation of near-black pixels are noise, so a pair of frames of which
   one is dark is compared on brightness only (a fade no longer "cuts" on its last dim frame);
4. fades: a run of dark frames between two lit ones is one transition with one cut: at its
   first frame when the picture cut into black, else (a fade) at the middle of the run; other
   candidates within `transient_s` of the run are dropped, and a video that opens dark (a
   fade-in from black) gets no cut there.

Scores use OpenCV on frames already downscaled to `scenes.analysis_width` (`cv2.absdiff` +
`cv2.mean`; equal to ContentDetector's `content_val`, tested). Memory is a ring of
2 x `transient_s` of small HSV frames; a cut is reported up to that late, which
`event_buffer_length` announces (PySceneDetect's own contract for late cuts).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import cv2
import numpy as np
import scenedetect
from scenedetect.common import FrameTimecode
from scenedetect.detector import SceneDetector

DETECTORS = ("combined", "content", "adaptive", "histogram")


def make_detector(name: str, threshold: float | None, min_scene_s: float, fps: float) -> SceneDetector:
    """A PySceneDetect detector by name; `threshold=None` keeps that detector's default."""
    fps = fps or 24.0
    # PySceneDetect counts min_scene_len in frames (an int) by default; keep that convention.
    min_len = max(1, int(round(min_scene_s * fps)))
    if name == "combined":
        kwargs = {} if threshold is None else {"threshold": threshold}
        return CombinedDetector(min_scene_s=min_scene_s, fps=fps, **kwargs)
    if name == "content":
        kwargs = {} if threshold is None else {"threshold": threshold}
        return scenedetect.ContentDetector(min_scene_len=min_len, **kwargs)
    if name == "adaptive":
        kwargs = {} if threshold is None else {"adaptive_threshold": threshold}
        return scenedetect.AdaptiveDetector(min_scene_len=min_len, **kwargs)
    if name == "histogram":
        kwargs = {} if threshold is None else {"threshold": threshold}
        return scenedetect.HistogramDetector(min_scene_len=min_len, **kwargs)
    raise ValueError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


@dataclass
class _Frame:
    tc: FrameTimecode
    hsv: np.ndarray
    small: np.ndarray  # HSV at 1/4 size: the transient filter compares many pairs
    value: float  # mean brightness (V), 0..255
    score: float = 0.0  # distance to the previous frame


class CombinedDetector(SceneDetector):
    """ContentDetector's score + adaptive cuts + transient filter + dark guard + fades."""

    def __init__(self, threshold: float = 27.0, adaptive_ratio: float = 3.0, min_ratio: float = 1.25,
                 min_content_val: float = 15.0, window: int = 2, transient_s: float = 0.5,
                 dark_level: float = 12.0, min_scene_s: float = 0.6, fps: float = 24.0):
        super().__init__()
        self.threshold = threshold  # ContentDetector's default
        self.adaptive_ratio = adaptive_ratio  # AdaptiveDetector's defaults: ratio, min score, window
        self.min_content_val = min_content_val
        self.min_ratio = min_ratio
        self.window = window
        self.k = max(1, int(round(transient_s * fps)))  # transient window, in frames
        self.similar = threshold / 2
        self.dark_level = dark_level  # ThresholdDetector's default "black" level
        self.dim_level = 2.5 * dark_level  # below this mean brightness hue/saturation are noise
        self.min_scene_s = min_scene_s
        self.ahead = max(window, self.k)
        self._ring: collections.deque[_Frame] = collections.deque(maxlen=2 * self.ahead + 2)
        self._last_cut_s = 0.0  # the first shot, too, must last min_scene_s
        self._dark_start: FrameTimecode | None = None  # first frame of the current dark run
        self._dark_abrupt = False  # the run began with a hard cut (already emitted)
        self._dark_after_light = False
        self._seen_light = False

    @property
    def event_buffer_length(self) -> int:
        """How many frames late a cut can be reported (PySceneDetect's contract)."""
        return self.ahead + 1

    def _distance(self, a: _Frame, b: _Frame, small: bool = False) -> float:
        diff = cv2.mean(cv2.absdiff(a.small, b.small) if small else cv2.absdiff(a.hsv, b.hsv))
        if min(a.value, b.value) < self.dim_level:
            return diff[2]  # dark guard: brightness only
        return (diff[0] + diff[1] + diff[2]) / 3.0  # = ContentDetector's content_val

    def process_frame(self, timecode: FrameTimecode, frame_img: np.ndarray) -> list[FrameTimecode]:
        hsv = cv2.cvtColor(frame_img, cv2.COLOR_BGR2HSV)
        h, w = hsv.shape[:2]
        small = cv2.resize(hsv, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_NEAREST)
        frame = _Frame(timecode, hsv, small, cv2.mean(hsv)[2])
        if self._ring:
            frame.score = self._distance(self._ring[-1], frame)
        self._ring.append(frame)
        c = len(self._ring) - 1 - self.ahead  # the newest frame whose after-window is complete
        return self._decide(c) if c >= 1 else []

    def post_process(self, timecode: FrameTimecode) -> list[FrameTimecode]:
        cuts = []
        for c in range(max(1, len(self._ring) - self.ahead), len(self._ring)):
            cuts += self._decide(c)
        return cuts  # a dark run still open at the end is a fade-out: no cut

    def _emit(self, tc: FrameTimecode) -> list[FrameTimecode]:
        if tc.seconds - self._last_cut_s < self.min_scene_s - 1e-6:
            return []
        self._last_cut_s = tc.seconds
        return [tc]

    def _decide(self, c: int) -> list[FrameTimecode]:
        ring = self._ring
        cur, prev = ring[c], ring[c - 1]
        cuts = self._track_dark_run(cur)
        lo, hi = max(0, c - self.k), min(len(ring), c + 1 + self.k)
        before = [ring[i].score for i in range(max(1, c - self.window), c)]
        after = [ring[i].score for i in range(c + 1, min(len(ring), c + 1 + self.window))]
        mean = (sum(before) + sum(after)) / max(1, len(before) + len(after))
        ratio = cur.score / mean if mean > 1e-5 else float("inf")
        # A cut stands out from its neighbours: a fast pan scores above the threshold on
        # every frame (ratio ~1); the lowest ratio of a true cut we measured was 2.2.
        is_cut = cur.score >= self.threshold and ratio >= self.min_ratio
        if not is_cut and cur.score >= self.min_content_val and before and after:
            is_cut = ratio >= self.adaptive_ratio
        if is_cut and any(self._distance(ring[i], ring[j], small=True) < self.similar
                          for i in range(lo, c) for j in range(c + 1, hi)):
            is_cut = False  # the picture came back: a flash, an occlusion, a flicker
        if is_cut:
            fading = c >= 2 and ring[c - 2].value > 1.5 * prev.value  # already darkening fast
            if cur.value < self.dark_level and self._dark_start is cur.tc and prev.value >= self.dim_level \
                    and not fading:
                self._dark_abrupt = True  # a hard cut into black: the run's cut is this one
            elif any(ring[i].value < self.dark_level for i in range(lo, hi)):
                is_cut = False  # part of a fade: the dark run places its own cut
        return cuts + (self._emit(cur.tc) if is_cut else [])

    def _track_dark_run(self, cur: _Frame) -> list[FrameTimecode]:
        """Open or close a run of dark frames; a closed run after light gets one cut, mid-run."""
        dark = cur.value < self.dark_level
        cuts = []
        if dark and self._dark_start is None:
            self._dark_start, self._dark_abrupt = cur.tc, False
            self._dark_after_light = self._seen_light
        elif not dark and self._dark_start is not None:
            if self._dark_after_light and not self._dark_abrupt:
                middle = (self._dark_start.seconds + cur.tc.seconds) / 2
                cuts = self._emit(FrameTimecode(middle, fps=cur.tc))
            self._dark_start = None
        self._seen_light |= not dark
        return cuts
