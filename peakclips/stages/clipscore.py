"""Stage 5, clipscore: open_clip similarity between each query and each scene's frames.

Runs in a Ray actor pool (one model per actor, peakclips/clipmodel.py; CUDA with fp16 when the
actor has a GPU, else CPU with `clip.num_cpus` torch threads). Per video: every scene frame is
embedded once, in batches of `clip.batch_size`, and reused for every query; the query texts are
embedded once; a scene's similarity to a query is the max (or mean) over its frames of the
embeddings' cosine. This stage is the last reader of the per-scene JPEGs: it drops them from
the row (`drops`), so they do not travel on to highlights and shard.
"""

from __future__ import annotations

from peakclips.clipmodel import ClipModel, reduce_sims
from peakclips.config import ClipConfig
from peakclips.errors import VideoError
from peakclips.stages import Stage


class ClipScore(Stage):
    name = "clipscore"
    empty = {"clip_sims": []}
    drops = ("scene_frames",)

    def __init__(self, cfg: ClipConfig, use_clip: bool):
        self.cfg = cfg
        self.clip = ClipModel(cfg) if use_clip else None

    def process(self, row: dict) -> dict:
        if self.clip is None or not row["queries"] or not row["scenes"]:
            return {"clip_sims": []}
        frames = [[j for j in scene if j] for scene in row["scene_frames"]]
        counts = [len(f) for f in frames]
        if min(counts) == 0:
            raise VideoError("no_scene_frames", f"scene {counts.index(0)} has no frames to score")
        images = self.clip.embed_images([j for f in frames for j in f])
        texts = self.clip.embed_texts([q["query"] for q in row["queries"]])
        sims = reduce_sims(texts @ images.T, counts, self.cfg.reduce)
        return {"clip_sims": sims.round(6).tolist()}
