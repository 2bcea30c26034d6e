"""QVHighlights / Moment-DETR jsonl: one line per kept (video, query).

    {"qid": 0, "query": "...", "vid": "KEY", "duration": 29.9997,
     "relevant_windows": [[15.667, 22.958]], "relevant_clip_ids": [7, 8, 9, 10, 11],
     "saliency_scores": [[4, 4, 4], ...]}

- `vid` is the sample key (a safe file name for the video's features); `qid` numbers the
  exported queries from 0 in shard and sample order.
- `relevant_windows`: the query's highlight clips in seconds, touching clips merged.
- `relevant_clip_ids`: the clips of the 2-s grid (clip i = [2i, 2i+2) s, as QVHighlights'
  features) that overlap a window by any positive length, so every window has at least one
  clip and every clip lies on a window; ids are below ceil(duration / 2).
- `saliency_scores`: per relevant clip, three integers 0-4 in place of QVHighlights' three
  annotators: [LLM relevance, CLIP relevance, fused final score], each the average over the
  2-s clip of its scenes' 1-5 scores (weighted by how much of the clip each scene covers),
  minus 1, rounded half up, clamped to 0-4. CLIP relevance is the similarity mapped to 1-5
  with the run's alpha/beta (the highlights stage's mapping); without CLIP it repeats the LLM
  score. A clip wholly inside a highlight scene the LLM scored 5 gets 4 from the LLM; a clip
  at a window's edge gets less, as it partly shows a less relevant scene.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Iterator

from peakclips.export import windows
from peakclips.scores import clip_to_relevance
from peakclips.spans import overlap

CLIP_LEN_S = 2.0


def clip_ids(wins: list[list[float]], duration: float) -> list[int]:
    """Grid clips that overlap any window by a positive length.

    >>> clip_ids([[3.0, 4.5], [9.9, 10.0]], 12.0)
    [1, 2, 4]
    """
    n = math.ceil(duration / CLIP_LEN_S - 1e-9)
    ids = set()
    for start, end in wins:
        first = int(start // CLIP_LEN_S)
        for i in range(first, n):
            lo = i * CLIP_LEN_S
            if lo >= end:
                break
            if overlap((start, end), (lo, lo + CLIP_LEN_S)) > 0:
                ids.add(i)
    return sorted(ids)


def _score(x: float) -> int:
    """A 1-5 score as an integer 0-4 (rounded half up, clamped)."""
    return min(4, max(0, math.floor(x + 0.5) - 1))


def saliency(clip_id: int, duration: float, scenes: list[dict], scores: list[dict], clip_model: dict | None) -> list[int]:
    """[LLM, CLIP, final] for one grid clip: each score averaged over the clip's scenes,
    weighted by how long each scene covers the clip, then as an integer 0-4."""
    lo, hi = clip_id * CLIP_LEN_S, min((clip_id + 1) * CLIP_LEN_S, duration)
    use_clip = bool(clip_model and clip_model["used"]) and all(s["clip"] is not None for s in scores)
    total, sums = 0.0, [0.0, 0.0, 0.0]
    for scene, sc in zip(scenes, scores):
        w = overlap((lo, hi), (scene["start_s"], scene["end_s"]))
        clip = clip_to_relevance(sc["clip"], clip_model["alpha"], clip_model["beta"]) if use_clip else sc["llm"]
        for k, v in enumerate((sc["llm"], clip, sc["final"])):
            sums[k] += w * v
        total += w
    return [_score(v / total) for v in sums] if total > 0 else [0, 0, 0]


def records(sample: dict) -> Iterator[dict]:
    """The QVHighlights record of each kept query of one sample (without `qid`)."""
    for q in sample["queries"]:
        wins = windows(q["highlights"])
        ids = clip_ids(wins, sample["duration_s"])
        yield {"query": q["query"], "vid": sample["key"], "duration": sample["duration_s"],
               "relevant_windows": wins, "relevant_clip_ids": ids,
               "saliency_scores": [saliency(i, sample["duration_s"], sample["scenes"], q["scene_scores"],
                                            sample["clip_model"]) for i in ids]}


def lines(samples: Iterable[dict]) -> Iterator[str]:
    qid = 0
    for sample in samples:
        for rec in records(sample):
            yield json.dumps({"qid": qid, **rec})
            qid += 1
