"""`peakclips stats DIR`: the funnel of a built dataset, from its `_stats.json` files and
Parquet indexes (never the tars, so it takes seconds on any size).

Reads finished shards only; used by the CLI, the run summary (peakclips/pipeline.py), the
dataset card (peakclips/hub.py) and the report (peakclips/report/).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter

from peakclips.dataset import load_index, read_stats
from peakclips.schema import ShardStats
from peakclips.shards import is_complete, shard_names

COUNTERS = ("video_drop_reasons", "query_drop_reasons", "errors", "stage_seconds", "nodes")


def load_shard_stats(output: str) -> tuple[list[ShardStats], list[str]]:
    """(stats of the complete shards, names of the incomplete ones)."""
    done, incomplete = [], []
    for name in shard_names(output):
        if is_complete(output, name):
            done.append(read_stats(output, name))
        else:
            incomplete.append(name)
    return done, incomplete


def combine(shards: list[ShardStats]) -> dict:
    """Sum the per-shard stats into one dict of the same shape (counts, reasons, seconds, LLM)."""
    out: dict = {"shards": len(shards), "videos": Counter(), "queries": Counter(), "highlights": 0,
                 "llm": Counter(), **{k: Counter() for k in COUNTERS}}
    for st in shards:
        out["videos"].update(st.videos.model_dump())
        out["queries"].update(st.queries)
        out["highlights"] += st.highlights
        out["llm"].update(st.llm.model_dump(exclude={"price_per_mtok"}))
        for k in COUNTERS:
            out[k].update(getattr(st, k))
    return {k: dict(v) if isinstance(v, Counter) else v for k, v in out.items()}


def index_summary(rows: list[dict]) -> dict:
    """Durations and highlight figures that only the index holds."""
    durations = {r["video_id"]: r["duration_s"] for r in rows if r["duration_s"]}
    kept = {r["video_id"]: r["duration_s"] for r in rows if r["status"] == "ok"}
    ok = [r for r in rows if r["status"] == "ok"]
    return {
        "video_hours": round(sum(durations.values()) / 3600, 4),
        "kept_video_hours": round(sum(kept.values()) / 3600, 4),
        "duration_s": _spread(list(durations.values())),
        "highlights_p1": sum(r["num_p1"] for r in ok),
        "highlights_p2": sum(r["num_p2"] for r in ok),
        "highlight_coverage": _spread([r["highlight_coverage"] for r in ok]),
        "highlight_s": _spread([h["end_s"] - h["start_s"] for r in ok for h in json.loads(r["highlights_json"])]),
    }


def _spread(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "min": round(min(values), 3), "median": round(statistics.median(values), 3),
            "mean": round(statistics.fmean(values), 3), "max": round(max(values), 3)}


def dataset_stats(output: str) -> dict:
    shards, incomplete = load_shard_stats(output)
    summary = combine(shards)
    summary["incomplete_shards"] = incomplete
    summary.update(index_summary(load_index(output, [s.shard for s in shards])))
    summary["config_hashes"] = sorted({s.config_hash for s in shards})
    summary["annotator"] = shards[0].annotator.model_dump() if shards else None
    summary["clip_model"] = shards[0].clip_model and shards[0].clip_model.model_dump() if shards else None
    return summary


def format_funnel(s: dict) -> list[str]:
    """The lines every summary prints: funnel, drops by reason, errors by code, LLM usage."""
    v, q, llm = Counter(s["videos"]), Counter(s["queries"]), Counter(s["llm"])
    lines = [
        f"videos: {v['total']} in, {v['ok']} ok, {v['dropped']} dropped, {v['error']} error",
        f"queries: {q['ok'] + q['dropped']} in, {q['ok']} ok, {q['dropped']} dropped; highlights: {s['highlights']}",
    ]
    drops = {**s["video_drop_reasons"], **{f"query:{k}": n for k, n in s["query_drop_reasons"].items()}}
    if drops:
        lines.append("drops: " + ", ".join(f"{k}={n}" for k, n in sorted(drops.items())))
    if s["errors"]:
        lines.append("errors: " + ", ".join(f"{k}={n}" for k, n in sorted(s["errors"].items())))
    lines.append(f"LLM: {llm['calls']} calls ({llm['cache_hits']} more answered by the cache), "
                 f"{llm['prompt_tokens']} prompt + {llm['completion_tokens']} completion tokens, ${llm['cost_usd']:.4f}")
    lines.append("stage seconds (sum over videos): "
                 + ", ".join(f"{k}={n:.1f}" for k, n in s["stage_seconds"].items()))
    return lines


def format_stats(s: dict) -> str:
    d, hl = s["duration_s"], s["highlight_s"]
    lines = [f"{s['shards']} complete shard(s)"
             + (f", {len(s['incomplete_shards'])} incomplete: {', '.join(s['incomplete_shards'])}"
                if s["incomplete_shards"] else ""), *format_funnel(s)]
    if d["n"]:
        lines.append(f"durations: {s['video_hours']:.2f} h of video ({s['kept_video_hours']:.2f} h kept); per video "
                     f"min {d['min']:.1f} s, median {d['median']:.1f} s, max {d['max']:.1f} s")
    if hl["n"]:
        lines.append(f"highlights: {s['highlights_p1']} P1, {s['highlights_p2']} P2; length median "
                     f"{hl['median']:.1f} s; coverage per query median {s['highlight_coverage']['median']:.2f}")
    if s["annotator"]:
        a, c = s["annotator"], s["clip_model"]
        lines.append(f"annotator: {a['backend']}" + (f" ({a['model']})" if a["model"] else "")
                     + f"; CLIP: {c['model'] if c and c['used'] else 'off'}; config hash: "
                     + ", ".join(s["config_hashes"]))
    return "\n".join(lines)
