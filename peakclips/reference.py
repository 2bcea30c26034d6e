"""The `reference` annotator backend: hand-written annotations of the bundled sample clips
(manifests/reference/*.yaml) replayed through the annotator interface.

It makes the offline sample run mean something, and it is the gold set that
`peakclips annotator-eval` measures a real annotator against. References are keyed by time,
not scene index: each detected scene takes the caption and scores of the reference scene it
overlaps most, so a change of detector or thresholds still lines up.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from peakclips.errors import VideoError
from peakclips.spans import overlap


class _Ref(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RefScene(_Ref):
    start_s: float
    end_s: float
    caption: str


class RefChapter(_Ref):
    start_s: float
    end_s: float
    caption: str


class RefScore(_Ref):
    score: int = Field(ge=1, le=5)
    reason: str


class RefQuery(_Ref):
    query: str
    scores: list[RefScore]


class Reference(_Ref):
    video_id: str
    duration_s: float
    summary: str
    scenes: list[RefScene]
    chapters: list[RefChapter]
    queries: list[RefQuery]


def load_references(folder: str | Path) -> dict[str, dict]:
    """Read every YAML in `folder`, validated; returns plain dicts (they travel to Ray workers)."""
    paths = sorted(Path(folder).glob("*.yaml"))
    if not paths:
        from peakclips.config import ConfigError

        raise ConfigError(f"annotator.reference_dir {Path(folder).resolve()} holds no reference files (*.yaml)")
    refs = {}
    for path in paths:
        ref = Reference.model_validate(yaml.safe_load(path.read_text()))
        for q in ref.queries:
            if len(q.scores) != len(ref.scenes):
                raise ValueError(f"{path}: query '{q.query}' has {len(q.scores)} scores for {len(ref.scenes)} scenes")
        refs[ref.video_id] = ref.model_dump()
    return refs


def best_overlap(start: float, end: float, spans: list[tuple[float, float]]) -> int:
    """Index of the span that overlaps [start, end) most (ties: the earlier span)."""
    overlaps = [overlap((start, end), span) for span in spans]
    return max(range(len(spans)), key=lambda i: (overlaps[i], -i))


def annotate_reference(ref_data: dict | None, video_id: str, scenes: list[dict], manifest_queries: list[str]) -> dict:
    """Captions, chapters, summary, queries and 1-5 scores for detected `scenes` from a reference."""
    if ref_data is None:
        raise VideoError("no_reference", f"no reference annotation for video '{video_id}'")
    ref = Reference.model_validate(ref_data)
    spans = [(s.start_s, s.end_s) for s in ref.scenes]
    match = [best_overlap(s["start_s"], s["end_s"], spans) for s in scenes]
    known = {q.query for q in ref.queries}
    unknown = [q for q in manifest_queries if q not in known]
    if unknown:
        raise VideoError("no_reference", f"the reference has no scores for manifest query '{unknown[0]}'")
    captions = [ref.scenes[m].caption for m in match]
    chapters = []
    for ch in ref.chapters:
        ids = [s["scene_id"] for s in scenes if ch.start_s <= (s["start_s"] + s["end_s"]) / 2 < ch.end_s]
        if ids:
            chapters.append({
                "start_s": scenes[ids[0]]["start_s"],
                "end_s": scenes[ids[-1]]["end_s"],
                "scene_ids": ids,
                "caption": ch.caption,
            })
    queries, scores, reasons = [], [], []
    for q in ref.queries:
        queries.append({"query": q.query, "origin": "manifest" if q.query in manifest_queries else "reference"})
        scores.append([q.scores[m].score for m in match])
        reasons.append([q.scores[m].reason for m in match])
    return {
        "captions": captions,
        "chapters": chapters,
        "summary": ref.summary,
        "queries": queries,
        "llm_scores": scores,
        "llm_reasons": reasons,
    }
