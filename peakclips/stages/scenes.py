"""Stages 2-3 of SPEC section 2, scenes and frames, as ONE Ray stage over ONE decode pass.

Every frame is decoded once (PyAV, pts-based times, so variable frame rate is exact; on a
background thread a few frames ahead, `decode_ahead`, so decoding overlaps the rest), scaled
once to `scenes.analysis_width` for the shot detector (`peakclips/detect.py`), and offered to
the two frame samplers of `peakclips/stages/frames.py` (T candidates streamed into an H.264
MP4; a bounded reservoir per shot for the m frames per scene). Memory stays flat however long
the video: the detector keeps a ring of small frames, the samplers keep what their docstring
says, and the only per-frame record is its time (8 bytes).

Why one stage: choosing per-scene frames needs the scenes, and a second stage would have to
decode the video again (the cost this stage exists to avoid) or receive frames through the
object store (which SPEC's style rules out). The stage is named `scenes`; its errors read
`scenes:<code>`; it adds both stages' columns.

The candidate frames' MP4 (about 1 MB) is read by no later stage until the shard is assembled,
so the stage writes it straight to the shard's staging folder at the output location
(`shards.staged_frames`, atomically) and the row carries only its URI (`candidates`); the
per-scene JPEGs ride on in the row to annotate and clipscore, the last stage that reads them.

Scene rules (`apply_scene_rules`), each a `scenes.*` config key: tiny scenes merge into a
neighbour, long ones split evenly, and the scenes tile [0, duration] exactly.
"""

from __future__ import annotations

import bisect
from array import array
from dataclasses import dataclass

from peakclips import shards, storage
from peakclips.config import FramesConfig, ScenesConfig
from peakclips.errors import VideoError
from peakclips.spans import split
from peakclips.stages import Stage
from peakclips.stages.frames import Candidates, SceneFrames, pick_scene_frames
from peakclips.video import Scaler, decode_ahead, fit_size, iter_frames


@dataclass
class Preprocessed:
    """What the decode pass produces for one video."""

    scenes: list[dict]
    duration_s: float  # end of the last decoded frame
    decoded_frames: int
    truncated: bool  # decodes to less than its header says (a decode error, or a short end)
    candidates_mp4: bytes
    frame_times_s: list[float]  # the T candidates' times
    scene_frames: list[list[bytes]]  # m JPEGs per scene
    scene_frame_times: list[list[float]]
    cut_times_s: list[float]  # every cut the detector reported, before the scene rules


def preprocess(uri: str, duration_s: float, fps: float, width: int, height: int,
               scfg: ScenesConfig, fcfg: FramesConfig) -> Preprocessed:
    """The one decode pass. `duration_s`, `fps` and the upright `width`/`height` come from the probe."""
    from scenedetect.common import FrameTimecode, Timecode

    from peakclips.detect import make_detector

    # One Scaler per output size: a swscale context rebuilt for every size switch costs more
    # than decoding the frame.
    scaler = Scaler()
    detector = make_detector(scfg.detector, scfg.threshold, scfg.min_scene_s, fps)
    candidates = Candidates(duration_s, fit_size(width, height, fcfg.candidate_size), fcfg, Scaler())
    scene_frames = SceneFrames(fcfg, scfg.min_scene_s, scfg.max_scene_s, detector.event_buffer_length + 1,
                               fit_size(width, height, fcfg.scene_frame_size), Scaler())
    rate = fps or 24.0
    times = array("d")
    cuts: list[float] = []
    errors: list[str] = []
    size = None
    tc = None

    def add_cuts(found) -> None:
        for cut in found:
            cuts.append(cut.seconds)
            scene_frames.cut(cut.seconds)

    decoded_frames = decode_ahead(iter_frames(uri, errors), width, height)
    try:
        for decoded in decoded_frames:
            frame = decoded.frame
            if size is None:  # analysis size, in the stored (not rotated) orientation: cuts do not care
                aw = min(scfg.analysis_width, frame.width) // 2 * 2 or 2
                size = (aw, max(2, round(frame.height * aw / frame.width / 2) * 2))
            tc = FrameTimecode(Timecode(pts=decoded.pts, time_base=decoded.time_base), fps=rate)
            add_cuts(detector.process_frame(tc, scaler.array(frame, *size)))
            times.append(decoded.time_s)
            candidates.push(frame, decoded.time_s)
            scene_frames.push(frame, decoded.time_s)
        if len(times) < scfg.min_frames:
            detail = f"{len(times)} frame(s) decoded, scenes.min_frames is {scfg.min_frames}"
            raise VideoError("too_few_frames" if times else "no_frames", detail)
        add_cuts(detector.post_process(tc))
        mp4, cand_times = candidates.finish()
    finally:  # on any way out, stop the decoder and encoder threads now
        decoded_frames.close()
        candidates.close()

    n = len(times)
    decoded_end = times[-1] + (times[-1] - times[0]) / (n - 1)  # the last frame lasts one mean interval
    truncated = bool(errors) or decoded_end < duration_s - max(0.5, 0.02 * duration_s)
    # The header's duration is exact for a whole file (it knows the last frame's length).
    duration = duration_s if not truncated and duration_s > times[-1] else decoded_end
    # Cut times snap to the frame that starts the new shot (a fade's cut is mid-run, by time).
    snapped = sorted({times[i] for c in cuts if (i := bisect.bisect_left(times, c - 1e-6)) < n})
    spans = apply_scene_rules([c for c in snapped if c > 0], duration, scfg.min_scene_s, scfg.max_scene_s)
    scenes = [
        {"scene_id": i, "start_s": a, "end_s": b,
         "start_frame": bisect.bisect_left(times, a - 1e-4),
         "end_frame": n if i == len(spans) - 1 else bisect.bisect_left(times, b - 1e-4)}
        for i, (a, b) in enumerate(spans)
    ]
    jpegs, jpeg_times = pick_scene_frames(scene_frames.finish(duration), scenes, fcfg.per_scene)
    return Preprocessed(scenes, duration, n, truncated, mp4, cand_times, jpegs, jpeg_times, snapped)


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
    scenes = [part for a, b in zip(bounds, bounds[1:]) for part in split(a, b, max_scene_s)]
    return [(round(a, 4), round(b, 4)) for a, b in scenes]


class Scenes(Stage):
    """Scenes and frames of one video (see the module docstring)."""

    name = "scenes"
    empty = {"scenes": [], "decoded_frames": 0, "truncated": False, "candidates": "",
             "frame_times_s": [], "scene_frames": [], "scene_frame_times": []}

    def __init__(self, cfg: ScenesConfig, frames: FramesConfig, output: str):
        self.cfg, self.frames, self.output = cfg, frames, output

    def process(self, row: dict) -> dict:
        out = preprocess(row["path"], row["duration_s"], row["fps"], row["width"], row["height"],
                         self.cfg, self.frames)
        candidates = shards.staged_frames(self.output, row["shard_id"], row["index"])
        storage.write_atomic(candidates, out.candidates_mp4)
        return {"scenes": out.scenes, "duration_s": out.duration_s, "decoded_frames": out.decoded_frames,
                "truncated": out.truncated, "candidates": candidates,
                "frame_times_s": out.frame_times_s, "scene_frames": out.scene_frames,
                "scene_frame_times": out.scene_frame_times}
