"""Checkpoints and resume: a stage stopped at a checkpoint and started again ends with the same
model as one that ran straight through (same examples, same order, same optimizer state)."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from peakclips.train.config import load_train_config
from peakclips.train.sft import run_sft
from tests.train.conftest import TINY

pytestmark = pytest.mark.model  # loads a neural network on CPU: not in `make test-fast`


def test_stopped_stage_resumes_to_the_same_model(tmp_path, colour_shards, capsys):
    common = TINY + [f"data.shards={colour_shards}", "model.init_from=base", "optim.save_steps=2",
                     "optim.lr=1e-3", "optim.batch_size=2"]
    straight = run_sft(load_train_config(None, common + [f"run.output_dir={tmp_path / 'a'}", "optim.max_steps=4"]),
                       "sft1")
    # the same run, stopped after its step-2 checkpoint (max_steps=2), then started again
    run_sft(load_train_config(None, common + [f"run.output_dir={tmp_path / 'b'}", "optim.max_steps=2"]), "sft1")
    first = capsys.readouterr().out  # says what the weights are: not the hub name of the base model
    assert "a new tiny random Qwen2.5-VL" in first and "model from" not in first
    resumed = run_sft(load_train_config(None, common + [f"run.output_dir={tmp_path / 'b'}", "optim.max_steps=4"]),
                      "sft1")
    assert f"resuming from {tmp_path / 'b' / 'sft1' / 'checkpoint-2'} (batch 2)" in capsys.readouterr().out

    position = json.loads((tmp_path / "b" / "sft1" / "checkpoint-2" / "data_position.json").read_text())
    assert position["consumed_batches"] == 2 and position["batch_size"] == 2
    a, b = load_file(f"{straight}/model.safetensors"), load_file(f"{resumed}/model.safetensors")
    assert a.keys() == b.keys()
    assert all((a[k] - b[k]).abs().max() < 1e-5 for k in a)
    initial = load_file(f"{tmp_path / 'b' / 'sft1' / 'checkpoint-2'}/model.safetensors")
    assert any((a[k] - initial[k]).abs().max() > 1e-4 for k in a)  # steps 3-4 did change the weights

    losses = lambda run: [json.loads(x)["loss"] for x in (run / "sft1" / "metrics.jsonl").read_text().splitlines()
                          if '"loss"' in x]
    assert losses(tmp_path / "b") == pytest.approx(losses(tmp_path / "a"), rel=1e-5)  # same examples, same order
    config = (tmp_path / "b" / "sft1" / "config.yaml").read_text()
    assert config.startswith("# peakclips-train sft1: resolved config") and "lr: 0.001" in config
