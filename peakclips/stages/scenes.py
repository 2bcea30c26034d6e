"""Stage 2, scenes: shot boundaries with PySceneDetect, then the rules that make scenes.

We drive PySceneDetect's detectors with our own PyAV decode loop (frames downscaled to
`scenes.analysis_width` first, timestamps from pts) rather than its VideoStream, so the same
loop serves variable-frame-rate files and any fsspec input. Scene rules: tiny scenes merge
into a neighbour, over-long scenes split evenly, and the scenes tile [0, duration] exactly.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from peakclips.config import ScenesConfig
from peakclips.errors import VideoError
from peakclips.stages import Stage
from peakclips.video import iter_frames


def make_detector(cfg: ScenesConfig, fps: float):
    import scenedetect

    min_len = max(1, int(round(cfg.min_scene_s * (fps or 24.0))))
    kwargs = {"min_scene_len": min_len}
    if cfg.threshold is not None:
        kwargs["threshold"] = cfg.threshold
    if cfg.detector == "content":
        return scenedetect.ContentDetector(**kwargs)
    if cfg.detector == "adaptive":
        if "threshold" in kwargs:
            kwargs["adaptive_threshold"] = kwargs.pop("threshold")
        return scenedetect.AdaptiveDetector(**kwargs)
    return scenedetect.HistogramDetector(**kwargs)


@dataclass
class Analysis:
    cut_times_s: list[float]  # start times of every new shot after the first
    frame_times_s: list[float]  # pts time of every decoded frame, in order
    duration_s: float  # end of the last decoded frame


def analyse(uri: str, cfg: ScenesConfig, fps: float) -> Analysis:
    """One decode pass: feed every frame, downscaled, to the detector; record frame times."""
    from scenedetect.common import FrameTimecode, Timecode

    detector = make_detector(cfg, fps)
    rate = float(fps or 24.0)
    times: list[float] = []
    cuts: list[float] = []
    size = None
    last = None
    for decoded in iter_frames(uri):
        frame = decoded.frame
        if size is None:
            w, h = frame.width, frame.height
            aw = min(cfg.analysis_width, w) // 2 * 2
            size = (aw, max(2, int(round(h * aw / w)) // 2 * 2))
        img = frame.to_ndarray(format="bgr24", width=size[0], height=size[1])
        tc = FrameTimecode(Timecode(pts=decoded.pts, time_base=decoded.time_base), fps=rate)
        for cut in detector.process_frame(tc, img):
            cuts.append(cut.seconds)
        times.append(decoded.time_s)
        last = tc
    if not times:
        raise VideoError("no_frames", "no frame decoded")
    if last is not None:
        cuts += [c.seconds for c in detector.post_process(last)]
    frame_dur = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else 1 / rate
    cuts = sorted({round(c, 6) for c in cuts if c > 0})
    return Analysis(cuts, times, times[-1] + frame_dur)


def apply_scene_rules(
    cuts: list[float], duration: float, min_scene_s: float, max_scene_s: float
) -> list[tuple[float, float]]:
    """Turn cut times into scenes that tile [0, duration]: merge short ones, split long ones.

    >>> apply_scene_rules([0.2, 5.0], 10.0, 1.0, 100.0)
    [(0.0, 5.0), (5.0, 10.0)]
    """
    bounds = [0.0] + [c for c in cuts if 0.0 < c < duration] + [duration]
    # Merge: drop the boundary that closes the shortest too-short scene, until none is short.
    # A short scene merges into the shorter of its neighbours' sides (keeps long shots intact).
    while len(bounds) > 2:
        lengths = [b - a for a, b in zip(bounds, bounds[1:])]
        i = min(range(len(lengths)), key=lengths.__getitem__)
        if lengths[i] >= min_scene_s:
            break
        if i == 0:
            del bounds[1]
        elif i == len(lengths) - 1:
            del bounds[-2]
        else:
            del bounds[i if lengths[i - 1] <= lengths[i + 1] else i + 1]
    scenes = []
    for a, b in zip(bounds, bounds[1:]):
        parts = max(1, int(-(-(b - a) // max_scene_s)))  # ceil
        step = (b - a) / parts
        scenes += [(a + k * step, a + (k + 1) * step if k < parts - 1 else b) for k in range(parts)]
    return [(round(a, 4), round(b, 4)) for a, b in scenes]


def frame_index(frame_times: list[float], t: float) -> int:
    """Index of the first decoded frame at or after time t (tolerating float noise)."""
    return bisect.bisect_left(frame_times, t - 1e-6)


class Scenes(Stage):
    name = "scenes"
    empty = {"scenes": [], "decoded_frames": 0}

    def __init__(self, cfg: ScenesConfig):
        self.cfg = cfg

    def process(self, row: dict) -> dict:
        analysis = analyse(row["path"], self.cfg, row["fps"])
        duration = analysis.duration_s
        spans = apply_scene_rules(
            analysis.cut_times_s, duration, self.cfg.min_scene_s, self.cfg.max_scene_s
        )
        n = len(analysis.frame_times_s)
        scenes = [
            {
                "scene_id": i,
                "start_s": a,
                "end_s": b,
                "start_frame": frame_index(analysis.frame_times_s, a),
                "end_frame": min(n, frame_index(analysis.frame_times_s, b)) if i < len(spans) - 1 else n,
            }
            for i, (a, b) in enumerate(spans)
        ]
        return {"scenes": scenes, "decoded_frames": n, "duration_s": duration}
