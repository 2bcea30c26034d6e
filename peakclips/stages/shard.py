"""Stage 7, shard: write each finished video to a staging area, then assemble whole shards.

Two steps, so the pipeline streams and nothing needs the driver's disk (file names:
peakclips/shards.py):
  - `StageSample` (a Ray Data stage, per video) writes `_staging/NNNNNN/<index>.json` (the
    sample JSON, its index rows, timings, its resume key) to the output location, beside the
    `<index>.mp4` of candidate frames the scenes stage already put there (and removes that mp4
    when the video is not kept). The JSON is written last and atomically: its presence means
    the video is done, and a resumed run keeps it when the resume key matches (peakclips/resume.py).
  - `finalize_shard` (a Ray task, per shard, launched by the driver once every video of the shard
    is staged) builds `peakclips-NNNNNN.tar` (WebDataset; samples in manifest order, fixed mtime)
    and `peakclips-NNNNNN.parquet` under temporary names, verifies and renames them, writes
    `peakclips-NNNNNN_stats.json` last (its presence marks the shard complete), and removes
    the staging and scratch folders.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from collections import Counter

from peakclips import __version__, shards, storage
from peakclips.errors import OutputError, machine_error, row_error, storage_fault
from peakclips.schema import INDEX_COLUMNS, SCHEMA_VERSION, RunInfo, Sample, ShardStats
from peakclips.spans import length
from peakclips.stages import Stage, stage_seconds

BOOKKEEPING = ("index", "shard_id", "key", "video_id", "resume_key", "nodes")


def build_sample(row: dict, run: RunInfo) -> dict | None:
    """The `KEY.json` document for a kept video (None for dropped or failed ones)."""
    if row.get("error") or row["status"] != "ok":
        return None
    manifest = json.loads(row["manifest"])
    scenes = [
        dict(s, caption=c, frame_times_s=t)
        for s, c, t in zip(row["scenes"], row["captions"], row["scene_frame_times"])
    ]
    queries = []
    for q, res, llm, reasons in zip(row["queries"], row["query_results"], row["llm_scores"], row["llm_reasons"]):
        if res["status"] != "ok":
            continue
        sims = row["clip_sims"][q["query_id"]] if row["clip_sims"] else [None] * len(llm)
        queries.append({
            "query_id": q["query_id"], "query": q["query"], "origin": q["origin"],
            "scene_scores": [{"llm": r, "clip": s, "final": f, "reason": why}
                             for r, s, f, why in zip(llm, sims, res["final_scores"], reasons)],
            "highlights": res["highlights"],
        })
    sample = {
        "schema_version": SCHEMA_VERSION, "video_id": row["video_id"], "key": row["key"],
        "source": manifest.get("source"), "license": manifest.get("license"),
        "duration_s": row["duration_s"], "fps": row["fps"], "width": row["width"], "height": row["height"],
        "frame_times_s": row["frame_times_s"], "scenes": scenes, "chapters": row["chapters"],
        "summary": row["summary"], "queries": queries, "qa": manifest.get("qa", []),
        "annotator": run.annotator.model_dump(), "clip_model": run.clip_model and run.clip_model.model_dump(),
        "config_hash": run.config_hash, "peakclips_version": __version__,
    }
    return Sample.model_validate(sample).model_dump(mode="json")


def build_index_rows(row: dict, run: RunInfo) -> list[dict]:
    """One row per (video, query); one row with a null query when the video has no queries."""
    base = {
        "video_id": row["video_id"], "key": row["key"], "shard_id": row["shard_id"],
        "error": row.get("error") or None, "error_detail": row.get("error_detail") or None,
        "duration_s": row.get("duration_s") or None, "truncated": bool(row.get("truncated")),
        "num_scenes": len(row.get("scenes") or []),
        "scene_starts_s": [s["start_s"] for s in row.get("scenes") or []] or None,
        "annotator_backend": run.annotator.backend, "annotator_model": run.annotator.model,
        "prompt_ids": ",".join(p.id for p in run.annotator.prompts),
        "clip_model": run.clip_model.model if run.clip_model and run.clip_model.used else None,
        "llm_calls": row.get("llm_calls", 0), "llm_cache_hits": row.get("llm_cache_hits", 0),
        "prompt_tokens": row.get("prompt_tokens", 0),
        "completion_tokens": row.get("completion_tokens", 0), "cost_usd": row.get("cost_usd", 0.0),
        "config_hash": run.config_hash,
    }
    if row.get("error"):
        return [dict(base, status="error")]
    results = row.get("query_results") or []
    if not results:
        return [dict(base, status=row["status"], drop_reason=row["drop_reason"] or None)]
    rows = []
    for q, res, llm in zip(row["queries"], results, row["llm_scores"]):
        hl = res["highlights"]
        rows.append(dict(
            base, query_id=q["query_id"], query=q["query"], origin=q["origin"],
            status=res["status"] if row["status"] == "ok" else "dropped",
            drop_reason=(res["drop_reason"] or row["drop_reason"] or None),
            num_highlights=len(hl), num_p1=sum(h["priority"] == "P1" for h in hl),
            num_p2=sum(h["priority"] == "P2" for h in hl),
            highlight_coverage=length((h["start_s"], h["end_s"]) for h in hl) / row["duration_s"],
            highlights_json=json.dumps(hl), llm_scores=llm,
            clip_sims=row["clip_sims"][q["query_id"]] if row["clip_sims"] else None,
            final_scores=res["final_scores"],
        ))
    return rows


class StageSample(Stage):
    """Writes one video's staged record; returns only a small row for the driver's bookkeeping
    and progress (its status, LLM calls and cost)."""

    name = "shard"
    empty = {}

    def __init__(self, output: str, run: RunInfo):
        self.output = output
        self.run = run

    def __call__(self, row: dict) -> dict:
        """The bookkeeping row; `storage_fault` says the disk was full or read-only (nothing staged)."""
        fault = storage_fault(row)
        if fault is None:
            try:
                return dict(self.stage(row), storage_fault=None)
            except OSError as e:
                if machine_error(e) is None:
                    raise
                fault = os.strerror(e.errno)
        return {"shard_id": row["shard_id"], "index": row["index"], "key": row["key"], "status": "error",
                "storage_fault": fault}

    def stage(self, row: dict) -> dict:
        if staged := shards.staged_by_this_run(self.output, row["shard_id"], row["index"], row["resume_key"]):
            # Ray ran this video again (a call retried after its actor died, a lost result
            # rebuilt from its lineage): the record staged first stands; writing it again would
            # change nothing but its timings.
            return report(staged, row["shard_id"])
        started = time.perf_counter()
        try:
            sample, index_rows = build_sample(row, self.run), build_index_rows(row, self.run)
        except Exception as e:  # noqa: BLE001 - a row that cannot be written is that row's error
            # Only the bookkeeping columns go on: the others are what could not be written.
            bare = {k: v for k, v in row.items() if k in BOOKKEEPING or k.startswith("t_")}
            row = self.finish(bare, row_error(e), started)
            sample, index_rows = None, build_index_rows(row, self.run)
        if sample is None:  # not kept: its candidate frames (if the scenes stage staged them) go
            storage.remove(shards.staged_frames(self.output, row["shard_id"], row["index"]))
        timings = stage_seconds(row) | {self.name: time.perf_counter() - started}
        status = "error" if row.get("error") else row["status"]
        record = {"index": row["index"], "key": row["key"], "resume_key": row["resume_key"], "status": status,
                  "error": row.get("error") or None, "drop_reason": row.get("drop_reason") or None,
                  "sample": sample,
                  "index_rows": index_rows, "timings": timings,
                  "nodes": sorted(set(row.get("nodes") or []) - {""})}
        storage.write_atomic(shards.staged_record(self.output, row["shard_id"], row["index"]),
                             json.dumps(record).encode())
        return report(record, row["shard_id"])


def report(record: dict, shard_id: int) -> dict:
    """What the driver hears of a staged video (its bookkeeping and progress): from its record."""
    first = record["index_rows"][0]  # per video: the same on each of its query rows
    return {"shard_id": shard_id, "index": record["index"], "key": record["key"], "status": record["status"],
            "llm_calls": first.get("llm_calls") or 0, "cost_usd": first.get("cost_usd") or 0.0}


def staged_reports(output: str, items: list[dict]) -> dict[int, dict]:
    """index -> report of each of `items` (rows as the driver sends them) this run staged already."""
    from concurrent.futures import ThreadPoolExecutor

    def staged(item: dict) -> dict | None:
        return shards.staged_by_this_run(output, item["shard_id"], item["index"], item["resume_key"])

    with ThreadPoolExecutor(16) as pool:  # one small read each; an object store answers them in parallel
        records = list(pool.map(staged, items))
    return {item["index"]: report(r, item["shard_id"]) for item, r in zip(items, records) if r is not None}


def index_table(rows: list[dict]):
    import pyarrow as pa

    types = {"string": pa.string(), "bool": pa.bool_(), "int32": pa.int32(), "int64": pa.int64(), "float64": pa.float64(),
             "list<int32>": pa.list_(pa.int32()), "list<float64>": pa.list_(pa.float64())}
    schema = pa.schema([(name, types[t]) for name, t in INDEX_COLUMNS.items()])
    return pa.Table.from_pylist([{c: r.get(c) for c in INDEX_COLUMNS} for r in rows], schema=schema)


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), shards.TAR_MTIME, 0o644
    info.uname = info.gname = ""
    tar.addfile(info, io.BytesIO(data))


def finalize_shard(output: str, shard_id: int, expected: dict[int, str], run: RunInfo) -> ShardStats:
    """Assemble shard `shard_id` from its staged videos (`expected`: manifest index -> the resume
    key this run gave the video, in manifest order); returns its stats. Idempotent: a retry or a
    resumed run rebuilds the same files. A staged video whose resume key is not this run's (another
    run with another config or manifest wrote it) stops the shard before anything is published."""
    import pyarrow.parquet as pq

    folder = shards.staging_dir(output, shard_id)
    records = [json.loads(storage.read_bytes(storage.join(folder, n)))
               for n in storage.listdir(folder) if (staged := shards.parse_staged(n)) and staged[1] == "json"]
    records.sort(key=lambda r: r["index"])
    if [r["index"] for r in records] != list(expected):
        raise RuntimeError(f"shard {shard_id}: staged videos {[r['index'] for r in records]} "
                           f"are not the shard's videos {list(expected)}")
    if foreign := [r["index"] for r in records if r.get("resume_key") != expected[r["index"]]]:
        raise OutputError(f"shard {shard_id}: staged video(s) {foreign[:5]} in {folder} were written by another "
                          "run (another config or manifest): is another run writing to this output? Nothing of the "
                          "shard was published; re-run when it has ended")
    name = shards.shard_name(shard_id)
    with storage.build_dir(output, f"{shard_id:06d}") as tmp:
        tar_path = shards.tar_path(tmp, name)  # built locally under the final names, then uploaded
        with tarfile.open(tar_path, "w", format=tarfile.PAX_FORMAT) as tar:
            for r in records:
                if r["sample"] is None:
                    continue
                mp4 = storage.read_bytes(shards.staged_frames(output, shard_id, r["index"]))
                json_member, mp4_member = (f"{r['key']}.{suffix}" for suffix in shards.MEMBER_SUFFIXES)
                _add_member(tar, json_member, json.dumps(r["sample"], sort_keys=True).encode())
                _add_member(tar, mp4_member, mp4)
        parquet_path = shards.index_path(tmp, name)
        index_rows = [row for r in records for row in r["index_rows"]]
        pq.write_table(index_table(index_rows), parquet_path)
        stats = shard_stats(shard_id, records, run)
        # Read both back before publishing them under their final names.
        with tarfile.open(tar_path) as check:
            if len(check.getnames()) != len(shards.MEMBER_SUFFIXES) * stats.videos.ok:
                raise RuntimeError(f"shard {shard_id}: the tar holds {len(check.getnames())} members "
                                   f"for {stats.videos.ok} samples")
        if pq.read_metadata(parquet_path).num_rows != len(index_rows):
            raise RuntimeError(f"shard {shard_id}: the index lost rows on the way to disk")
        storage.upload_atomic(tar_path, shards.tar_path(output, name))
        storage.upload_atomic(parquet_path, shards.index_path(output, name))
    storage.write_atomic(shards.stats_path(output, name), json.dumps(stats.model_dump(mode="json"), indent=2).encode())
    storage.remove(folder, recursive=True)
    storage.remove(shards.scratch_dir(run.scratch, shard_id), recursive=True)
    return stats


def shard_stats(shard_id: int, records: list[dict], run: RunInfo) -> ShardStats:
    statuses, video_drops, query_drops, errors = Counter(), Counter(), Counter(), Counter()
    queries, timings, llm, nodes = Counter(), Counter(), Counter(), Counter()
    highlights = 0
    for r in records:
        statuses[r["status"]] += 1
        if r["error"]:
            errors[r["error"]] += 1
        if r["drop_reason"]:
            video_drops[r["drop_reason"]] += 1
        for row in r["index_rows"]:
            if row.get("query") is None:
                continue
            queries[row["status"]] += 1
            if row["status"] == "ok":
                highlights += row["num_highlights"]
            elif row["status"] == "dropped" and not r["drop_reason"]:
                query_drops[row["drop_reason"]] += 1
        timings.update(r["timings"])
        nodes.update(r["nodes"])
        first = r["index_rows"][0]
        for k in ("llm_calls", "llm_cache_hits", "prompt_tokens", "completion_tokens", "cost_usd"):
            llm[k] += first.get(k) or 0  # per video: the same on each of its query rows
    return ShardStats.model_validate({
        "shard": shards.shard_name(shard_id),
        "videos": {"total": len(records), "ok": statuses["ok"], "dropped": statuses["dropped"],
                   "error": statuses["error"]},
        "queries": dict(queries), "highlights": highlights,
        "video_drop_reasons": dict(video_drops), "query_drop_reasons": dict(query_drops),
        "errors": dict(errors),
        "stage_seconds": {k: round(v, 3) for k, v in timings.items()},
        "nodes": dict(nodes),
        "llm": {"calls": llm["llm_calls"], "cache_hits": llm["llm_cache_hits"],
                "prompt_tokens": llm["prompt_tokens"],
                "completion_tokens": llm["completion_tokens"], "cost_usd": round(llm["cost_usd"], 6),
                "price_per_mtok": run.llm_price},
        "annotator": run.annotator, "clip_model": run.clip_model, "clip_note": run.clip_note,
        "config_hash": run.config_hash, "config": run.config, "peakclips_version": __version__,
        "schema_version": SCHEMA_VERSION,
    })
