"""Stage 1, ingest: check where a video comes from, fetch it if remote, and probe it.

The source checks and the fetch live in peakclips/fetch.py (commands that open a manifest's URI
use them too); a refused source is the row error `ingest:<code>`. Remote videos land in the scratch area (shared storage on a cluster)
so the next stage can run on any node. The probe opens single-file media only
(`video.open_media`): a playlist or concat list is `unsupported_container`.
"""

from __future__ import annotations

import json

from peakclips import shards
from peakclips.config import IngestConfig
from peakclips.errors import VideoError
from peakclips.fetch import fetch
from peakclips.stages import Stage
from peakclips.video import probe


def check_video(path: str, cfg: IngestConfig):
    """Probe a local video and apply the size and duration limits before any decoding."""
    info = probe(path, cfg.max_width, cfg.max_height)
    if info.duration_s > cfg.max_duration_s:
        raise VideoError("too_long", f"{info.duration_s:.0f} s > ingest.max_duration_s ({cfg.max_duration_s:.0f} s)")
    return info


class Ingest(Stage):
    name = "ingest"
    empty = {
        "path": "",
        "duration_s": 0.0,
        "fps": 0.0,
        "n_frames": 0,
        "width": 0,
        "height": 0,
        "codec": "",
    }

    def __init__(self, cfg: IngestConfig, scratch: str):
        self.cfg = cfg
        self.scratch = scratch

    def process(self, row: dict) -> dict:
        uri = row["uri"]
        manifest = json.loads(row.get("manifest") or "{}")
        asked = len(manifest.get("queries") or []) + len(manifest.get("qa") or [])
        if asked > self.cfg.max_manifest_queries:  # each costs LLM calls: refused before any work
            raise VideoError("too_many_queries", f"{asked} queries and qa items > ingest.max_manifest_queries "
                             f"({self.cfg.max_manifest_queries})")
        path = fetch(uri, self.cfg, shards.scratch_dir(self.scratch, row["shard_id"]), row["key"])
        info = check_video(path, self.cfg)
        return {
            "path": path,
            "duration_s": info.duration_s,
            "fps": info.fps,
            "n_frames": info.n_frames,
            "width": info.width,
            "height": info.height,
            "codec": info.codec,
        }
