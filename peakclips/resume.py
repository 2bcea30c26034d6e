"""Resume: what a run may keep from an earlier, interrupted run of the same shards.

Runs on the driver, before any work (peakclips/pipeline.py calls `prepare`). Rules:
  - a shard with `_stats.json` is complete and skipped (`--force` rebuilds it from scratch);
  - an incomplete shard keeps the videos already staged under `_staging/NNNNNN/` whose
    *resume key* matches: the key hashes the run fingerprint (content config hash, annotator and
    prompt versions, CLIP model, package and schema version), the video's manifest row, its
    position and its sample key. Anything else there (another config, an edited manifest, an
    `.mp4` the scenes stage staged for a video that never reached the shard stage, temporary
    files) is deleted, and those videos run again. A staged record is written atomically and
    last, so it is either whole or absent;
  - temporary files a killed run left beside the shard's final names are deleted, and on S3 the
    unfinished multipart uploads of the shard's files (a killed upload of a large tar);
  - complete shards built with another config are kept, and the run says so in one line
    (`other_config_note`).
Staged videos hold exactly what a fresh run would write (the pipeline is deterministic), so a
resumed shard is the same shard an uninterrupted run builds; tests/test_resume.py kills real runs
to prove it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from peakclips import __version__, shards, storage
from peakclips.schema import SCHEMA_VERSION, RunInfo


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(run: RunInfo) -> str:
    """Everything run-level that shapes a sample; timings, paths and node ids are left out."""
    return _sha(json.dumps({"config_hash": run.config_hash, "annotator": run.annotator.model_dump(),
                            "clip_model": run.clip_model and run.clip_model.model_dump(), "version": __version__,
                            "schema": SCHEMA_VERSION}, sort_keys=True))


def resume_key(run_fingerprint: str, index: int, key: str, manifest_json: str) -> str:
    """Identifies one staged video: the same key means the same staged content."""
    return _sha(f"{run_fingerprint}\n{index}\n{key}\n{manifest_json}")


@dataclass
class ResumePlan:
    reused: dict[int, set[int]] = field(default_factory=dict)
    """shard id -> manifest indices of staged videos kept from an earlier run."""
    removed: int = 0
    """Staged or temporary files deleted (stale, foreign or half-written)."""
    keys: dict[int, dict[int, str]] = field(default_factory=dict)
    """shard id -> {manifest index: resume key} of the selected shards' videos (`shard_keys`):
    what the staged records were checked against, and what `finalize_shard` takes."""


def remove_temporaries(output: str, shard_id: int) -> int:
    """Delete `peakclips-NNNNNN*.tmp-*` left in the output folder by a killed writer."""
    stale = shards.temporaries(output, shard_id)
    for n in stale:
        storage.remove(storage.join(output, n))
    return len(stale)


def task_resume_key(task, run: RunInfo) -> str:
    """The resume key `run` gives the video of manifest task `task` (a VideoTask)."""
    return resume_key(run.fingerprint, task.index, task.key, task.manifest_json)


def shard_keys(tasks, run: RunInfo) -> dict[int, dict[int, str]]:
    """shard id -> {manifest index: resume key} of its videos, in manifest order: what
    `finalize_shard` takes (it publishes no staged video whose key is not one of these)."""
    keys: dict[int, dict[int, str]] = {}
    for t in tasks:
        keys.setdefault(t.shard_id, {})[t.index] = task_resume_key(t, run)
    return keys


def prepare(output: str, shard_ids: list[int], tasks, run: RunInfo, force: bool) -> ResumePlan:
    """Clean the selected incomplete shards and return which staged videos to keep.

    `tasks` are the manifest's VideoTasks for `shard_ids`; `force` keeps nothing.
    """
    plan = ResumePlan(keys=shard_keys(tasks, run))
    plan.removed += storage.abort_uploads(output, tuple(shards.shard_name(s) for s in shard_ids) + tuple(
        f"{shards.STAGING}/{s:06d}/" for s in shard_ids))
    for shard_id in shard_ids:
        plan.removed += remove_temporaries(output, shard_id)
        # A shard being rebuilt is incomplete: its stats file goes first, so a kill during the
        # rebuild never leaves old stats beside a new tar.
        storage.remove(shards.stats_path(output, shard_id))
        folder = shards.staging_dir(output, shard_id)
        if force:
            storage.remove(folder, recursive=True)
            continue
        plan.reused[shard_id] = kept = set()
        names = storage.listdir(folder)
        staged = {name: parsed for name in names if (parsed := shards.parse_staged(name))}
        frames = {index for index, kind in staged.values() if kind == "mp4"}
        for index, kind in staged.values():
            if kind != "json":
                continue
            record = shards.read_staged_record(output, shard_id, index)  # {} if unreadable: the video is redone
            if shards.stands_for(record, plan.keys.get(shard_id, {}).get(index), index in frames):
                kept.add(index)
        for name in names:
            if not (name in staged and staged[name][0] in kept):
                storage.remove(storage.join(folder, name))
                plan.removed += 1
    return plan


def other_config_note(output: str, shard_ids: list[int], config_hash: str) -> str | None:
    """One line when some of the complete shards `shard_ids` were built with a config other than
    the one with hash `config_hash` (they are kept, not rebuilt: `--force` does that); else None."""
    from concurrent.futures import ThreadPoolExecutor

    from peakclips.dataset import read_stats

    def built_with(shard_id: int) -> str:
        try:
            return read_stats(output, shards.shard_name(shard_id)).config_hash
        except Exception:  # noqa: BLE001 - unreadable stats: `verify` names the defect
            return "unreadable"

    with ThreadPoolExecutor(16) as pool:  # one small read each; an object store answers them in parallel
        hashes = list(pool.map(built_with, shard_ids))
    other = [(s, h) for s, h in zip(shard_ids, hashes) if h != config_hash]
    if not other:
        return None
    ids = ", ".join(str(s) for s, _ in other[:10]) + (", ..." if len(other) > 10 else "")
    found = ", ".join(sorted({h for _, h in other})[:3])
    return (f"{len(other)} complete shard(s) ({ids}) were built with another config (config hash {found}; this "
            f"run's is {config_hash}): they are kept as they are; use --force to rebuild them")
