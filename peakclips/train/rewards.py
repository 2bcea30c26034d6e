"""Rewards of the RL stage, as plain functions in TRL's reward-function form.

Each is called as `f(prompts, completions, **columns)` (the example's columns: duration, qa,
highlights, frames, times, ...) and returns one float per completion, or None where it does not
apply, which the trainer leaves out of the weighted sum (TRL's convention):
  format_reward         1.0 when the answer is exactly the clips format (tasks.py), else 0.0
  temporal_iou_reward   IoU of the predicted clips with the PeakClips highlights of the question,
                        None when the question was not annotated as a query
  AnswerMarginReward    the K-frames reward: clip2frame draws k frames from the predicted clips
                        (uniform when none parse), a frozen answerer MLLM reads them with the
                        question, and tanh(log(p(correct) / mean p(wrong)) / tau)
"""

from __future__ import annotations

import math

import torch

from peakclips.clip2frame import clip2frame
from peakclips.frametimes import nearest
from peakclips.spans import temporal_iou
from peakclips.train.batch import encode, to_device
from peakclips.train.tasks import LETTERS, answerer_prompt, parse_clips, strict_clips


def margin_reward(probs: list[float], answer: int, tau: float = 1.0) -> float:
    """tanh((1/tau) * log(p(answer) / mean of the other options' p)): 0 when the answerer is
    indifferent, towards 1 when it prefers the right option, towards -1 when a wrong one.

    >>> round(margin_reward([0.7, 0.1, 0.1, 0.1], 0), 4)
    0.96
    >>> margin_reward([0.25, 0.25, 0.25, 0.25], 2)
    0.0
    >>> round(margin_reward([0.1, 0.7, 0.1, 0.1], 0, tau=2.0), 4)
    -0.5
    """
    eps = 1e-12
    wrong = [p for i, p in enumerate(probs) if i != answer]
    return math.tanh(math.log((probs[answer] + eps) / (sum(wrong) / len(wrong) + eps)) / tau)


def format_reward(prompts, completions: list[str], duration: list[float], **_) -> list[float]:
    """1.0 for an answer in exactly the clips format with times inside the video.

    >>> format_reward(None, ['{"clips": [{"start_s": 1.0, "end_s": 2.0, "priority": "P1", "reason": "x"}]}',
    ...                      'clips: 1-2 s'], duration=[10.0, 10.0])
    [1.0, 0.0]
    """
    return [float(strict_clips(c, d)) for c, d in zip(completions, duration)]


def temporal_iou_reward(prompts, completions: list[str], duration: list[float],
                        highlights: list[list[dict] | None], **_) -> list[float | None]:
    """IoU of the predicted clips with the question's highlights (spans.temporal_iou); None
    where the question has no highlights.

    >>> temporal_iou_reward(None, ['{"clips": [{"start_s": 0, "end_s": 4, "priority": "P1"}]}', 'oops', 'x'],
    ...     duration=[10.0] * 3, highlights=[[{"start_s": 2, "end_s": 6}], [{"start_s": 2, "end_s": 6}], None])
    [0.3333333333333333, 0.0, None]
    """
    out: list[float | None] = []
    for text, d, gold in zip(completions, duration, highlights):
        if not gold:
            out.append(None)
            continue
        clips, _ = parse_clips(text, d)
        out.append(temporal_iou([(c["start_s"], c["end_s"]) for c in clips],
                                [(h["start_s"], h["end_s"]) for h in gold]))
    return out


def nearest_frames(targets: list[float], times: list[float]) -> list[int]:
    """Indices of the candidate frames nearest to `targets`, in time order, without repeats.

    >>> nearest_frames([0.9, 1.1, 3.0], [0.0, 1.0, 2.0, 3.0])
    [1, 3]
    """
    return sorted({nearest(times, t) for t in targets})


class AnswerMarginReward:
    """The answer-margin reward with a frozen answerer (a Qwen2.5-VL: 7B in the paper, tiny offline)."""

    __name__ = "answer_margin"

    def __init__(self, model, processor, k: int, mode: str = "auto", tau: float = 1.0):
        self.model, self.processor, self.k, self.mode, self.tau = model, processor, k, mode, tau
        tokenizer = processor.tokenizer
        self.letter_ids = [tokenizer.convert_tokens_to_ids(letter) for letter in LETTERS]

    def frames_for(self, completion: str, duration: float, times: list[float]) -> list[int]:
        clips, _ = parse_clips(completion, duration)
        return nearest_frames(clip2frame(clips, duration, min(self.k, len(times)), self.mode).times_s, times)

    @torch.no_grad()
    def option_probs(self, examples: list[dict]) -> list[list[float]]:
        """Answerer probabilities of each option letter (softmax over the option letters only)."""
        batch = to_device(encode(self.processor, examples, padding_side="left"), self.model.device)
        logits = self.model(**batch, logits_to_keep=1).logits[:, -1].float()
        out = []
        for row, ex in zip(logits, examples):
            ids = self.letter_ids[:len(ex["options"])]
            out.append(torch.softmax(row[ids], dim=-1).tolist())
        return out

    def __call__(self, prompts, completions: list[str], duration: list[float], qa: list[dict],
                 frames: list, times: list[list[float]], **_) -> list[float]:
        examples = []
        for text, d, item, fr, ts in zip(completions, duration, qa, frames, times):
            idx = self.frames_for(text, d, ts)
            picked = [ts[i] for i in idx]
            examples.append({"prompt": answerer_prompt(item["question"], item["options"], picked),
                             "frames": fr[idx], "times": picked, "duration": d, "options": item["options"]})
        probs = self.option_probs(examples)
        return [margin_reward(p, item["answer"], self.tau) for p, item in zip(probs, qa)]
