"""`peakclips-train` and its configs: what a user gets for a typo, an offline hub model, a stage
started out of order, shards without the stage's data; the shipped YAMLs are valid."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from peakclips.train.cli import main
from peakclips.train.config import load_train_config
from tests.conftest import REPO
from tests.train.conftest import TINY
from tests.train.shards import colour_samples, write_shard


@pytest.mark.parametrize("stage", ["sft1", "sft2", "rl"])
def test_shipped_configs_load_and_say_what_they_run(stage):
    path = REPO / "pipelines" / "train" / f"{stage}.yaml"
    first = path.read_text().splitlines()[0]
    assert first.startswith(f"# peakclips-train {stage}:")
    cfg = load_train_config(str(path)).resolve(stage)
    assert cfg.model.name_or_path == "Qwen/Qwen2.5-VL-3B-Instruct" and cfg.model.freeze_vision
    assert cfg.optim.lr == (1e-6 if stage == "rl" else 1e-5)
    if stage == "rl":
        assert cfg.rl.beta == 0.01 and cfg.rl.answerer.name_or_path == "Qwen/Qwen2.5-VL-7B-Instruct"


@pytest.mark.parametrize("argv", [["sft1", "optim.lrr=1"],
                                  ["sft1", "--config", "pipelines/train/sft1.yaml", "model.tiny=true", "optim.lrr=1"],
                                  ["sft1", "--set", "model.tiny=true", "--config", "pipelines/train/sft1.yaml",
                                   "--set", "optim.lrr=1"]])
def test_unknown_key_lists_the_valid_ones(capsys, argv):
    """Overrides are read before and after --config, as `--set k=v` (the form `peakclips` takes)
    or bare `k=v` (this command's first form)."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.lrr'" in err and "optim.lr" in err


def test_offline_hub_model_fails_fast_with_what_to_set():
    cmd = [sys.executable, "-m", "peakclips.train.cli", "sft1", "--config", "pipelines/train/sft1.yaml"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin"})
    assert out.returncode == 2
    assert "model.name_or_path 'Qwen/Qwen2.5-VL-3B-Instruct'" in out.stderr and "model.tiny=true" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_stage_needs_the_previous_stage(tmp_path, colour_shards, capsys):
    code = main(["sft2", *TINY, f"run.output_dir={tmp_path}", f"data.shards={colour_shards}"])
    assert code == 2
    assert "sft2 starts from the sft1 model" in capsys.readouterr().err
    assert not (tmp_path / "sft2").exists()


@pytest.mark.model  # builds the tiny Qwen2.5-VL before it finds no qa item
def test_rl_on_shards_without_qa_says_so(tmp_path, capsys):
    doc, mp4 = colour_samples(1)[0]
    write_shard(tmp_path / "shards" / "peakclips-000000.tar", [(dict(doc, qa=[]), mp4)])
    code = main(["rl", *TINY, f"run.output_dir={tmp_path / 'run'}", f"data.shards={tmp_path / 'shards'}",
                 "model.init_from=base", "optim.max_steps=1", "rl.num_generations=2"])
    assert code == 2
    assert "no training examples" in capsys.readouterr().err


def test_missing_shards_say_so(tmp_path, capsys):
    assert main(["sft1", *TINY, f"run.output_dir={tmp_path}", f"data.shards={tmp_path / 'nothing'}"]) == 2
    assert "no shards match" in capsys.readouterr().err
    assert not Path(tmp_path / "sft1").exists()
