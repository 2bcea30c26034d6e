"""Resuming a stage: the data position recorded in each checkpoint, and the Trainer mixin that
reads the example stream from it.

Data position: the stream (data.py) is endless and deterministic, so the position is the number
of batches the DataLoader has handed out (global step x gradient accumulation). It is written
into every checkpoint (callbacks.CheckpointExtras); on resume the stream skips exactly that much
without decoding, and the Trainer's own batch skipping (which would decode every skipped video)
is switched off (`ignore_data_skip`, runs.trainer_arguments).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from peakclips.train.data import ExampleStream

log = logging.getLogger(__name__)
POSITION_FILE = "data_position.json"


def consumed_batches(checkpoint: str | None, geometry: dict, grad_accum: int) -> int:
    """Batches already consumed at `checkpoint` (0 for a fresh run); warns when the batch
    geometry changed, in which case the position can only be approximated."""
    if checkpoint is None:
        return 0
    path = Path(checkpoint) / POSITION_FILE
    step = int(Path(checkpoint).name.rsplit("-", 1)[1])
    saved = json.loads(path.read_text()) if path.exists() else {"consumed_batches": step * grad_accum, **geometry}
    changed = {k: (saved.get(k), v) for k, v in geometry.items() if saved.get(k) != v}
    if changed:
        log.warning("resuming with a different data layout %s: examples may repeat or be skipped", changed)
        return saved["consumed_batches"] * saved.get("batch_size", 1) // geometry["batch_size"]
    return saved["consumed_batches"]


class StreamingData:
    """Trainer mixin: the training DataLoader reads an `ExampleStream` from the recorded position.

    Set `stream_args` (ExampleStream keyword arguments without rank/position) and
    `consumed_batches` before `train()`."""

    stream_args: dict
    consumed_batches: int = 0

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Full weights go through `from_pretrained`, which maps the key names: transformers
        saves Qwen2.5-VL checkpoints under the original (hub) names (`visual.*`, `model.layers.*`)
        but Trainer's own resume loads the file raw into `model.visual.*`, `model.language_model.*`
        with strict=False, so it would load nothing and train on from the initial weights.
        LoRA adapters (and optimizer, scheduler, RNG states) resume the Trainer's way."""
        from peft import PeftModel

        model = model if model is not None else self.model
        if isinstance(model, PeftModel):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = type(model).from_pretrained(resume_from_checkpoint, dtype=model.dtype)
        model.load_state_dict(saved.state_dict())

    def get_train_dataloader(self):
        import torch

        stream = ExampleStream(**self.stream_args, batch_size=self.args.per_device_train_batch_size,
                               rank=self.args.process_index, world_size=self.args.world_size,
                               consumed_batches=self.consumed_batches)
        workers = self.args.dataloader_num_workers
        return torch.utils.data.DataLoader(
            stream, batch_size=self.args.per_device_train_batch_size, collate_fn=self.data_collator,
            num_workers=workers, prefetch_factor=2 if workers else None, persistent_workers=False)
