"""Trainer fixtures: synthetic shards and the overrides that make every stage tiny and quick."""

from __future__ import annotations

import pytest

from tests.train.shards import colour_samples, write_shard

# A tiny model on 8 small frames, one example per step, no worker processes (tests share 2 CPUs).
TINY = ["model.tiny=true", "data.num_frames=8", "data.max_pixels=3136", "data.min_pixels=784",
        "data.num_workers=0", "data.shuffle_buffer=4", "optim.batch_size=1", "optim.grad_accum=1",
        "optim.logging_steps=1", "optim.warmup_ratio=0.0", "optim.scheduler=constant",
        "rl.answerer.tiny=true", "rl.answerer.max_pixels=3136"]


@pytest.fixture(scope="session")
def colour_shards(tmp_path_factory):
    """Two shards of synthetic colour videos (3 + 1 samples)."""
    folder = tmp_path_factory.mktemp("shards")
    samples = colour_samples(4)
    write_shard(folder / "peakclips-000000.tar", samples[:3])
    write_shard(folder / "peakclips-000001.tar", samples[3:])
    return folder
