"""Annotator benchmark (SPEC section 8): throughput against the local OpenAI-compatible server
(tests/llm_server.py) with a fixed latency, and calls and tokens per video.

1. Throughput: the annotate stage as the pipeline runs it (Ray Data, one actor, async, its
   videos sharing `max_concurrency`) over copies of the sample clips' scenes and frames, against
   the server with 200 ms per request. Achieved requests/s are measured at the server (first
   arrival to last reply, so actor start-up is not counted) and compared with the ceiling
   max_concurrency / 0.2 s. One row repeats concurrency 16 with one video at a time per actor
   (videos_per_actor = 1), the shape the stage had before it was async across videos. Default
   `videos_per_actor` (= max_concurrency) elsewhere.
2. Calls and tokens per video for the sample manifest: our annotator (one relevance call per
   query over all scenes) beside a per-(query, scene) baseline (the same prompts with
   relevance_window = 1, i.e. one relevance call per pair). Tokens are the server's count
   (4 characters per token, 85 per image), the same for both columns.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LATENCY_S = 0.2


def sample_rows(scratch: str) -> list[dict]:
    """The sample clips through ingest and the scenes+frames pass (in this process, no Ray)."""
    from peakclips.config import load_config
    from peakclips.manifest import plan_tasks, read_manifest
    from peakclips.stages.ingest import Ingest
    from peakclips.stages.scenes import Scenes

    cfg = load_config(REPO / "pipelines/sample.yaml", [f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]",
                                                       "frames.num_candidates=8"])
    stages = [Ingest(cfg.ingest, scratch), Scenes(cfg.scenes, cfg.frames, scratch)]  # one decode pass
    rows = []
    for t in plan_tasks(read_manifest(REPO / "manifests/sample.jsonl"), cfg.shard_size):
        row = {"index": t.index, "shard_id": t.shard_id, "key": t.key, "video_id": t.row.video_id,
               "uri": t.row.uri, "manifest": t.row.model_dump_json(), "error": None, "error_detail": None}
        for stage in stages:
            row = stage(row)
        assert not row["error"], row["error"]
        rows.append({k: row[k] for k in ("video_id", "manifest", "scenes", "duration_s", "scene_frames", "error")})
    return rows


def copies(rows: list[dict], n: int) -> list[dict]:
    """n videos cycling through the sample; each copy differs (its duration), so no reply is a cache hit."""
    return [dict(rows[i % len(rows)], video_id=f"{rows[i % len(rows)]['video_id']}-{i}",
                 duration_s=rows[i % len(rows)]["duration_s"] + 0.1 * (i // len(rows))) for i in range(n)]


def throughput(rows: list[dict], concurrency: int, videos_per_actor: int | None, n_videos: int, tmp: str) -> dict:
    import ray

    from peakclips.config import AnnotatorConfig
    from peakclips.prompts import load_prompts
    from peakclips.stages.annotate import Annotate
    from tests.llm_server import FakeLLMServer

    with FakeLLMServer(latency_s=LATENCY_S) as srv:
        cfg = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="bench", max_concurrency=concurrency,
                              videos_per_actor=videos_per_actor, cache=f"{tmp}/{uuid.uuid4().hex}.sqlite")
        videos = copies(rows, n_videos)
        ds = ray.data.from_items(videos, override_num_blocks=len(videos)).map(  # as pipeline.py does
            Annotate, fn_constructor_kwargs={"cfg": cfg, "prompts": load_prompts(REPO / "prompts"), "references": {}},
            num_cpus=0, compute=ray.data.ActorPoolStrategy(size=1, max_concurrent_calls_per_actor=cfg.videos_per_actor))
        out = ds.take_all()
        times = sorted(r["time"] for r in srv.requests if r["path"].endswith("/chat/completions"))
    assert all(r["error"] is None for r in out), [r["error"] for r in out if r["error"]]
    achieved = len(times) / (times[-1] - times[0] + LATENCY_S)
    ceiling = concurrency / LATENCY_S
    return {"max_concurrency": concurrency, "videos_per_actor": cfg.videos_per_actor, "videos": n_videos,
            "requests": len(times), "achieved_rps": achieved, "ceiling_rps": ceiling, "ratio": achieved / ceiling}


def per_video_costs(rows: list[dict], tmp: str) -> list[dict]:
    import asyncio

    from peakclips.config import AnnotatorConfig
    from peakclips.prompts import load_prompts
    from peakclips.stages.annotate import Annotate
    from tests.llm_server import FakeLLMServer

    result = []
    with FakeLLMServer() as srv:
        for name, window in (("ours", 64), ("per_pair", 1)):
            cfg = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="bench", relevance_window=window,
                                  cache=f"{tmp}/costs-{name}.sqlite")
            stage = Annotate(cfg, load_prompts(REPO / "prompts"), {})

            async def main(stage=stage):
                return [await stage(dict(r)) for r in rows]

            for r in asyncio.run(main()):
                assert r["error"] is None, r["error"]
                result.append({"video_id": r["video_id"], "annotator": name, "scenes": len(r["scenes"]),
                               "queries": len(r["queries"]), "calls": r["llm_calls"],
                               "tokens": r["prompt_tokens"] + r["completion_tokens"]})
    return result


def main(out_dir) -> str:
    import ray

    tmp = tempfile.mkdtemp(prefix="bench-annotator-")
    rows = sample_rows(tmp)
    from peakclips.terminal import RAY_RUNTIME_ENV

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             runtime_env=RAY_RUNTIME_ENV)
    ray.data.DataContext.get_current().enable_progress_bars = False
    # Enough videos for about 13 s at the ceiling, so the start and the last video's tail
    # (its chapters, queries and relevance calls go one after the other) weigh little.
    runs = [throughput(rows, c, None, n, tmp) for c, n in ((1, 6), (4, 24), (16, 96))]
    runs.append(throughput(rows, 16, 1, 24, tmp))
    costs = per_video_costs(rows, tmp)
    Path(out_dir, "annotator.json").write_text(json.dumps({"throughput": runs, "costs": costs}, indent=2))

    lines = [f"Local OpenAI-compatible server, {LATENCY_S * 1000:.0f} ms per request; the annotate stage on "
             "Ray Data (1 actor); requests/s measured at the server.", "",
             "| max_concurrency | videos per actor | requests | achieved req/s | ceiling (concurrency / 0.2 s) | ratio |",
             "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['max_concurrency']} | {r['videos_per_actor']} | {r['requests']} | {r['achieved_rps']:.1f} | "
                     f"{r['ceiling_rps']:.0f} | {r['ratio']:.0%} |")
    lines += ["", "Calls and tokens per video, sample manifest (3 generated queries per video):", "",
              "| video | scenes | calls (ours) | bound scenes + queries + 2 | calls (per pair) | tokens (ours) | "
              "tokens (per pair) | tokens ours / per pair |", "|---|---|---|---|---|---|---|---|"]
    ours = {c["video_id"]: c for c in costs if c["annotator"] == "ours"}
    pair = {c["video_id"]: c for c in costs if c["annotator"] == "per_pair"}
    for vid, o in ours.items():
        p = pair[vid]
        lines.append(f"| {vid} | {o['scenes']} | {o['calls']} | {o['scenes'] + o['queries'] + 2} | {p['calls']} | "
                     f"{o['tokens']} | {p['tokens']} | {o['tokens'] / p['tokens']:.2f} |")
    so, sp = sum(o["tokens"] for o in ours.values()), sum(p["tokens"] for p in pair.values())
    lines.append(f"| **all** | {sum(o['scenes'] for o in ours.values())} | {sum(o['calls'] for o in ours.values())} | "
                 f"{sum(o['scenes'] + o['queries'] + 2 for o in ours.values())} | {sum(p['calls'] for p in pair.values())} | "
                 f"{so} | {sp} | {so / sp:.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench-out")
    out.mkdir(exist_ok=True)
    print(main(out))
