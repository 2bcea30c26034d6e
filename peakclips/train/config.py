"""Typed, strict trainer configuration: `pipelines/train/<stage>.yaml` plus `key=value` overrides.

One `TrainConfig` serves the three stages (sft1, sft2, rl); the stage itself comes from the
command line. Unknown keys are errors that list the valid ones (the same rules and helpers as the
pipeline config, `peakclips.config`). `resolve()` fills the stage defaults (the paper's learning
rates) so the config saved in the run folder says exactly what ran.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from peakclips.config import Strict, load_yaml_config

STAGES: tuple[str, ...] = ("sft1", "sft2", "rl")
PAPER_LR = {"sft1": 1e-5, "sft2": 1e-5, "rl": 1e-6}  # K-frames implementation table
Weight = Annotated[float, Field(ge=0, le=1000)]  # a mixing or reward weight


class RunSection(Strict):
    output_dir: str = "runs/peakclips"
    """Run root: each stage writes `<output_dir>/<stage>/` (checkpoints, final model, metrics)."""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    resume: Literal["auto", "never"] = "auto"
    """auto: continue from the stage's latest checkpoint when one exists."""


class DataConfig(Strict):
    shards: list[str] | str = "out/peakclips"
    """A dataset folder, a tar path or URI, a brace pattern (`peakclips-{000000..000099}.tar`),
    a glob, or a list of any of these; local paths or fsspec URIs (s3://, gs://, hf://)."""
    num_frames: int = Field(256, ge=1, le=4096)
    """Candidate frames given to the model (evenly picked from the T in each sample)."""
    max_pixels: int = Field(448 * 252, ge=28 * 28, le=16384**2)
    """Per-frame pixel cap of the video processor (Qwen2.5-VL resizes to multiples of 28)."""
    min_pixels: int = Field(28 * 28, ge=1, le=16384**2)
    shuffle_buffer: int = Field(256, ge=0, le=1_000_000)
    num_workers: int = Field(4, ge=0, le=256)
    """DataLoader worker processes decoding videos (0 = in the training process)."""


class LoraSection(Strict):
    enabled: bool = False
    r: int = Field(64, ge=1, le=4096)
    alpha: int = Field(128, ge=1, le=65536)
    dropout: float = Field(0.05, ge=0, lt=1)


class ModelConfig(Strict):
    name_or_path: str = "Qwen/Qwen2.5-VL-3B-Instruct"
    tiny: bool = False
    """A small random-initialised Qwen2.5-VL with the real Qwen tokenizer (offline; tests, smoke)."""
    tiny_hidden_size: int = Field(64, ge=8, le=8192)
    tiny_layers: int = Field(2, ge=1, le=256)
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
    lr: float | None = Field(None, gt=0, le=1)
    """None: the paper's value for the stage (1e-5 SFT, 1e-6 RL)."""
    max_steps: int = Field(1000, ge=1, le=10**9)
    batch_size: int = Field(1, ge=1, le=65536)
    """Per device; RL: prompts per device, each rolled out `rl.num_generations` times."""
    grad_accum: int = Field(8, ge=1, le=65536)
    warmup_ratio: float = Field(0.03, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0, le=10)
    max_grad_norm: float = Field(1.0, ge=0, le=1e6)
    scheduler: str = "cosine"
    save_steps: int = Field(200, ge=1, le=10**9)
    save_total_limit: int = Field(3, ge=1, le=10_000)
    logging_steps: int = Field(10, ge=1, le=10**9)


class Sft1Config(Strict):
    weights: dict[Literal["ground", "describe", "rate"], Weight] = Field(
        default_factory=lambda: {"ground": 1.0, "describe": 1.0, "rate": 1.0})
    """Mixing weights of the three temporal-grounding tasks: caption -> span (ground),
    span -> caption (describe), (query, scene) -> relevance 1-5 (rate)."""
    examples_per_video: int = Field(4, ge=1, le=10_000)


class AnswererConfig(Strict):
    name_or_path: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    tiny: bool = False
    max_pixels: int = Field(448 * 252, ge=28 * 28, le=16384**2)


class RLConfig(Strict):
    num_generations: int = Field(8, ge=1, le=1024)
    """Rollouts per prompt (the GRPO group)."""
    max_completion_tokens: int = Field(256, ge=1, le=1 << 20)
    temperature: float = Field(1.0, gt=0, le=100)
    top_p: float = Field(1.0, gt=0, le=1)
    beta: float = Field(0.01, ge=0, le=100)
    """KL coefficient against the frozen starting policy (paper: 0.01)."""
    k: int = Field(8, ge=1, le=4096)
    """Frames drawn from the predicted clips (clip2frame) for the answerer."""
    k_mode: Literal["auto", "focused", "hybrid", "uniform"] = "auto"
    tau: float = Field(1.0, gt=0, le=1000)
    """Temperature of the answer-margin reward tanh(log(p_correct / mean p_wrong) / tau)."""
    reward_weights: dict[Literal["answer_margin", "format", "temporal_iou"], Weight] = Field(
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
