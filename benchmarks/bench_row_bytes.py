"""Bytes a video's row carries between stages: what Ray Data puts in the object store for it.

The six sample clips go through the pipeline's own stage list (`pipeline.stage_specs`, reference
annotator, CLIP on with random ViT-B-32 weights so clipscore really reads the JPEGs) in this
process; after each stage the row is measured as Ray Data stores it, an Arrow block of one row
(`pyarrow.Table.from_pylist([row]).nbytes`). Blobs ride only as far as they are read: the
candidate frames' MP4 goes from the scenes stage straight to the output location (the row
carries its URI), and the per-scene JPEGs leave the row after clipscore, their last reader.

`--before` columns come from the same measurement of the code before that change (the MP4 in
the row from scenes to shard, the JPEGs to the end), run from a checkout of it; see
docs/benchmarks.md for the numbers side by side.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BOUNDARIES = ["ingest", "scenes", "annotate", "clipscore", "highlights"]  # the stage a row leaves


def arrow_bytes(row: dict) -> int:
    import pyarrow as pa

    return pa.Table.from_pylist([row]).nbytes


def measure(out_dir: Path) -> dict[str, dict[str, int]]:
    """{video_id: {stage: bytes of the row it hands on}} for the sample clips."""
    from peakclips.config import load_config
    from peakclips.manifest import plan_tasks, read_manifest
    from peakclips.pipeline import run_info, stage_specs, video_items

    cfg = load_config(REPO / "pipelines/sample.yaml", [
        f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]", f"annotator.reference_dir={REPO / 'manifests/reference'}",
        "clip.enabled=true", "clip.model=ViT-B-32", "clip.pretrained=null"])
    with tempfile.TemporaryDirectory(dir=out_dir) as output:
        info = run_info(cfg, None, str(Path(output) / "_scratch"))
        specs = stage_specs(cfg, output, info)
        stages = [spec.cls(**spec.kwargs) for spec in specs]
        sizes: dict[str, dict[str, int]] = {}
        for row in video_items(plan_tasks(read_manifest(REPO / "manifests/sample.jsonl"), cfg.shard_size), info):
            video = sizes.setdefault(row["video_id"], {})
            for spec, stage in zip(specs, stages):
                row = asyncio.run(stage(row)) if asyncio.iscoroutinefunction(stage.__call__) else stage(row)
                if spec.name in BOUNDARIES:
                    video[spec.name] = arrow_bytes(row)
    return sizes


def main(out_dir) -> str:
    out_dir = Path(out_dir)
    sizes = measure(out_dir)
    (out_dir / "row_bytes.json").write_text(json.dumps(sizes, indent=2))
    lines = ["| video | " + " | ".join(f"after {b}" for b in BOUNDARIES) + " | sum |",
             "|---|" + "---|" * (len(BOUNDARIES) + 1)]
    for video, s in sizes.items():
        lines.append(f"| {video} | " + " | ".join(f"{s[b] / 1e3:.0f} kB" for b in BOUNDARIES)
                     + f" | {sum(s.values()) / 1e3:.0f} kB |")
    per_video = statistics.mean(sum(s.values()) for s in sizes.values())
    lines.append(f"\nMean bytes of rows between stages, per video: {per_video / 1e6:.2f} MB")
    return "\n".join(lines)
