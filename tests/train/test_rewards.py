"""Rewards: the answer margin from a real (tiny, random) Qwen2.5-VL answerer on the frames chosen
from the predicted clips, the format reward and the temporal IoU."""

from __future__ import annotations

import numpy as np
import pytest

from peakclips.train import rewards
from peakclips.train.config import AnswererConfig
from peakclips.train.tasks import answerer_prompt

TIMES = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
CLIP_4_6 = '{"clips": [{"start_s": 4.0, "end_s": 6.0, "priority": "P1", "reason": "blue"}]}'


@pytest.fixture(scope="module")
def margin():
    from peakclips.train.model import load_answerer

    model, processor = load_answerer(AnswererConfig(tiny=True, max_pixels=3136), seed=0)
    return rewards.AnswerMarginReward(model, processor, k=4, mode="focused", tau=1.0)


def test_margin_reward_properties():
    assert rewards.margin_reward([0.25] * 4, 0) == 0.0
    assert rewards.margin_reward([0.97, 0.01, 0.01, 0.01], 0) > 0.99
    assert rewards.margin_reward([0.01, 0.97, 0.01, 0.01], 0) < -0.99
    sharp, soft = rewards.margin_reward([0.4, 0.2, 0.2, 0.2], 0, 0.5), rewards.margin_reward([0.4, 0.2, 0.2, 0.2], 0, 2)
    assert 0 < soft < sharp < 1  # a smaller tau saturates sooner
    assert rewards.margin_reward([1.0, 0.0], 0) <= 1.0 and rewards.margin_reward([0.0, 1.0], 0) >= -1.0


def test_answerer_frames_come_from_the_predicted_clips(margin):
    assert margin.frames_for(CLIP_4_6, 8.0, TIMES) == [4, 5]  # candidates at 4.5 and 5.5 s
    assert margin.frames_for("no idea", 8.0, TIMES) == [0, 2, 4, 6]  # unparsable: uniform (1, 3, 5, 7 s)


def test_answer_margin_from_the_answerer(margin):
    frames = np.random.default_rng(0).integers(0, 255, (8, 56, 56, 3), dtype=np.uint8)
    qa = [{"question": "What colour?", "options": ["red", "green", "blue", "white"], "answer": 2},
          {"question": "Is it day?", "options": ["yes", "no"], "answer": 0}]
    # what the answerer must see for the first rollout: the frames at 4.5 and 5.5 s, and those times
    seen = [{"prompt": answerer_prompt(qa[0]["question"], qa[0]["options"], [4.5, 5.5]), "frames": frames[[4, 5]],
             "times": [4.5, 5.5], "duration": 8.0, "options": qa[0]["options"]},
            {"prompt": answerer_prompt(qa[1]["question"], qa[1]["options"], [0.5, 2.5, 4.5, 6.5]),
             "frames": frames[[0, 2, 4, 6]], "times": [0.5, 2.5, 4.5, 6.5], "duration": 8.0,
             "options": qa[1]["options"]}]
    probs = margin.option_probs(seen)
    assert [len(p) for p in probs] == [4, 2] and all(abs(sum(p) - 1) < 1e-5 for p in probs)
    got = margin(None, [CLIP_4_6, "garbage"], duration=[8.0, 8.0], qa=qa, frames=[frames, frames],
                 times=[TIMES, TIMES])
    assert got == pytest.approx([rewards.margin_reward(probs[0], 2), rewards.margin_reward(probs[1], 0)], abs=1e-4)
    assert all(-1 <= r <= 1 for r in got)


def test_format_and_iou_rewards():
    texts = [CLIP_4_6, CLIP_4_6.replace("4.0", "2.0"), "Sure! " + CLIP_4_6, "nothing"]
    assert rewards.format_reward(None, texts, duration=[8.0] * 4) == [1.0, 1.0, 0.0, 0.0]
    gold = [{"start_s": 4.0, "end_s": 6.0}]
    iou = rewards.temporal_iou_reward(None, texts, duration=[8.0] * 4, highlights=[gold, gold, gold, None])
    assert iou == [1.0, 0.5, 1.0, None]  # the IoU grades the clips; the format reward grades the form
