"""Typed, strict trainer configuration: `pipelines/train/<stage>.yaml` plus `key=value` overrides.

One `TrainConfig` serves the three stages (sft1, sft2, rl); the stage itself comes from the
command line. Unknown keys are errors that list the valid ones (the same rules and helpers as the
pipeline config, `peakclips.config`). `resolve()` fills the stage defaults (the paper's learning
rates) so the config saved in the run folder says exactly what ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from peakclips.config import Strict, load_yaml_config

STAGES: tuple[str, ...] = ("sft1", "sft2", "rl")
PAPER_LR = {"sft1": 1e-5, "sft2": 1e-5, "rl": 1e-6}  # K-frames implementation table


class RunSection(Strict):
    output_dir: str = "runs/peakclips"
    """Run root: each stage writes `<output_dir>/<stage>/` (checkpoints, final model, metrics)."""
    seed: int = 0
    resume: Literal["auto", "never"] = "auto"
    """auto: continue from the stage's latest checkpoint when one exists."""


class DataConfig(Strict):
    shards: list[str] | str = "out/peakclips"
    """A dataset folder, a tar path or URI, a brace pattern (`peakclips-{000000..000099}.tar`),
    a glob, or a list of any of these; local paths or fsspec URIs (s3://, gs://, hf://)."""
    num_frames: int = 256
    """Candidate frames given to the model (evenly picked from the T in each sample)."""
    max_pixels: int = 448 * 252
    """Per-frame pixel cap of the video processor (Qwen2.5-VL resizes to multiples of 28)."""
    min_pixels: int = 28 * 28
    shuffle_buffer: int = 256
    num_workers: int = 4
    """DataLoader worker processes decoding videos (0 = in the training process)."""


class LoraSection(Strict):
    enabled: bool = False
    r: int = 64
    alpha: int = 128
    dropout: float = 0.05


class ModelConfig(Strict):
    name_or_path: str = "Qwen/Qwen2.5-VL-3B-Instruct"
    tiny: bool = False
    """A small random-initialised Qwen2.5-VL with the real Qwen tokenizer (offline; tests, smoke)."""
    tiny_hidden_size: int = 64
    tiny_layers: int = 2
    init_from: str = "previous"
    """previous: the previous stage's final model (sft1: the base model); base: the base model;
    or a path to a saved model folder."""
    freeze_vision: bool = True
    """Freeze the vision encoder (the projector, `visual.merger`, stays trainable), as the paper."""
    lora: LoraSection = Field(default_factory=LoraSection)
    dtype: Literal["auto", "bfloat16", "float32"] = "auto"
    """auto: bfloat16 on a GPU that supports it, float32 on CPU."""
    gradient_checkpointing: Literal["auto", "on", "off"] = "auto"
    """auto: on when a GPU is used."""
    attn_implementation: str | None = None
    """None: transformers' default (sdpa); flash_attention_2 when installed."""


class OptimConfig(Strict):
    lr: float | None = None
    """None: the paper's value for the stage (1e-5 SFT, 1e-6 RL)."""
    max_steps: int = 1000
    batch_size: int = 1
    """Per device; RL: prompts per device, each rolled out `rl.num_generations` times."""
    grad_accum: int = 8
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    scheduler: str = "cosine"
    save_steps: int = 200
    save_total_limit: int = 3
    logging_steps: int = 10


class Sft1Config(Strict):
    weights: dict[Literal["ground", "describe", "rate"], float] = Field(
        default_factory=lambda: {"ground": 1.0, "describe": 1.0, "rate": 1.0})
    """Mixing weights of the three temporal-grounding tasks: caption -> span (ground),
    span -> caption (describe), (query, scene) -> relevance 1-5 (rate)."""
    examples_per_video: int = 4


class AnswererConfig(Strict):
    name_or_path: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    tiny: bool = False
    max_pixels: int = 448 * 252


class RLConfig(Strict):
    num_generations: int = 8
    """Rollouts per prompt (the GRPO group)."""
    max_completion_tokens: int = 256
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.01
    """KL coefficient against the frozen starting policy (paper: 0.01)."""
    k: int = 8
    """Frames drawn from the predicted clips (clip2frame) for the answerer."""
    k_mode: Literal["auto", "focused", "hybrid", "uniform"] = "auto"
    tau: float = 1.0
    """Temperature of the answer-margin reward tanh(log(p_correct / mean p_wrong) / tau)."""
    reward_weights: dict[Literal["answer_margin", "format", "temporal_iou"], float] = Field(
        default_factory=lambda: {"answer_margin": 1.0, "format": 0.5, "temporal_iou": 0.5})
    answerer: AnswererConfig = Field(default_factory=AnswererConfig)


class TrainConfig(Strict):
    run: RunSection = Field(default_factory=RunSection)
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    sft1: Sft1Config = Field(default_factory=Sft1Config)
    rl: RLConfig = Field(default_factory=RLConfig)

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.data.num_frames < 2:
            raise ValueError("data.num_frames must be at least 2 (Qwen2.5-VL groups frames in pairs)")
        if self.rl.num_generations < 2:
            raise ValueError("rl.num_generations must be at least 2 (GRPO compares rollouts in a group)")
        if not any(w > 0 for w in self.sft1.weights.values()):
            raise ValueError("sft1.weights needs at least one positive weight")
        return self

    def stage_dir(self, stage: str) -> Path:
        return Path(self.run.output_dir) / stage

    def resolve(self, stage: str) -> TrainConfig:
        """The config with stage defaults filled in (what gets saved next to the run)."""
        if self.optim.lr is not None:
            return self
        return self.model_copy(update={"optim": self.optim.model_copy(update={"lr": PAPER_LR[stage]})})


def load_train_config(path: str | None, overrides: list[str] = ()) -> TrainConfig:
    """Read a trainer YAML (or the defaults when path is None) and apply `key=value` overrides."""
    return load_yaml_config(TrainConfig, path, overrides)
