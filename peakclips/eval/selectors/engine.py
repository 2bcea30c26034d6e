"""`peakclips`: the data engine as a selector.

The benchmark's videos go through the real pipeline (`peakclips.pipeline.run`) with its questions
as the manifest's `queries`: scenes, captions, a relevance score for every (question, scene)
pair, CLIP, fused scores, P1/P2 highlight clips. Each question's highlights are read back from
the shards and clip2frame turns them into k frames (focused for k <= 8, hybrid above), as
`peakclips frames` does for a dataset. These are the labels K-frames' selector learns to predict,
so this is its ceiling with the same annotator; as a selector it costs an annotator call per
scene of every video.

The run goes to OUTPUT/engine/<hash of its manifest>/ with the pipeline config `--pipeline-config`
(default pipelines/peakclips.yaml: a real annotator and CLIP) and `--set` overrides. The filters
that keep training data clean are relaxed, since a selector must answer every question: near
duplicate questions of a video are all kept, as are questions whose highlights cover most of the
video, one-scene and very short videos. A question without highlights, or a video the pipeline
could not process, gets uniform frames and the reason in the item's `note`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from peakclips.clip2frame import clip2frame
from peakclips.eval.benchmarks import Item
from peakclips.eval.selectors import Context, Selection, Selector

RELAXED = ["highlights.filters.dedup_queries=false", "highlights.filters.max_highlight_coverage=1.0",
           "highlights.filters.min_scenes=1", "highlights.filters.min_duration_s=0"]


def engine_manifest(items: list[Item]) -> tuple[list[dict], dict[str, tuple[str, int]]]:
    """Manifest rows (one per video, its questions as queries in item order) and, per item id,
    the (video_id, query_id) its highlights will have."""
    rows: dict[str, dict] = {}
    where = {}
    for item in items:
        if item.video not in rows:
            digest = hashlib.sha1(item.video.encode()).hexdigest()[:8]
            rows[item.video] = {"video_id": f"{Path(item.video).stem}-{digest}", "uri": item.video, "queries": []}
        row = rows[item.video]
        where[item.id] = (row["video_id"], len(row["queries"]))
        row["queries"].append(item.question)
    return list(rows.values()), where


class Engine(Selector):
    name = "peakclips"

    def __init__(self, ctx: Context):
        from peakclips.pipeline import REPO_ROOT

        self.ctx = ctx
        self.config = ctx.pipeline_config or str(REPO_ROOT / "pipelines" / "peakclips.yaml")
        self.cfg = self.load_config()  # a bad key fails here, before any work
        self.where: dict[str, tuple[str, int]] = {}
        self.highlights: dict[tuple[str, int], list[dict]] = {}
        self.why_not: dict[str, str] = {}

    def load_config(self, roots: list[str] = ()):
        from peakclips.config import load_config

        return load_config(self.config, [*RELAXED, f"ingest.allowed_roots={json.dumps(list(roots))}",
                                         *self.ctx.pipeline_overrides])

    def settings(self) -> dict:
        """The pipeline config's hash: what shapes highlights (annotator model, prompts, scenes,
        CLIP, fusion), not where or how the run executes."""
        return {"pipeline_config_hash": self.cfg.hash()}

    def prepare(self, items: list[Item], durations: dict[str, float]) -> None:
        from peakclips.dataset import iter_samples, load_index
        from peakclips.pipeline import run
        from peakclips.shards import complete_shards

        if not items:
            return
        rows, self.where = engine_manifest(items)
        text = "".join(json.dumps(r) + "\n" for r in rows)
        folder = self.ctx.output / "engine" / hashlib.sha256(text.encode()).hexdigest()[:12]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.jsonl").write_text(text)
        cfg = self.load_config(sorted({str(Path(r["uri"]).resolve().parent) for r in rows}))
        out = str(folder / "out")
        run(cfg, str(folder / "manifest.jsonl"), out)
        for row in load_index(out, complete_shards(out)):
            reason = row["error"] or row["drop_reason"]
            if reason:
                self.why_not[f"{row['video_id']}/{row['query_id']}"] = reason
                self.why_not.setdefault(row["video_id"], reason)
        for _, sample, _ in iter_samples(out):
            for q in sample["queries"]:
                self.highlights[(sample["video_id"], q["query_id"])] = q["highlights"]

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        video_id, query_id = key = self.where[item.id]
        clips = self.highlights.get(key)
        note = None
        if not clips:
            why = self.why_not.get(f"{video_id}/{query_id}") or self.why_not.get(video_id) or "not in the shards"
            note = f"no highlights ({why}): uniform frames"
        return Selection(clip2frame(clips or [], duration_s, k).times_s, note)
