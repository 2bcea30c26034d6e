"""Stage 4, annotate: hierarchical captions, queries and per-(query, scene) relevance.

Order of calls for one video (backend `openai`), each validated and cached (peakclips/llm.py):
  1. one caption per scene, from the scene's frames (image_url parts), all in flight at once;
  2. one call for chapters (groups of consecutive scenes, each captioned) and the video summary;
  3. queries: the manifest's `queries` and `qa` questions as given, else one call that writes
     `annotator.queries_per_video` of them from the captions;
  4. relevance: one call per query over all scenes (windows of `annotator.relevance_window`
     scenes for long videos), a 1-5 score and a one-sentence reason per scene.
So a video costs scenes + 2 + queries calls (+1 per extra window), not scenes x queries.
The `reference` backend (peakclips/reference.py) fills the same columns from hand-written files.
"""

from __future__ import annotations

import asyncio
import base64
import json

from peakclips.config import AnnotatorConfig
from peakclips.errors import VideoError
from peakclips.prompts import (
    CaptionReply,
    ChaptersReply,
    Prompt,
    QueriesReply,
    RelevanceReply,
    cap_text,
    render,
    reply_schema,
)
from peakclips.reference import annotate_reference
from peakclips.stages import Stage


def image_part(jpeg: bytes, size: int) -> dict:
    """A JPEG as an OpenAI `image_url` content part, downscaled to `size` on its longest side."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(jpeg))
    if max(img.size) > size:
        img.thumbnail((size, size), Image.BILINEAR)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=85)
        jpeg = buf.getvalue()
    return {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}


def chapters_from_reply(reply: ChaptersReply, scenes: list[dict]) -> list[dict]:
    """Chapters as runs of scenes from their first scenes.

    Lenient on purpose: starts are sorted and de-duplicated and the first chapter is made to
    start at scene 0, so any schema-valid reply tiles the scenes (chapters are context for
    captions and training tasks; a re-ask for an ordering slip would cost more than it buys).
    Starts beyond the last scene are an error.
    """
    starts: dict[int, str] = {}
    for ch in sorted(reply.chapters, key=lambda c: c.first_scene):
        if ch.first_scene >= len(scenes):
            raise ValueError(f"chapter starts at scene {ch.first_scene}; the video has {len(scenes)}")
        starts.setdefault(ch.first_scene, ch.caption)
    firsts = sorted(starts)
    firsts[0] = 0
    captions = [starts[f] for f in sorted(starts)]
    out = []
    for i, (first, caption) in enumerate(zip(firsts, captions)):
        end = firsts[i + 1] if i + 1 < len(firsts) else len(scenes)
        ids = list(range(first, end))
        out.append({"start_s": scenes[ids[0]]["start_s"], "end_s": scenes[ids[-1]]["end_s"],
                    "scene_ids": ids, "caption": caption})
    return out


def require_length(items: list, n: int, name: str) -> None:
    """Pinned array lengths are checked here too: not every server enforces the schema."""
    if len(items) != n:
        raise ValueError(f"{name} has {len(items)} entries, expected {n}")


def manifest_queries(manifest: dict) -> list[dict]:
    queries = [{"query": q, "origin": "manifest"} for q in manifest.get("queries", [])]
    queries += [{"query": qa["question"], "origin": "qa"} for qa in manifest.get("qa", [])]
    return queries


class OpenAIAnnotator:
    def __init__(self, cfg: AnnotatorConfig, prompts: dict[str, Prompt]):
        from peakclips.llm import LLMClient

        self.cfg = cfg
        self.prompts = prompts
        self.client = LLMClient(cfg)
        # One event loop for the life of the worker: the async HTTP client's connection pool is
        # bound to the loop it first ran on, so a fresh asyncio.run() per video would break it.
        self.loop = asyncio.new_event_loop()

    def run(self, row: dict, usage) -> dict:
        return self.loop.run_until_complete(self.annotate(row, usage))

    def _messages(self, name: str, content) -> list[dict]:
        return [
            {"role": "system", "content": render(self.prompts["system"])},
            {"role": "user", "content": content},
        ]

    async def _ask(self, name, content, reply_model, usage, sem, pin=None, item_max=None, check=None):
        p = self.prompts[name]
        async with sem:
            return await self.client.ask(p.id, p.sha256, self._messages(name, content), reply_model,
                                         reply_schema(reply_model, pin, item_max), usage, check)

    async def annotate(self, row: dict, usage) -> dict:
        cfg = self.cfg
        sem = asyncio.Semaphore(cfg.max_concurrency)
        manifest = json.loads(row["manifest"])
        title = cap_text((manifest.get("metadata") or {}).get("title"), cfg.max_manifest_text)
        scenes, duration = row["scenes"], row["duration_s"]

        async def caption(scene, jpegs):
            text = render(self.prompts["scene_caption"], num_frames=len(jpegs), scene_id=scene["scene_id"],
                          start_s=scene["start_s"], end_s=scene["end_s"], duration_s=duration, title=title)
            parts = [{"type": "text", "text": text}] + [image_part(j, cfg.image_size) for j in jpegs if j]
            return (await self._ask("scene_caption", parts, CaptionReply, usage, sem)).caption

        captions = await asyncio.gather(*(caption(s, f) for s, f in zip(scenes, row["scene_frames"])))
        listed = [dict(s, caption=c) for s, c in zip(scenes, captions)]
        text = render(self.prompts["chapters"], scenes=listed, duration_s=duration, title=title,
                      chapter_size=cfg.chapter_size)
        chapters_reply = await self._ask("chapters", text, ChaptersReply, usage, sem,
                                         item_max={"chapters.first_scene": len(scenes) - 1},
                                         check=lambda r: chapters_from_reply(r, scenes))
        chapters = chapters_from_reply(chapters_reply, scenes)
        summary = chapters_reply.summary

        queries = manifest_queries(manifest)
        for q in queries:
            q["query"] = cap_text(q["query"], cfg.max_manifest_text)
        if not queries:
            text = render(self.prompts["queries"], scenes=listed, summary=summary, duration_s=duration,
                          title=title, num_queries=cfg.queries_per_video)
            reply = await self._ask("queries", text, QueriesReply, usage, sem,
                                    pin={"queries": cfg.queries_per_video},
                                    check=lambda r: require_length(r.queries, cfg.queries_per_video, "queries"))
            queries = [{"query": q, "origin": "generated"} for q in reply.queries]

        async def relevance(query: str):
            scores, reasons = [], []
            for lo in range(0, len(listed), cfg.relevance_window):
                window = listed[lo:lo + cfg.relevance_window]
                n = len(window)
                text = render(self.prompts["relevance"], query=query, scenes=window, duration_s=duration)
                reply = await self._ask("relevance", text, RelevanceReply, usage, sem, pin={"scores": n},
                                        check=lambda r, n=n: require_length(r.scores, n, "scores"))
                scores += [s.score for s in reply.scores]
                reasons += [s.reason for s in reply.scores]
            return scores, reasons

        results = await asyncio.gather(*(relevance(q["query"]) for q in queries))
        return {
            "captions": list(captions),
            "chapters": chapters,
            "summary": summary,
            "queries": queries,
            "llm_scores": [r[0] for r in results],
            "llm_reasons": [r[1] for r in results],
        }


class Annotate(Stage):
    name = "annotate"
    empty = {
        "captions": [], "chapters": [], "summary": "", "queries": [], "llm_scores": [],
        "llm_reasons": [], "llm_calls": 0, "llm_cache_hits": 0, "prompt_tokens": 0,
        "completion_tokens": 0, "cost_usd": 0.0,
    }

    def __init__(self, cfg: AnnotatorConfig, prompts: dict[str, Prompt], references: dict[str, dict]):
        self.cfg = cfg
        self.references = references
        self.backend = OpenAIAnnotator(cfg, prompts) if cfg.backend == "openai" else None

    def process(self, row: dict) -> dict:
        from peakclips.llm import Usage

        usage = Usage()
        if self.backend is None:
            manifest = json.loads(row["manifest"])
            # qa questions the reference never scored stay multiple-choice items only (they still
            # reach the sample's `qa`); inventing relevance scores for them would not be reference data.
            queries = [q["query"] for q in manifest_queries(manifest) if q["origin"] == "manifest"]
            out = annotate_reference(self.references.get(row["video_id"]), row["video_id"], row["scenes"], queries)
        else:
            out = self.backend.run(row, usage)
        if not out["queries"]:
            raise VideoError("no_queries", "the annotator produced no query")
        for i, q in enumerate(out["queries"]):
            q["query_id"] = i
        return out | {
            "llm_calls": usage.calls,
            "llm_cache_hits": usage.cache_hits,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cost_usd": usage.cost_usd,
        }
