"""A stage's run folder and the `StageRun` both trainers (sft.py, rl.py) are built from.

    <run.output_dir>/<stage>/
        config.yaml         the resolved config (stage defaults filled in)
        metrics.jsonl       one JSON line per logging step (loss or rewards, KL, samples/s, ...)
        checkpoint-N/       transformers Trainer checkpoints + data_position.json + peakclips_train.json
        final/              the stage's model + processor + peakclips_train.json: the next stage's start
        runs/               TensorBoard events (transformers' layout), when tensorboard is installed

`start` resolves the config, finds the starting weights and the checkpoint to resume from, and
loads the model; `StageRun.train` runs a trainer from the recorded data position (resume.py)
with the metrics and checkpoint callbacks (callbacks.py) and saves the final model.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import yaml
from transformers.trainer_utils import get_last_checkpoint

from peakclips.errors import UserError
from peakclips.train import model as models
from peakclips.train.callbacks import CheckpointExtras, MetricsLog
from peakclips.train.config import STAGES, TrainConfig
from peakclips.train.data import expand_shards
from peakclips.train.resume import consumed_batches


class StageError(UserError):
    """A stage that cannot start as configured; the message says what to change."""


def init_source(cfg: TrainConfig, stage: str) -> str:
    """Where the stage's weights come from: the previous stage's final model, the base model, or a path."""
    choice = cfg.model.init_from
    if choice == "base" or (choice == "previous" and stage == "sft1"):
        return cfg.model.name_or_path
    if choice != "previous":
        if not Path(choice).is_dir():
            raise StageError(f"model.init_from '{choice}' is not a folder")
        return choice
    prev = STAGES[STAGES.index(stage) - 1]
    final = cfg.stage_dir(prev) / "final"
    if not final.is_dir():
        raise StageError(f"{stage} starts from the {prev} model, but {final} does not exist: run "
                         f"`peakclips-train {prev}` first, or set model.init_from=base (or a model folder)")
    return str(final)


def resume_checkpoint(cfg: TrainConfig, stage: str) -> str | None:
    folder = cfg.stage_dir(stage)
    if cfg.run.resume == "never" or not folder.is_dir():
        return None
    return get_last_checkpoint(str(folder))


def write_config(cfg: TrainConfig, stage: str) -> Path:
    folder = cfg.stage_dir(stage)
    folder.mkdir(parents=True, exist_ok=True)
    text = f"# peakclips-train {stage}: resolved config\n" + yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
    (folder / "config.yaml").write_text(text)
    return folder


def trainer_arguments(cfg: TrainConfig, stage: str, bf16: bool, gradient_checkpointing: bool) -> dict:
    """Keyword arguments shared by SFTConfig and the RL TrainingArguments."""
    o = cfg.optim
    tensorboard = importlib.util.find_spec("tensorboard") is not None
    return dict(
        output_dir=str(cfg.stage_dir(stage)), max_steps=o.max_steps, per_device_train_batch_size=o.batch_size,
        gradient_accumulation_steps=o.grad_accum, learning_rate=o.lr, lr_scheduler_type=o.scheduler,
        warmup_steps=o.warmup_ratio, weight_decay=o.weight_decay, max_grad_norm=o.max_grad_norm,
        logging_steps=o.logging_steps, save_steps=o.save_steps, save_total_limit=o.save_total_limit,
        seed=cfg.run.seed, data_seed=cfg.run.seed, bf16=bf16, activation_checkpointing=gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if gradient_checkpointing else None,
        report_to=["tensorboard"] if tensorboard else "none",
        ignore_data_skip=True, remove_unused_columns=False,
        dataloader_num_workers=cfg.data.num_workers, disable_tqdm=True,
    )


def save_meta(cfg: TrainConfig, stage: str, source: str) -> dict:
    """What `peakclips select` and the next stage need to use a model as it was trained."""
    from peakclips.train.tasks import train_prompts

    return {"stage": stage, "started_from": source, "num_frames": cfg.data.num_frames,
            "max_pixels": cfg.data.max_pixels, "min_pixels": cfg.data.min_pixels,
            "prompts": {name: {"id": p.id, "sha256": p.sha256, "text": p.text} for name, p in train_prompts().items()},
            "config": cfg.model_dump(mode="json")}


@dataclass
class StageRun:
    """Everything a stage's trainer is built from; `start` fills it, `attach` and `finish` use it."""

    cfg: TrainConfig
    name: str
    source: str
    folder: Path
    checkpoint: str | None
    model: object
    processor: object
    lora: object
    stream_args: dict
    meta: dict

    @property
    def bf16(self) -> bool:
        return str(self.model.dtype) == "torch.bfloat16"

    def arguments(self) -> dict:
        return trainer_arguments(self.cfg, self.name, self.bf16, models.use_gradient_checkpointing(self.cfg.model))

    def geometry(self, world_size: int) -> dict:
        c = self.cfg
        return {"batch_size": c.optim.batch_size, "num_workers": c.data.num_workers, "world_size": world_size,
                "seed": c.run.seed, "num_frames": c.data.num_frames}

    def callbacks(self, world_size: int) -> list:
        o = self.cfg.optim
        return [MetricsLog(self.folder / "metrics.jsonl", o.batch_size * o.grad_accum * world_size, self.name),
                CheckpointExtras(self.geometry(world_size), self.meta)]

    def train(self, trainer) -> str:
        """Run `trainer` from the recorded data position; save and return the final model folder."""
        trainer.stream_args = self.stream_args
        trainer.consumed_batches = consumed_batches(self.checkpoint, self.geometry(trainer.args.world_size),
                                                    self.cfg.optim.grad_accum)
        shards = self.stream_args["shards"]
        m = self.cfg.model
        origin = (f"a new tiny random Qwen2.5-VL ({m.tiny_layers} layers, hidden {m.tiny_hidden_size}; "
                  f"model.tiny; only the tokenizer is real)" if models.builds_tiny(self.source, m.tiny)
                  else f"model from {self.source}")
        print(f"peakclips-train {self.name}: {len(shards)} shard(s), {origin}"
              + (f", resuming from {self.checkpoint} (batch {trainer.consumed_batches})" if self.checkpoint else ""),
              flush=True)
        trainer.train(resume_from_checkpoint=self.checkpoint)
        final = self.folder / "final"
        models.save_final(trainer.model, self.processor, final, self.meta)
        return str(final)


def start(cfg: TrainConfig, stage: str, make_examples) -> StageRun:
    """Resolve the config, find the starting weights and any checkpoint, load the model."""
    cfg = cfg.resolve(stage)
    source = init_source(cfg, stage)
    shards = expand_shards(cfg.data.shards)
    folder = write_config(cfg, stage)
    m = cfg.model
    model, processor = models.load(source, m.tiny, hidden=m.tiny_hidden_size, layers=m.tiny_layers,
                                   seed=cfg.run.seed, dtype=m.dtype, attn_implementation=m.attn_implementation,
                                   max_pixels=cfg.data.max_pixels, min_pixels=cfg.data.min_pixels)
    lora = models.prepare_for_training(model, m)
    stream_args = dict(shards=shards, make_examples=make_examples, num_frames=cfg.data.num_frames,
                       seed=cfg.run.seed, shuffle_buffer=cfg.data.shuffle_buffer)
    return StageRun(cfg, stage, source, folder, resume_checkpoint(cfg, stage), model, processor, lora,
                    stream_args, save_meta(cfg, stage, source))
