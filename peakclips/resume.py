"""Resume: what a run may keep from an earlier, interrupted run of the same shards.

Runs on the driver, before any work (peakclips/pipeline.py calls `prepare`). Rules:
  - a shard with `_stats.json` is complete and skipped (`--force` rebuilds it from scratch);
  - an incomplete shard keeps the videos already staged under `_staging/NNNNNN/` whose
    *resume key* matches: the key hashes the run fingerprint (content config hash, annotator and
    prompt versions, CLIP model, package and schema version), the video's manifest row, its
    position and its sample key. Anything else there (another config, an edited manifest, a
    half-written `.mp4` without its `.json`, temporary files) is deleted, and those videos run
    again. A staged record is written atomically and last, so it is either whole or absent;
  - temporary files a killed run left beside the shard's final names are deleted.
Staged videos hold exactly what a fresh run would write (the pipeline is deterministic), so a
resumed shard is the same shard an uninterrupted run builds; tests/test_resume.py kills real runs
to prove it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from peakclips import __version__, storage
from peakclips.schema import SCHEMA_VERSION
from peakclips.stages.shard import shard_name, staging_dir

TEMP_MARK = ".tmp-"  # storage.write_atomic / upload_atomic name temporaries `<final>.tmp-<id>`


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fingerprint(run: dict) -> str:
    """Everything run-level that shapes a sample; timings, paths and node ids are left out."""
    return _sha(json.dumps({"config_hash": run["config_hash"], "annotator": run["annotator"],
                            "clip_model": run["clip_model"], "version": __version__,
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

    @property
    def num_reused(self) -> int:
        return sum(len(v) for v in self.reused.values())


def remove_temporaries(output: str, shard_id: int) -> int:
    """Delete `peakclips-NNNNNN*.tmp-*` left in the output folder by a killed writer."""
    prefix = shard_name(shard_id)
    stale = [n for n in storage.listdir(output) if n.startswith(prefix) and TEMP_MARK in n]
    for n in stale:
        storage.remove(storage.join(output, n))
    return len(stale)


def prepare(output: str, shards: list[int], tasks, run: dict, force: bool) -> ResumePlan:
    """Clean the selected incomplete shards and return which staged videos to keep.

    `tasks` are the manifest's VideoTasks for `shards`; `force` keeps nothing.
    """
    plan = ResumePlan()
    expected = {t.index: resume_key(run["fingerprint"], t.index, t.key, t.row.model_dump_json())
                for t in tasks}
    for shard_id in shards:
        plan.removed += remove_temporaries(output, shard_id)
        # A shard being rebuilt is incomplete: its stats file goes first, so a kill during the
        # rebuild never leaves old stats beside a new tar.
        storage.remove(storage.join(output, shard_name(shard_id) + "_stats.json"))
        folder = staging_dir(output, shard_id)
        if force:
            storage.remove(folder, recursive=True)
            continue
        plan.reused[shard_id] = kept = set()
        names = storage.listdir(folder)
        for name in names:
            m = re.fullmatch(r"(\d{9})\.json", name)
            if not m:
                continue
            index = int(m.group(1))
            try:
                record = json.loads(storage.read_bytes(storage.join(folder, name)))
            except (ValueError, OSError):
                record = {}
            has_mp4 = record.get("sample") is None or f"{index:09d}.mp4" in names
            if record.get("resume_key") == expected.get(index) and has_mp4:
                kept.add(index)
        for name in names:
            m = re.fullmatch(r"(\d{9})\.(json|mp4)", name)
            if not (m and int(m.group(1)) in kept):
                storage.remove(storage.join(folder, name))
                plan.removed += 1
    return plan
