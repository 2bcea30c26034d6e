"""The training tasks: what the model is asked (prompts/train/*.jinja) and what it must answer.

Each stage turns one shard sample into examples `{task, prompt, target, ...}` (the stream in
data.py adds the frames and their times):
  sft1  ground    caption -> {"start_s", "end_s"} of its scene or chapter
        describe  a scene's span -> its caption
        rate      (query, scene span) -> {"score": 1-5, "reason"} (the annotator's relevance)
  sft2  select    (video, query) -> the P1/P2 highlight clips in the CLIPS FORMAT below
  rl    select    (video, multiple-choice question) -> clips; the answer grades them (rewards.py)

CLIPS FORMAT (documented in docs/training.md; one fixed format, times in seconds to 0.1 s):
    {"clips": [{"start_s": 15.7, "end_s": 23.0, "priority": "P1", "reason": "..."}]}
`parse_clips` reads it back leniently (code fences, text around the object, clips out of the
video clamped); `strict_clips` is the exact check the format reward uses.
"""

from __future__ import annotations

import json
import random
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from peakclips.prompts import Prompt, data_text, load_prompts, render
from peakclips.schema import Sample

PROMPTS_DIR = Path(__file__).resolve().parents[2] / "prompts" / "train"
PROMPT_NAMES = ["selector", "grounding", "describe_span", "rate_scene", "answerer"]
LETTERS = "ABCDEFGHIJ"
TEXT_LIMIT = 1000  # characters of a query, caption or question inside <data> tags


@lru_cache(maxsize=1)
def train_prompts() -> dict[str, Prompt]:
    return load_prompts(PROMPTS_DIR, names=PROMPT_NAMES)


def _t(x: float) -> float:
    return round(float(x), 1)


# --- the clips format ----------------------------------------------------------------------------


class Clip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start_s: float
    end_s: float
    priority: Literal["P1", "P2"]
    reason: str


class ClipsAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clips: list[Clip]


def format_clips(highlights: list[dict]) -> str:
    """The target text for a list of highlights (sorted by start, times to 0.1 s).

    >>> format_clips([{"start_s": 2.04, "end_s": 4.0, "priority": "P1", "reason": "A bird.", "scene_ids": [1]}])
    '{"clips": [{"start_s": 2.0, "end_s": 4.0, "priority": "P1", "reason": "A bird."}]}'
    """
    clips = [{"start_s": _t(h["start_s"]), "end_s": _t(h["end_s"]), "priority": h["priority"],
              "reason": h.get("reason", "")} for h in sorted(highlights, key=lambda h: h["start_s"])]
    return json.dumps({"clips": clips}, ensure_ascii=False)


def _json_object(text: str) -> str:
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text.strip())
    start, end = text.find("{"), text.rfind("}")
    return text[start:end + 1] if 0 <= start < end else text


def parse_clips(text: str, duration_s: float) -> tuple[list[dict], str | None]:
    """Clips from a model's answer, clamped into the video; ([], why) when there are none.

    >>> parse_clips('Sure: {"clips": [{"start_s": 8, "end_s": 12, "priority": "P2"}]}', 10.0)
    ([{'start_s': 8.0, 'end_s': 10.0, 'priority': 'P2', 'reason': ''}], None)
    >>> parse_clips('{"clips": [', 10.0)[1]
    'not JSON: Expecting value at char 11'
    """
    try:
        data = json.loads(_json_object(text))
    except json.JSONDecodeError as e:
        return [], f"not JSON: {e.msg} at char {e.pos}"
    items = data.get("clips") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return [], 'no "clips" list'
    clips = []
    for item in items:
        try:
            c = Clip.model_validate({"reason": "", **item} if isinstance(item, dict) else item)
        except ValidationError:
            continue
        start, end = max(0.0, c.start_s), min(duration_s, c.end_s)
        if end > start:
            clips.append({"start_s": start, "end_s": end, "priority": c.priority, "reason": c.reason})
    return (clips, None) if clips else ([], "no valid clip inside the video")


def strict_clips(text: str, duration_s: float) -> bool:
    """True when `text` is exactly the clips format: one JSON object, at least one clip, every
    clip with the four keys, 0 <= start < end <= duration."""
    try:
        answer = ClipsAnswer.model_validate_json(text.strip())
    except ValidationError:
        return False
    return bool(answer.clips) and all(0 <= c.start_s < c.end_s <= duration_s + 0.05 for c in answer.clips)


# --- examples per stage --------------------------------------------------------------------------


def selector_prompt(query: str, times: list[float], duration_s: float, prompt: Prompt | None = None) -> str:
    """The selector's prompt (sft2, rl, select); `prompt`: a recorded template instead of the current one."""
    return render(prompt or train_prompts()["selector"], query=data_text(query, TEXT_LIMIT), times=times,
                  duration_s=duration_s)


def answerer_prompt(question: str, options: list[str], times: list[float]) -> str:
    return render(train_prompts()["answerer"], question=data_text(question, TEXT_LIMIT), times=times,
                  options=[(letter, data_text(o, TEXT_LIMIT)) for letter, o in zip(LETTERS, options)])


def _ground(sample: Sample, times: list[float], rng: random.Random) -> dict | None:
    spans = [s for s in sample.scenes if s.caption] + list(sample.chapters)
    if not spans:
        return None
    s = rng.choice(spans)
    prompt = render(train_prompts()["grounding"], caption=data_text(s.caption, TEXT_LIMIT), times=times,
                    duration_s=sample.duration_s)
    return {"task": "ground", "prompt": prompt,
            "target": json.dumps({"start_s": _t(s.start_s), "end_s": _t(s.end_s)})}


def _describe(sample: Sample, times: list[float], rng: random.Random) -> dict | None:
    scenes = [s for s in sample.scenes if s.caption]
    if not scenes:
        return None
    s = rng.choice(scenes)
    prompt = render(train_prompts()["describe_span"], start_s=s.start_s, end_s=s.end_s, times=times,
                    duration_s=sample.duration_s)
    return {"task": "describe", "prompt": prompt, "target": s.caption}


def _rate(sample: Sample, times: list[float], rng: random.Random) -> dict | None:
    pairs = [(q, i) for q in sample.queries for i in range(min(len(q.scene_scores), len(sample.scenes)))]
    if not pairs:
        return None
    q, i = rng.choice(pairs)
    s, score = sample.scenes[i], q.scene_scores[i]
    prompt = render(train_prompts()["rate_scene"], query=data_text(q.query, TEXT_LIMIT), start_s=s.start_s, end_s=s.end_s,
                    times=times, duration_s=sample.duration_s)
    return {"task": "rate", "prompt": prompt,
            "target": json.dumps({"score": score.llm, "reason": score.reason}, ensure_ascii=False)}


SFT1_TASKS = {"ground": _ground, "describe": _describe, "rate": _rate}


def sft1_examples(sample: Sample, times: list[float], rng: random.Random, *,
                  weights: dict[str, float], per_video: int) -> list[dict]:
    """`per_video` temporal-grounding examples, each task drawn with the mixing `weights`."""
    names = [n for n, w in weights.items() if w > 0]
    out = []
    for _ in range(per_video):
        name = rng.choices(names, weights=[weights[n] for n in names])[0]
        ex = SFT1_TASKS[name](sample, times, rng)
        if ex is not None:
            out.append(ex)
    return out


def sft2_examples(sample: Sample, times: list[float], rng: random.Random) -> list[dict]:
    """One key-clip example per query that has highlights."""
    return [{"task": "select", "prompt": selector_prompt(q.query, times, sample.duration_s),
             "target": format_clips([h.model_dump() for h in q.highlights])}
            for q in sample.queries if q.highlights]


def rl_examples(sample: Sample, times: list[float], rng: random.Random) -> list[dict]:
    """One rollout prompt per multiple-choice item; the query's highlights ride along when the
    question was also annotated as a query (for the temporal-IoU reward)."""
    highlights = {q.query: [h.model_dump() for h in q.highlights] for q in sample.queries}
    return [{"task": "select", "prompt": selector_prompt(qa.question, times, sample.duration_s), "target": None,
             "qa": qa.model_dump(), "highlights": highlights.get(qa.question)}
            for qa in sample.qa]
