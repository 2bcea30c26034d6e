"""`kframes:CHECKPOINT`: a selector trained with `peakclips-train` (the K-frames recipe).

Each question goes through `peakclips select`'s own function (the checkpoint's recorded prompt
and candidate count, greedy decoding, the lenient clips parser), once per item; clip2frame then
draws every budget k from the same predicted clips (focused for k <= 8, hybrid above), which is
the "any-k" of K-frames (arXiv 2510.13891). An answer that does not parse falls back to uniform
frames, as `peakclips select` does, and says so in the item's `note`.
"""

from __future__ import annotations

from pathlib import Path

from peakclips.eval import EvalError
from peakclips.eval.benchmarks import Item
from peakclips.eval.selectors import Selection, Selector, frames_from_clips


class KFrames(Selector):
    def __init__(self, checkpoint: str):
        if not Path(checkpoint).is_dir():
            raise EvalError(f"kframes:{checkpoint}: the checkpoint is not a folder (a stage's final/ or checkpoint-N/)")
        self.checkpoint, self.name = checkpoint, f"kframes:{checkpoint}"
        self._answer: tuple[str, dict] | None = None

    def settings(self) -> dict:
        return {"checkpoint": str(Path(self.checkpoint).resolve())}

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        if self._answer is None or self._answer[0] != item.id:  # the budgets of an item come together
            # TODO(issue 16): peakclips.commands.select, loading the model once per run.
            from peakclips.train.select import select

            self._answer = item.id, select(item.video, item.question, 1, self.checkpoint)
        result = self._answer[1]
        note = f"fallback to uniform: {result['fallback_reason']}" if result["fallback"] else None
        return Selection(frames_from_clips(result["clips"], duration_s, k), note)
