"""Reading a finished dataset: the complete shards of an output folder, their samples, indexes
and stats.

Used by the tools that read a built dataset (verify, stats, exports, hub upload, report, frames,
calibrate-clip, annotator-eval); no stage imports it (tests/test_import_direction.py). The trainer
reads tars with webdataset (train/data.py). Only complete shards (shards.is_complete) are read, so
a folder another job is still writing to reads consistently. Tars are read member by member; a sample's frames are only read when asked for
(seekable files skip them). Names and paths come from peakclips/shards.py.
"""

from __future__ import annotations

import json
import tarfile
from collections.abc import Iterator

from peakclips import storage
from peakclips.schema import ShardStats
from peakclips.shards import complete_shards, index_path, stats_path, tar_path


def read_stats(output: str, name: str) -> ShardStats:
    """The `_stats.json` of shard `name`, validated."""
    return ShardStats.model_validate_json(storage.read_bytes(stats_path(output, name)))


def read_index(output: str, name: str):
    """Shard `name`'s Parquet index as a pyarrow Table, read on the calling thread: the files are
    small, and pyarrow's thread pool, once started in a short-lived command, can abort the
    interpreter at exit ("terminate called without an active exception", seen under load with
    pyarrow 26)."""
    import io

    import pyarrow.parquet as pq

    return pq.read_table(io.BytesIO(storage.read_bytes(index_path(output, name))), use_threads=False)


def load_index(output: str, names: list[str]) -> list[dict]:
    """The Parquet index rows of the named shards, in shard order."""
    return [row for name in names for row in read_index(output, name).to_pylist()]


def iter_samples(output: str, frames: bool = False, limit: int | None = None, keys: set[str] | None = None,
                 shards: list[str] | None = None) -> Iterator[tuple[str, dict, bytes | None]]:
    """(shard name, sample JSON as a dict, the `.mp4` bytes or None) for every sample, in shard
    and tar order; at most `limit` samples; only the samples in `keys` and the shards in
    `shards` when given (other members are skipped unread)."""
    count = 0
    for name in shards or complete_shards(output):
        fs, path = storage.fs_and_path(tar_path(output, name))
        with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
            sample, mp4 = None, None
            for member in tar:
                key, _, suffix = member.name.partition(".")
                if keys is not None and key not in keys:
                    continue
                if suffix == "json":
                    sample = json.loads(tar.extractfile(member).read())
                elif suffix == "mp4" and frames:
                    mp4 = tar.extractfile(member).read()
                if sample is not None and sample["key"] == key and (mp4 is not None or not frames):
                    yield name, sample, mp4
                    sample, mp4 = None, None
                    count += 1
                    if limit is not None and count >= limit:
                        return
