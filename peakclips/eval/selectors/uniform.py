"""`uniform`: k frames at the midpoints of k equal slices of the video.

The baseline of every keyframe-selection paper (lmms-eval's video models, VLMEvalKit's
`save_video_frames`, BOLT, AKS, K-frames all report it); the slice midpoints are the project's
convention (clip2frame without clips), which never puts a frame on the first or the last instant.
"""

from __future__ import annotations

from peakclips.clip2frame import clip2frame
from peakclips.eval.benchmarks import Item
from peakclips.eval.selectors import Selection, Selector


class Uniform(Selector):
    name = "uniform"

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        return Selection(clip2frame([], duration_s, k, "uniform").times_s)
