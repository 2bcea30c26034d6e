"""The shard format's layout: every name and path of an output folder, and when a shard is complete.

    OUTPUT/
      peakclips-NNNNNN.tar              WebDataset: KEY.json + KEY.mp4 per kept video, manifest order
      peakclips-NNNNNN.parquet          the index: one row per (video, query) (schema.INDEX_COLUMNS)
      peakclips-NNNNNN_stats.json       schema.ShardStats; written last: it marks the shard complete
      _staging/NNNNNN/IIIIIIIII.mp4     a video's candidate frames, written by the scenes stage
      _staging/NNNNNN/IIIIIIIII.json    the video's staged record, written last by the shard stage:
                                        it marks the video done (peakclips/resume.py keeps it)
      _scratch/NNNNNN/KEY.ext           downloaded inputs (ingest.scratch may move this folder)
      _peakclips.lock                   while a run writes here: who holds the output (peakclips/lock.py)

NNNNNN is the shard id, IIIIIIIII the video's manifest index. Whoever names one of these files
imports the name from here: the stages that write them, the driver, resume, verify and the
readers of finished shards (peakclips/dataset.py). Only storage is imported, so the stages may
import this module without pulling in any reader.
"""

from __future__ import annotations

import json
import re

from peakclips import storage

PREFIX = "peakclips-"
SHARD_FILE_RE = re.compile(r"(peakclips-\d{6})(\.tar|\.parquet|_stats\.json)")
STAGED_RE = re.compile(r"(\d{9})\.(json|mp4)")
STAGING = "_staging"
LOCK = "_peakclips.lock"

TAR_MTIME = 0
"""Every tar member's mtime: fixed, so the same inputs give byte-identical tars."""
MEMBER_SUFFIXES = ("json", "mp4")
"""The members of each sample in a tar, in this order: `KEY.json` then `KEY.mp4`."""
KEY_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")
"""A sample key: safe as a file name and as a WebDataset key (no dots); manifest.safe_key makes
them (at most 120 characters plus a `-N` suffix)."""


def is_safe_key(key: str) -> bool:
    """Readers check keys they did not make (a `/` or `..` would leave the folder they write to)."""
    return KEY_RE.fullmatch(key) is not None


def shard_name(shard: int | str) -> str:
    """`peakclips-000007` for shard 7 (a name is returned as it is)."""
    return shard if isinstance(shard, str) else f"{PREFIX}{shard:06d}"


def tar_path(output: str, shard: int | str) -> str:
    return storage.join(output, shard_name(shard) + ".tar")


def index_path(output: str, shard: int | str) -> str:
    return storage.join(output, shard_name(shard) + ".parquet")


def stats_path(output: str, shard: int | str) -> str:
    return storage.join(output, shard_name(shard) + "_stats.json")


def is_complete(output: str, shard: int | str) -> bool:
    """A shard is complete when its `_stats.json` exists (written last, atomically)."""
    return storage.exists(stats_path(output, shard))


def shard_names(output: str) -> list[str]:
    """Every shard with any final file in `output` (complete or not), sorted."""
    return sorted({m.group(1) for n in storage.listdir(output) if (m := SHARD_FILE_RE.fullmatch(n))})


def complete_shards(output: str) -> list[str]:
    """The complete shards of `output`: the only ones a reader may read (another job may still be
    writing the others)."""
    return [n for n in shard_names(output) if is_complete(output, n)]


def temporaries(output: str, shard: int | str | None = None) -> list[str]:
    """Names of temporary files (storage.TEMP_MARK) in `output`, of one shard or of all."""
    prefix = shard_name(shard) if shard is not None else ""
    return [n for n in storage.listdir(output) if n.startswith(prefix) and storage.TEMP_MARK in n]


def lock_path(output: str) -> str:
    """The output lock: present while a run writes to `output`."""
    return storage.join(output, LOCK)


def staging_root(output: str) -> str:
    return storage.join(output, STAGING)


def staging_dir(output: str, shard_id: int) -> str:
    return storage.join(staging_root(output), f"{shard_id:06d}")


def staged_shards(output: str) -> list[int]:
    """Ids of the shards with a staging folder."""
    return [int(n) for n in storage.listdir(staging_root(output)) if n.isdigit()]


def staged_record(output: str, shard_id: int, index: int) -> str:
    """The staged record of video `index`: written last, its presence means the video is done."""
    return storage.join(staging_dir(output, shard_id), f"{index:09d}.json")


def staged_frames(output: str, shard_id: int, index: int) -> str:
    """The candidate frames (H.264 MP4) of video `index`, staged by the scenes stage."""
    return storage.join(staging_dir(output, shard_id), f"{index:09d}.mp4")


def parse_staged(name: str) -> tuple[int, str] | None:
    """(manifest index, "json" or "mp4") of a staged file name; None for anything else
    (temporaries included)."""
    m = STAGED_RE.fullmatch(name)
    return (int(m.group(1)), m.group(2)) if m else None


def scratch_dir(scratch: str, shard_id: int) -> str:
    """Where the shard's downloaded inputs wait; removed when the shard is finalized."""
    return storage.join(scratch, f"{shard_id:06d}")


def read_staged_record(output: str, shard_id: int, index: int) -> dict:
    """Video `index`'s staged record; {} when it is absent or unreadable (it stands for nothing)."""
    try:
        return json.loads(storage.read_bytes(staged_record(output, shard_id, index)))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return {}


def stands_for(record: dict, key: str | None, has_frames: bool) -> bool:
    """A staged record stands for its video in this run: it carries this run's resume key, and
    the video's candidate frames are staged beside it when the video was kept."""
    return key is not None and record.get("resume_key") == key and (record.get("sample") is None or has_frames)


def staged_by_this_run(output: str, shard_id: int, index: int, key: str) -> dict | None:
    """The staged record of video `index` when it stands for the video (resume key `key`), else
    None. Asked when a video may run a second time within one run (Ray re-ran a task, the driver
    re-runs what did not come back): a staged video is done and is not processed again."""
    record = read_staged_record(output, shard_id, index)
    has_frames = record.get("sample") is None or storage.exists(staged_frames(output, shard_id, index))
    return record if stands_for(record, key, has_frames) else None
