"""Trainer callbacks of every stage: metrics.jsonl, and what each checkpoint carries besides the
Trainer's own files (the data position for resume, the model's training facts for `select`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from transformers import TrainerCallback

from peakclips.train.resume import POSITION_FILE


class MetricsLog(TrainerCallback):
    """Appends every log record to metrics.jsonl, with samples/s since the previous record."""

    def __init__(self, path: Path, samples_per_step: int, stage: str):
        self.path, self.samples_per_step, self.stage = path, samples_per_step, stage
        self.last = (None, 0)

    def on_log(self, args, state, control, logs=None, **kwargs):
        now = time.time()
        record = {"stage": self.stage, "step": state.global_step, "time": round(now, 3), **(logs or {})}
        t0, step0 = self.last
        if t0 is not None and state.global_step > step0:
            record["samples_per_s"] = round((state.global_step - step0) * self.samples_per_step / (now - t0), 4)
        self.last = (now, state.global_step)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = (time.time(), state.global_step)


class CheckpointExtras(TrainerCallback):
    """Writes the stream position and the model's training facts (for `select`) into each checkpoint."""

    def __init__(self, geometry: dict, meta: dict):
        self.geometry, self.meta = geometry, meta

    def on_save(self, args, state, control, **kwargs):
        from peakclips.train.model import META_FILE

        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        position = {"consumed_batches": state.global_step * args.gradient_accumulation_steps, **self.geometry}
        (folder / POSITION_FILE).write_text(json.dumps(position, indent=2))
        (folder / META_FILE).write_text(json.dumps(self.meta, indent=2))
