"""sft1 and sft2: supervised fine-tuning with TRL's SFTTrainer as shipped, fed with video.

TRL's SFTTrainer handles the optimisation, checkpoints, resume, logging, mixed precision and
gradient checkpointing. Two things are ours, both through its documented extension points:
  - the data collator (`batch.SFTCollator`): TRL's vision collator takes images only; ours passes
    the candidate frames as one Qwen2.5-VL video and masks the loss to the answer tokens;
  - the training DataLoader (`resume.StreamingData.get_train_dataloader`): an endless, seeded,
    resumable stream over the shards that skips already-seen examples without decoding them.
The loss is TRL's: mean negative log-likelihood of the unmasked (answer) tokens (on CPU the same
loss computed by transformers, see `StreamingSFTTrainer.compute_loss`).
"""

from __future__ import annotations

import functools
import logging

from transformers import Trainer
from trl import SFTConfig, SFTTrainer

from peakclips.train import runs, tasks
from peakclips.train.batch import SFTCollator
from peakclips.train.config import TrainConfig
from peakclips.train.data import ExampleStream
from peakclips.train.resume import StreamingData

log = logging.getLogger(__name__)


class StreamingSFTTrainer(StreamingData, SFTTrainer):
    """SFTTrainer whose training data is an `ExampleStream` (see module docstring)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.args.device.type != "cpu":
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # TRL's fused LM head has kernels for CUDA/XPU only; its pure-torch fallback scores every
        # position with entropy and argmax over the 152k vocabulary and measured ~10x slower than
        # the model's own loss on CPU. So on CPU (tests, the smoke run) the loss is the model's own
        # (transformers'), with logits only from the first answer token on: the same value
        # (tests/train/test_learning.py checks it), without TRL's entropy/accuracy logs.
        labels = inputs["labels"]
        first = int((labels != -100).int().argmax(1).min())
        keep = labels.size(1) - first + 1  # the position before the first answer token predicts it
        inputs = dict(inputs, labels=labels[:, -keep:], logits_to_keep=keep)
        return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)


def make_examples(cfg: TrainConfig, stage: str):
    if stage == "sft1":
        return functools.partial(tasks.sft1_examples, weights=dict(cfg.sft1.weights),
                                 per_video=cfg.sft1.examples_per_video)
    return tasks.sft2_examples


def as_hf_dataset(stream: ExampleStream):
    """The stream as a `datasets.IterableDataset`, the type SFTTrainer checks for (it reads one
    example at start to inspect its columns; training batches come from `get_train_dataloader`)."""
    import datasets

    return datasets.IterableDataset.from_generator(functools.partial(iter, stream))


def run_sft(cfg: TrainConfig, stage: str) -> str:
    """Train sft1 or sft2; returns the folder of the final model."""
    run = runs.start(cfg, stage, make_examples(cfg, stage))
    args = SFTConfig(**run.arguments(), max_length=None, dataset_kwargs={"skip_prepare_dataset": True})
    trainer = StreamingSFTTrainer(
        model=run.model, args=args, train_dataset=as_hf_dataset(ExampleStream(**run.stream_args)),
        data_collator=SFTCollator(run.processor), processing_class=run.processor, peft_config=run.lora,
        callbacks=run.callbacks(args.world_size))
    return run.train(trainer)
