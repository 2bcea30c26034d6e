"""Learning, not just running, through the real stage entry points (TRL's SFTTrainer, our GRPO):

  - sft2: the tiny model overfits a handful of (video, query) -> clips samples: the loss falls far
    below its start and the clips parsed from its greedy answers are the targets;
  - rl: on a toy where the reward is attainable, the mean reward rises over the GRPO steps. The toy
    is an ambiguous annotation: one video and query labelled once with clip A (0-2 s) and once with
    clip B (6-8 s). SFT on both makes the policy answer A or B about half the time; the temporal-IoU
    reward against B then pays 1 for B and 0 for A, and GRPO must move the policy towards B.
  - `peakclips select` returns k timestamps from the trained checkpoint, and falls back visibly on
    a checkpoint whose answers do not parse.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from peakclips.train.config import load_train_config
from peakclips.train.rl import run_rl
from peakclips.train.sft import run_sft
from tests.train.conftest import TINY
from tests.train.shards import FOUR, make_sample, overfit_samples, write_shard

WIDE = ["model.tiny_hidden_size=128", "optim.save_steps=1000", "optim.logging_steps=5"]


def _metric(run: Path, stage: str, key: str) -> list[float]:
    rows = [json.loads(line) for line in (run / stage / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r and "train_runtime" not in r]


def _generate(final: str, shards: Path, n: int) -> list[tuple[str, str]]:
    """Greedy answers of the model in `final` on the first n sft2 examples: (answer, target)."""
    import torch

    from peakclips.train import batch, data, model, tasks

    m, processor = model.load(final, False, max_pixels=3136, min_pixels=784)
    stream = data.ExampleStream(data.expand_shards(str(shards)), tasks.sft2_examples, num_frames=8, seed=0,
                                shuffle_buffer=1)
    it = iter(stream)
    examples = [next(it) for _ in range(n)]
    inputs = batch.encode(processor, examples, padding_side="left")
    with torch.no_grad():
        out = m.generate(**inputs, do_sample=False, max_new_tokens=80)
    texts = processor.tokenizer.batch_decode(out[:, inputs["input_ids"].size(1):], skip_special_tokens=True)
    return [(t, ex["target"]) for t, ex in zip(texts, examples)]


pytestmark = pytest.mark.slow  # minutes of CPU: a tiny model trained for real


@pytest.fixture(scope="module")
def overfit(tmp_path_factory):
    root = tmp_path_factory.mktemp("overfit")
    write_shard(root / "shards" / "peakclips-000000.tar", overfit_samples())
    cfg = load_train_config(None, TINY + WIDE + [
        f"data.shards={root / 'shards'}", f"run.output_dir={root / 'run'}", "model.init_from=base",
        "optim.batch_size=3", "optim.max_steps=100", "optim.lr=5e-3",
        # decay to zero: at a constant 5e-3 Adam still jumps out of the minimum now and then
        "optim.scheduler=cosine", "optim.warmup_ratio=0.05"])
    return run_sft(cfg, "sft2"), root


def _spans(text: str) -> list[tuple]:
    from peakclips.train.tasks import parse_clips

    return [(c["start_s"], c["end_s"], c["priority"]) for c in parse_clips(text, 8.0)[0]]


def test_sft2_overfits_a_handful_of_samples(overfit):
    final, root = overfit
    losses = _metric(root / "run", "sft2", "loss")
    assert losses[-1] < 0.05 * losses[0], losses  # from ~8-12 (ln 152k) to a few hundredths
    for answer, target in _generate(final, root / "shards", 3):
        assert _spans(answer) == _spans(target), (answer, target)


def test_cpu_loss_is_trls_fused_loss(overfit):
    """The CPU path of the SFT loss (sft.py) gives exactly TRL's fused-head value."""
    from trl.trainer.utils import add_fused_lm_head

    from peakclips.train import batch, data, model, tasks

    _, root = overfit
    stream = data.ExampleStream(data.expand_shards(str(root / "shards")), tasks.sft2_examples, num_frames=8,
                                seed=0, shuffle_buffer=1)
    it = iter(stream)
    examples = [next(it) for _ in range(3)]
    examples[1]["target"] = examples[1]["target"][:30]  # rows of different lengths
    m, processor = model.load("tiny", True, max_pixels=3136, min_pixels=784)
    b = batch.SFTCollator(processor)(examples)
    labels = b["labels"]
    keep = labels.size(1) - int((labels != -100).int().argmax(1).min()) + 1
    ours = m(**dict(b, labels=labels[:, -keep:], logits_to_keep=keep)).loss
    add_fused_lm_head(m)
    assert ours.item() == pytest.approx(m(**b, fused_lm_head=True).loss.item(), rel=1e-5)


def test_select_returns_k_timestamps_from_the_trained_checkpoint(overfit, tmp_path, capsys):
    import numpy as np

    from peakclips.cli import main
    from tests.media import _write_video
    from tests.train.shards import COLOURS

    final, _ = overfit
    video = tmp_path / "v.mp4"  # red0's video, 8 s at 4 fps: 2 s each of red, green, blue, yellow
    colour_at = [next(c for a, b, c in FOUR if a <= i / 4 < b) for i in range(32)]
    _write_video(video, [np.full((56, 56, 3), COLOURS[c], np.uint8) for c in colour_at], fps=4, size=(56, 56),
                 encoder="libx264")
    assert main(["select", str(video), "--query", "the red screen", "--k", "6", "--checkpoint", final]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert not result["fallback"] and "WARNING" not in out.err, (result["fallback_reason"], result["answer"])
    assert len(result["timestamps"]) == 6 and result["timestamps"] == sorted(result["timestamps"])
    spans = [(c["start_s"], c["end_s"]) for c in result["clips"]]
    assert spans and all(any(a <= t < b for a, b in spans) for t in result["timestamps"])  # k <= 8: focused


def test_select_falls_back_visibly_on_unparsable_answers(tmp_path, capsys):
    import numpy as np

    from peakclips.cli import main
    from peakclips.train import model
    from tests.media import candidate_mp4

    m, processor = model.load("tiny", True, max_pixels=3136, min_pixels=784)  # untrained: babbles
    model.save_final(m, processor, tmp_path / "random", {"num_frames": 8, "max_pixels": 3136, "min_pixels": 784})
    video = tmp_path / "v.mp4"
    video.write_bytes(candidate_mp4([np.full((56, 56, 3), 40 * i, np.uint8) for i in range(6)]))
    assert main(["select", str(video), "--query", "anything", "--k", "4", "--checkpoint", str(tmp_path / "random")]) == 0
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert result["fallback"] and result["clips"] == [] and result["fallback_reason"]
    assert "WARNING: the selector's answer could not be parsed" in out.err and "uniform" in out.err
    assert result["timestamps"] == [0.75, 2.25, 3.75, 5.25]  # 4 uniform midpoints over 6 s


def test_grpo_raises_the_mean_reward_on_an_attainable_toy(tmp_path):
    qa = [{"question": "the bright screen", "options": ["red", "yellow"], "answer": 1}]
    samples = [make_sample("labelA", FOUR, {"the bright screen": [(0.0, 2.0, "P1")]}, reason="bright"),
               make_sample("labelB", FOUR, {"the bright screen": [(6.0, 8.0, "P1")]}, reason="bright", qa=qa)]
    write_shard(tmp_path / "shards" / "peakclips-000000.tar", samples)
    common = TINY + WIDE + [f"data.shards={tmp_path / 'shards'}", f"run.output_dir={tmp_path / 'run'}"]
    run_sft(load_train_config(None, common + ["model.init_from=base", "optim.batch_size=2", "optim.max_steps=100",
                                              "optim.lr=5e-3"]), "sft2")
    # rl.temperature 0.7: sampling at 1.0 from a tiny model garbles many answers outside the A/B choice
    rl = ["model.init_from=previous", "optim.max_steps=10", "optim.lr=5e-4", "optim.logging_steps=1",
          "rl.num_generations=8", "rl.max_completion_tokens=40", "rl.temperature=0.7", "rl.beta=0.0",
          "rl.reward_weights={temporal_iou: 1.0, format: 0.0, answer_margin: 0.0}"]
    run_rl(load_train_config(None, common + rl))
    rewards = _metric(tmp_path / "run", "rl", "reward")
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert 0.05 < first < 0.8, rewards  # B is answered at the start: the reward is attainable, not given
    assert last > first + 0.25 and last >= 0.8, rewards
