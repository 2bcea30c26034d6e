"""`oracle`: clip2frame over the benchmark's ground-truth windows, as if they were P1 highlights.

With `focused` sampling every frame lies inside a window, so on a benchmark with windows its hit
rate is 100 % by construction: an upper bound for the selectors, and a check that the harness
scores what it claims (tests/eval/test_harness.py). Items without windows are errors.
"""

from __future__ import annotations

from peakclips.clip2frame import clip2frame
from peakclips.errors import VideoError
from peakclips.eval.benchmarks import Item
from peakclips.eval.selectors import Selection, Selector


class Oracle(Selector):
    name = "oracle"

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        if not item.windows_s:
            raise VideoError("no_windows", f"{item.id} has no ground-truth windows for the oracle")
        clips = [{"start_s": a, "end_s": b, "priority": "P1"} for a, b in item.windows_s]
        return Selection(clip2frame(clips, duration_s, k, "focused").times_s)
