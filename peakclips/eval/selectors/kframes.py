"""`kframes:CHECKPOINT`: a selector trained with `peakclips-train` (the K-frames recipe).

Each question goes through `peakclips select`'s own code (`TrainedSelector`: the checkpoint's
recorded prompt and candidate count, greedy decoding, the lenient clips parser), the model loaded
once per run and asked once per item; clip2frame then
draws every budget k from the same predicted clips (focused for k <= 8, hybrid above), which is
the "any-k" of K-frames (arXiv 2510.13891). An answer that does not parse falls back to uniform
frames, as `peakclips select` does, and says so in the item's `note`.
"""

from __future__ import annotations

from pathlib import Path

from peakclips.clip2frame import clip2frame
from peakclips.eval import EvalError
from peakclips.eval.benchmarks import Item
from peakclips.eval.selectors import Selection, Selector


class KFrames(Selector):
    def __init__(self, checkpoint: str):
        if not Path(checkpoint).is_dir():
            raise EvalError(f"kframes:{checkpoint}: the checkpoint is not a folder (a stage's final/ or checkpoint-N/)")
        self.checkpoint, self.name = checkpoint, f"kframes:{checkpoint}"
        self._model = None
        self._answer: tuple[str, dict] | None = None

    def settings(self) -> dict:
        return {"checkpoint": str(Path(self.checkpoint).resolve())}

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        if self._answer is None or self._answer[0] != item.id:  # the budgets of an item come together
            from peakclips.commands.select import TrainedSelector

            self._model = self._model or TrainedSelector(self.checkpoint)  # loaded once per run
            self._answer = item.id, self._model.predict(item.video, item.question)
        predicted = self._answer[1]
        note = f"fallback to uniform: {predicted['error']}" if predicted["error"] else None
        return Selection(clip2frame(predicted["clips"], duration_s, k).times_s, note)
