"""Helpers for the shard tests: a small several-shard manifest of the bundled clips, the
`peakclips run` command line for it, a sample-by-sample snapshot of a finished output, and
finished shards of made-up videos written by the real writer (`video_row`, `write_dataset`)."""

from __future__ import annotations

import glob
import io
import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import yaml

from peakclips.schema import RunInfo
from tests.conftest import REPO, SAMPLE_CONFIG

SHORT_CLIPS = ["tears_of_steel_10s", "sintel_10s", "caminandes1_10s"]


def small_manifest(folder: Path) -> tuple[Path, list[str]]:
    """Seven rows, four shards of two (shard_size=2): each 10-s sample clip under two ids (their
    reference annotations copied under the new ids) and one missing file (a row error)."""
    refs = folder / "reference"
    refs.mkdir(parents=True, exist_ok=True)
    sample = {json.loads(line)["video_id"]: json.loads(line) for line in open(REPO / "manifests/sample.jsonl")}
    rows = []
    for clip in SHORT_CLIPS:
        for copy in "ab":
            ref = yaml.safe_load((REPO / "manifests/reference" / f"{clip}.yaml").read_text())
            ref["video_id"] = f"{clip}_{copy}"
            (refs / f"{clip}_{copy}.yaml").write_text(yaml.safe_dump(ref))
            rows.append(dict(sample[clip], video_id=f"{clip}_{copy}", uri=str(REPO / "manifests" / sample[clip]["uri"])))
    rows.insert(3, {"video_id": "missing_file", "uri": str(folder / "missing.mp4")})
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = ["shard_size=2", "frames.num_candidates=32", "clip.enabled=false", f"annotator.reference_dir={refs}",
                 f"ingest.allowed_roots=[{REPO / 'manifests/videos'},{folder}]", "ray.num_cpus=2"]
    return manifest, overrides


def staged_files(out, pattern: str) -> list[Path]:
    """`out/_staging/*/<pattern>`. glob.glob, not Path.glob: a shard folder removed while it is
    listed (its shard finalized) is skipped, where Path.glob raises FileNotFoundError."""
    return [Path(p) for p in glob.glob(str(out / "_staging" / "*" / pattern))]


def stage_in_process(cfg, manifest: Path, output: Path, info: RunInfo) -> dict[int, dict[int, str]]:
    """The pipeline's stages applied to each video in this process (no Ray): staged files only.
    Returns each shard's videos (manifest index -> resume key), for `finalize_shard`."""
    from peakclips.manifest import plan_tasks, read_manifest
    from peakclips.pipeline import run_in_process, stage_specs, video_items
    from peakclips.resume import shard_keys

    tasks = plan_tasks(read_manifest(manifest), cfg.shard_size)
    run_in_process(video_items(tasks, info), stage_specs(cfg, str(output), info))
    return shard_keys(tasks, info)


def build_in_process(cfg, manifest: Path, output: Path) -> Path:
    """An uninterrupted build of every shard without Ray: the stages in this process, then
    `finalize_shard` per shard (what a run writes, to compare other runs with)."""
    from peakclips.pipeline import resolve_paths, run_info
    from peakclips.stages.shard import finalize_shard

    cfg = resolve_paths(cfg)
    info = run_info(cfg, "clip.enabled is false", str(output / "_scratch"))
    for shard_id, keys in stage_in_process(cfg, manifest, output, info).items():
        finalize_shard(str(output), shard_id, keys, info)
    return output


def run_command(manifest: Path, output: Path, overrides: list[str], *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(manifest),
           "--output", str(output), *extra]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def snapshot(output: Path) -> dict:
    """Everything a finished output holds, timings and node ids aside:
    {shard: {"samples": [(member name, bytes), ...], "index": rows, "stats": dict}}."""
    shards = {}
    for tar_path in sorted(output.glob("peakclips-*.tar")):
        name = tar_path.name.removesuffix(".tar")
        with tarfile.open(tar_path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        stats = json.loads((output / f"{name}_stats.json").read_text())
        for volatile in ("stage_seconds", "nodes"):
            stats.pop(volatile)
        index = pq.read_table(io.BytesIO((output / f"{name}.parquet").read_bytes())).to_pylist()
        shards[name] = {"samples": members, "index": index, "stats": stats}
    return shards


def leftovers(output: Path) -> list[str]:
    """Anything in an output folder that is not a finished shard file."""
    finished = (".tar", ".parquet", "_stats.json")
    return sorted(str(p.relative_to(output)) for p in output.rglob("*")
                  if not (p.parent == output and p.name.startswith("peakclips-") and p.name.endswith(finished)
                          and ".tmp-" not in p.name))


# --- finished shards written by the real writer, from rows made here ------------------------------

TEST_RUN = RunInfo(annotator={"backend": "reference", "model": None, "prompts": []}, clip_model=None,
                   config_hash="test", scratch="")


def video_row(key: str, starts: list[float], duration_s: float, queries: list[dict], *, index: int = 0,
              shard_id: int = 0, error: str | None = None, frame_times_s: list[float] | None = None,
              captions: list[str] | None = None, chapters: list[dict] = (), summary: str = "",
              qa: list[dict] = (), source: str | None = "synthetic", license: str | None = "CC0",
              width: int = 16, height: int = 16) -> dict:
    """A row as the shard stage receives it from the highlights stage, for a video whose scenes
    start at `starts`. Each query: {"query", "llm": [1-5 per scene], "highlights": [...]} and
    optionally "origin", "reasons", "clip", "final"; a query without highlights is dropped
    (no_highlight) and a video without a kept query too (no_queries_left), as the highlights
    stage does. `error` makes it a failed row (`<stage>:<code>`)."""
    ends = starts[1:] + [duration_s]
    frame_times_s = frame_times_s if frame_times_s is not None else [round(duration_s / 4, 4), round(3 * duration_s / 4, 4)]
    results = [{"query_id": i, "final_scores": q.get("final", [float(s) for s in q["llm"]]),
                "highlights": q["highlights"], "status": "ok" if q["highlights"] else "dropped",
                "drop_reason": "" if q["highlights"] else "no_highlight"} for i, q in enumerate(queries)]
    kept = any(r["status"] == "ok" for r in results)
    return {
        "index": index, "shard_id": shard_id, "key": key, "video_id": key, "resume_key": "test",
        "manifest": json.dumps({"video_id": key, "uri": f"/{key}.mp4", "source": source, "license": license,
                                "qa": list(qa)}),
        "error": error, "error_detail": "scripted" if error else None,
        "status": "ok" if kept else "dropped", "drop_reason": "" if kept else "no_queries_left",
        "duration_s": duration_s, "fps": 24.0, "width": width, "height": height, "truncated": False,
        "frame_times_s": frame_times_s,
        "scenes": [{"scene_id": i, "start_s": a, "end_s": b, "start_frame": i, "end_frame": i + 1}
                   for i, (a, b) in enumerate(zip(starts, ends))],
        "captions": captions or [f"scene {i}" for i in range(len(starts))],
        "scene_frame_times": [[round((a + b) / 2, 4)] for a, b in zip(starts, ends)],
        "chapters": list(chapters), "summary": summary,
        "queries": [{"query_id": i, "query": q["query"], "origin": q.get("origin", "manifest")}
                    for i, q in enumerate(queries)],
        "llm_scores": [q["llm"] for q in queries],
        "llm_reasons": [q.get("reasons", ["scripted"] * len(q["llm"])) for q in queries],
        "clip_sims": [q["clip"] for q in queries] if queries and all("clip" in q for q in queries) else [],
        "query_results": results,
    }


def write_dataset(output: Path, videos: list[tuple[dict, bytes | None]], run: RunInfo = TEST_RUN) -> Path:
    """Finished shards in `output`, written by the pipeline's own writer: each (row, candidate MP4)
    is staged as the scenes and shard stages stage it, then `finalize_shard` builds each shard
    (tar, index, `_stats.json`). A kept video without an MP4 gets one of solid frames."""
    from peakclips import shards
    from peakclips.stages.shard import StageSample, finalize_shard
    from tests.media import candidate_mp4

    stage = StageSample(str(output), run)
    by_shard: dict[int, dict[int, str]] = {}
    for row, mp4 in videos:
        if row["status"] == "ok" and not row.get("error"):
            if mp4 is None:
                mp4 = candidate_mp4([np.full((16, 16, 3), 40 * i, np.uint8) for i in range(len(row["frame_times_s"]))])
            path = Path(shards.staged_frames(str(output), row["shard_id"], row["index"]))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(mp4)
        stage(dict(row))
        by_shard.setdefault(row["shard_id"], {})[row["index"]] = row["resume_key"]
    for shard_id, keys in sorted(by_shard.items()):
        finalize_shard(str(output), shard_id, dict(sorted(keys.items())), run)
    return output
def one_sample_dataset(folder: Path, doc: dict, mp4: bytes, members=None) -> Path:
    """A dataset folder of one complete shard holding one synthetic sample (tests/train/shards.py),
    written by the real writer; with `members`, its tar is then replaced by a tar of those
    (TarInfo, bytes): a hostile tar beside a valid index and `_stats.json`."""
    from tests.train.shards import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / "peakclips-000000.tar", [(doc, mp4)])
    if members is not None:
        with tarfile.open(folder / "peakclips-000000.tar", "w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data))
    return folder
