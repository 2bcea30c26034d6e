"""`peakclips annotator-eval OUTPUT_DIR`: how well an annotated dataset agrees with the
hand-written reference annotations of the sample clips (manifests/reference).

It reads finished shards only (each shard's Parquet index: one row per (video, query), dropped
ones too, with the LLM scores, the highlight clips and the scene start times), so it measures
the annotator's answers before any filter removed a query. Matching follows the reference
backend (peakclips/reference.py): a query is matched by its text to a reference query of the
same video, and each detected scene is compared with the reference scene it overlaps most.

Metrics, over every matched (query, scene) pair:
  - exact and +-1 accuracy of the 1-5 relevance score;
  - Spearman rank correlation of model and reference scores, pooled over all pairs, and the
    mean over queries (a query whose model or reference scores are all equal has no rank
    correlation and is left out of that mean);
and per matched query, highlight overlap: the temporal IoU of the union of the P1/P2 highlight
clips with the union of the reference's score-5 scenes (mean, and the share with IoU >= 0.5).
To measure a new model, annotate the clips with the reference queries
(manifests/sample_eval.jsonl, pipelines/annotator-eval.yaml; see docs/annotator.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from peakclips.dataset import load_index
from peakclips.errors import DatasetError
from peakclips.reference import best_overlap, load_references
from peakclips.shards import complete_shards
from peakclips.spans import temporal_iou

DEFAULT_REFERENCES = Path(__file__).resolve().parent.parent / "manifests" / "reference"


class EvalError(DatasetError):
    """Nothing to compare: the message says why and what to run instead."""


def average_ranks(x: list[float]) -> list[float]:
    """1-based ranks, ties sharing their mean rank.

    >>> average_ranks([3, 1, 3, 2])
    [3.5, 1.0, 3.5, 2.0]
    """
    order = sorted(range(len(x)), key=x.__getitem__)
    ranks = [0.0] * len(x)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(a: list[float], b: list[float]) -> float | None:
    """Spearman's rho (Pearson on average ranks); None when either side is constant."""
    import numpy as np

    if len(a) < 2:
        return None
    ra, rb = np.array(average_ranks(a)), np.array(average_ranks(b))
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else None


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


@dataclass
class Tally:
    """Pairs and per-query results for one video, or for all of them."""

    pred: list[int] = field(default_factory=list)
    gold: list[int] = field(default_factory=list)
    query_rhos: list[float] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)

    def add(self, other: Tally) -> None:
        for name in ("pred", "gold", "query_rhos", "ious"):
            getattr(self, name).extend(getattr(other, name))

    def summary(self) -> dict:
        n = len(self.pred)
        pairs = list(zip(self.pred, self.gold))
        return {
            "queries": len(self.ious), "pairs": n,
            "exact": sum(p == g for p, g in pairs) / n if n else None,
            "within_1": sum(abs(p - g) <= 1 for p, g in pairs) / n if n else None,
            "spearman_pooled": spearman(self.pred, self.gold),
            "spearman_per_query": sum(self.query_rhos) / len(self.query_rhos) if self.query_rhos else None,
            "queries_with_rank_correlation": len(self.query_rhos),
            "highlight_tiou": sum(self.ious) / len(self.ious) if self.ious else None,
            "highlight_r_at_0_5": sum(i >= 0.5 for i in self.ious) / len(self.ious) if self.ious else None,
        }


def read_index(output: str) -> list[dict]:
    complete = complete_shards(output)
    if not complete:
        raise EvalError(f"no finished shard (peakclips-NNNNNN.parquet with its _stats.json) in {output}")
    return load_index(output, complete)


def score_query(row: dict, ref: dict, ref_query: dict) -> Tally:
    """One annotated query against its reference: scene pairs by time, and highlight overlap."""
    starts = row["scene_starts_s"]
    ends = starts[1:] + [row["duration_s"]]
    spans = [(s["start_s"], s["end_s"]) for s in ref["scenes"]]
    gold = [ref_query["scores"][best_overlap(a, b, spans)]["score"] for a, b in zip(starts, ends)]
    pred = list(row["llm_scores"])
    t = Tally(pred=pred, gold=gold)
    rho = spearman(pred, gold)
    if rho is not None:
        t.query_rhos.append(rho)
    clips = [(h["start_s"], h["end_s"]) for h in json.loads(row["highlights_json"] or "[]")]
    fives = [span for span, s in zip(spans, ref_query["scores"]) if s["score"] == 5]
    t.ious.append(temporal_iou(clips, fives))
    return t


def evaluate(output: str, reference_dir: str | Path | None = None) -> dict:
    refs = load_references(reference_dir or DEFAULT_REFERENCES)
    rows = read_index(output)
    videos: dict[str, Tally] = {}
    unmatched, errors, annotator = 0, set(), set()
    for row in rows:
        ref = refs.get(row["video_id"])
        if ref is None:
            continue
        if row["error"]:
            errors.add(row["video_id"])
            continue
        annotator.add((row["annotator_backend"], row["annotator_model"]))
        by_text = {_norm(q["query"]): q for q in ref["queries"]}
        ref_query = by_text.get(_norm(row["query"] or ""))
        if ref_query is None or not row["llm_scores"]:
            unmatched += 1
            continue
        videos.setdefault(row["video_id"], Tally()).add(score_query(row, ref, ref_query))
    if not videos:
        raise EvalError(
            f"no query in {output} matches a reference query of a reference video: annotate the "
            "sample clips with the reference queries (--manifest manifests/sample_eval.jsonl), "
            "since generated queries cannot be compared.")
    overall = Tally()
    for t in videos.values():
        overall.add(t)
    return {
        "output": output, "annotator": sorted(f"{b}/{m}" if m else b for b, m in annotator),
        "reference_videos": len(refs), "videos_compared": len(videos), "videos_with_errors": sorted(errors),
        "queries_unmatched": unmatched,
        "overall": overall.summary(),
        "per_video": {v: t.summary() for v, t in sorted(videos.items())},
    }


def format_report(result: dict) -> str:
    def f(x, digits=3):
        return "-" if x is None else f"{x:.{digits}f}"

    lines = [
        f"annotator-eval of {result['output']} ({', '.join(result['annotator'])}) against the reference annotations",
        f"videos compared: {result['videos_compared']} of {result['reference_videos']}"
        f" (with errors: {len(result['videos_with_errors'])}); queries not in the reference: {result['queries_unmatched']}",
        "",
        "| video | queries | pairs | exact | within 1 | Spearman (pooled) | Spearman (per query) | highlight tIoU | R@0.5 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in [*result["per_video"].items(), ("**all**", result["overall"])]:
        lines.append(f"| {name} | {s['queries']} | {s['pairs']} | {f(s['exact'])} | {f(s['within_1'])} | "
                     f"{f(s['spearman_pooled'])} | {f(s['spearman_per_query'])} | {f(s['highlight_tiou'])} | "
                     f"{f(s['highlight_r_at_0_5'], 2)} |")
    return "\n".join(lines)
