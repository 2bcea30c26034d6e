"""Stage 4, annotate: hierarchical captions, queries and per-(query, scene) relevance.

Order of calls for one video (backend `openai`), each validated and cached (peakclips/llm.py):
  1. one caption per scene, from the scene's frames (image_url parts), all in flight at once;
  2. one call for chapters (groups of consecutive scenes, each captioned) and the video summary;
  3. queries: the manifest's `queries` and `qa` questions as given, else one call that writes
     `annotator.queries_per_video` of them from the captions;
  4. relevance: one call per query over all scenes (windows of `annotator.relevance_window`
     scenes for long videos), a 1-5 score and a one-sentence reason per scene.
So a video costs scenes + queries + 2 calls (+1 per extra window), not scenes x queries.

Concurrency: the stage is async. Ray Data runs `annotator.videos_per_actor` videos at once on
each actor's event loop, and all their requests share one `annotator.max_concurrency` semaphore,
so requests stay in flight across videos. A video's first failed request stops its requests
not yet sent; those already in flight finish (answered ones are cached and counted).
The `reference` backend (peakclips/reference.py) fills the same columns from hand-written files.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from peakclips.config import AnnotatorConfig
from peakclips.errors import VideoError, row_error
from peakclips.llm import Secret, Usage
from peakclips.llm_formats import SCHEMA_IN_PROMPT, schema_text
from peakclips.prompts import (
    CaptionReply,
    ChaptersReply,
    Prompt,
    QueriesReply,
    RelevanceReply,
    data_text,
    render,
    reply_schema,
)
from peakclips.reference import annotate_reference
from peakclips.stages import Stage

CAPTION_CHARS = 1000  # a caption quoted in a later prompt (the reply model's own limit)


def image_part(jpeg: bytes, size: int, detail: str = "auto") -> dict:
    """A JPEG as an OpenAI `image_url` content part, downscaled to `size` on its longest side."""
    import io

    from PIL import Image

    img = Image.open(io.BytesIO(jpeg))
    if max(img.size) > size:
        img.thumbnail((size, size), Image.BILINEAR)
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=85)
        jpeg = buf.getvalue()
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    return {"type": "image_url", "image_url": {"url": url, "detail": detail}}


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
    captions = [starts[f] for f in firsts]
    firsts[0] = 0
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


def manifest_queries(manifest: dict, limit: int | None = None) -> list[dict]:
    """The manifest's queries, then its qa questions, as queries (delimiter-free, capped)."""
    texts = [(q, "manifest") for q in manifest.get("queries", [])]
    texts += [(qa["question"], "qa") for qa in manifest.get("qa", [])]
    return [{"query": data_text(t, limit) if limit else t, "origin": o} for t, o in texts]


# --- the requests ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request: the prompt it renders, the user message, and the reply it asks for."""

    prompt: Prompt
    content: str | list[dict]
    reply_model: type[BaseModel]
    schema: dict
    check: Callable | None = None


@dataclass(frozen=True)
class Video:
    """What the templates are told about a video besides its scenes."""

    duration_s: float
    title: str


def caption_call(prompts: dict[str, Prompt], cfg: AnnotatorConfig, video: Video, scene: dict,
                 jpegs: list[bytes]) -> Call:
    frames = [j for j in jpegs if j]
    if not frames:
        raise VideoError("no_scene_frames", f"scene {scene['scene_id']} has no frames to caption")
    p = prompts["scene_caption"]
    text = render(p, num_frames=len(frames), scene_id=scene["scene_id"], start_s=scene["start_s"],
                  end_s=scene["end_s"], duration_s=video.duration_s, title=video.title)
    parts = [{"type": "text", "text": text}] + [image_part(j, cfg.image_size, cfg.image_detail) for j in frames]
    return Call(p, parts, CaptionReply, reply_schema(CaptionReply))


def chapters_call(prompts: dict[str, Prompt], cfg: AnnotatorConfig, video: Video, listed: list[dict]) -> Call:
    p = prompts["chapters"]
    text = render(p, scenes=listed, duration_s=video.duration_s, title=video.title,
                  chapter_size=cfg.chapter_size)
    # at most one chapter per scene: chapters start at distinct scenes
    schema = reply_schema(ChaptersReply, item_max={"chapters.first_scene": len(listed) - 1},
                          max_items={"chapters": len(listed)})
    return Call(p, text, ChaptersReply, schema, check=lambda r: chapters_from_reply(r, listed))


def queries_call(prompts: dict[str, Prompt], cfg: AnnotatorConfig, video: Video, listed: list[dict],
                 summary: str) -> Call:
    p, n = prompts["queries"], cfg.queries_per_video
    text = render(p, scenes=listed, summary=data_text(summary, 2 * CAPTION_CHARS),
                  duration_s=video.duration_s, title=video.title, num_queries=n)
    return Call(p, text, QueriesReply, reply_schema(QueriesReply, pin={"queries": n}),
                check=lambda r: require_length(r.queries, n, "queries"))


def relevance_calls(prompts: dict[str, Prompt], cfg: AnnotatorConfig, video: Video, listed: list[dict],
                    query: str) -> list[Call]:
    """One call per window of `relevance_window` scenes (one window unless the video is long)."""
    p, calls = prompts["relevance"], []
    for lo in range(0, len(listed), cfg.relevance_window):
        window = listed[lo:lo + cfg.relevance_window]
        n = len(window)
        text = render(p, query=query, scenes=window, duration_s=video.duration_s)
        calls.append(Call(p, text, RelevanceReply, reply_schema(RelevanceReply, pin={"scores": n}),
                          check=lambda r, n=n: require_length(r.scores, n, "scores")))
    return calls


# --- the openai backend ----------------------------------------------------------------------


class _Job:
    """One video's requests: its usage, and its first failure (which stops the unsent ones)."""

    def __init__(self, usage: Usage):
        self.usage = usage
        self.failed: VideoError | None = None


class OpenAIAnnotator:
    def __init__(self, cfg: AnnotatorConfig, prompts: dict[str, Prompt], secret: Secret | None = None):
        from peakclips.llm import LLMClient

        self.cfg = cfg
        self.prompts = prompts
        self.client = LLMClient(cfg, secret)
        self.system = render(prompts["system"])
        # Created outside any loop; it binds to the loop of its first use (Ray Data's UDF loop).
        self.sem = asyncio.Semaphore(cfg.max_concurrency)

    async def annotate(self, row: dict, usage: Usage) -> dict:
        cfg, prompts, job = self.cfg, self.prompts, _Job(usage)
        manifest = json.loads(row["manifest"])
        scenes = row["scenes"]
        video = Video(row["duration_s"], data_text((manifest.get("metadata") or {}).get("title"),
                                                   cfg.max_manifest_text))

        captions = [r.caption for r in await self._all(job, [
            caption_call(prompts, cfg, video, s, f) for s, f in zip(scenes, row["scene_frames"])])]
        listed = [dict(s, caption=data_text(c, CAPTION_CHARS)) for s, c in zip(scenes, captions)]
        chapters_reply = await self._ask(job, chapters_call(prompts, cfg, video, listed))
        chapters = chapters_from_reply(chapters_reply, scenes)
        summary = chapters_reply.summary

        queries = manifest_queries(manifest, cfg.max_manifest_text)
        if not queries:
            reply = await self._ask(job, queries_call(prompts, cfg, video, listed, summary))
            queries = [{"query": q, "origin": "generated"} for q in reply.queries]

        per_query = [relevance_calls(prompts, cfg, video, listed, data_text(q["query"], cfg.max_manifest_text))
                     for q in queries]
        replies = iter(await self._all(job, [c for calls in per_query for c in calls]))
        scores, reasons = [], []
        for calls in per_query:
            items = [item for _ in calls for item in next(replies).scores]
            scores.append([i.score for i in items])
            reasons.append([i.reason for i in items])
        return {"captions": captions, "chapters": chapters, "summary": summary, "queries": queries,
                "llm_scores": scores, "llm_reasons": reasons}

    def messages(self, call: Call) -> list[dict]:
        """The system prompt and the call's message; the reply schema is quoted at the end for the
        formats that do not send it as json_schema (peakclips/llm_formats.py)."""
        content = call.content
        if self.client.format in SCHEMA_IN_PROMPT:
            note = render(self.prompts["reply_schema"], schema=schema_text(call.schema))
            content = content + "\n" + note if isinstance(content, str) else [*content, {"type": "text", "text": note}]
        return [{"role": "system", "content": self.system}, {"role": "user", "content": content}]

    async def _ask(self, job: _Job, call: Call):
        async with self.sem:
            if job.failed:  # another request of this video failed while this one waited
                raise job.failed
            try:
                return await self.client.ask(call.prompt.id, call.prompt.sha256, self.messages(call),
                                             call.reply_model, call.schema, job.usage, call.check)
            except VideoError as e:
                job.failed = job.failed or e
                raise

    async def _all(self, job: _Job, calls: list[Call]) -> list:
        """Every call at once; wait for all of them (so the usage is complete), then raise the
        video's first failure, if any."""
        results = await asyncio.gather(*(self._ask(job, c) for c in calls), return_exceptions=True)
        for r in results:
            if isinstance(r, VideoError):
                raise job.failed or r
            if isinstance(r, BaseException):
                raise r
        return results


class Annotate(Stage):
    name = "annotate"
    empty = {
        "captions": [], "chapters": [], "summary": "", "queries": [], "llm_scores": [],
        "llm_reasons": [], **Usage().columns(),
    }

    def __init__(self, cfg: AnnotatorConfig, prompts: dict[str, Prompt], references: dict[str, dict],
                 secret: Secret | None = None):
        self.cfg = cfg
        self.references = references
        self.backend = OpenAIAnnotator(cfg, prompts, secret) if cfg.backend == "openai" else None

    async def __call__(self, row: dict) -> dict:
        """Async, so that Ray Data keeps several videos in flight on one actor."""
        started, usage, out = time.perf_counter(), Usage(), None
        if not row.get("error"):
            try:
                out = await self.annotate(row, usage)
            except Exception as e:  # noqa: BLE001 - any failure of one row is that row's error
                out = row_error(e)
        row = self.finish(row, out, started)
        row.update(usage.columns())  # what was spent, also when the video failed
        return row

    async def annotate(self, row: dict, usage: Usage) -> dict:
        if self.backend is None:
            manifest = json.loads(row["manifest"])
            # qa questions the reference never scored stay multiple-choice items only (they still
            # reach the sample's `qa`); inventing relevance scores for them would not be reference data.
            queries = [q["query"] for q in manifest_queries(manifest) if q["origin"] == "manifest"]
            out = annotate_reference(self.references.get(row["video_id"]), row["video_id"], row["scenes"], queries)
        else:
            out = await self.backend.annotate(row, usage)
        if not out["queries"]:
            raise VideoError("no_queries", "the annotator produced no query")
        for i, q in enumerate(out["queries"]):
            q["query_id"] = i
        return out
