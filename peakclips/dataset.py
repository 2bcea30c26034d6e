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
from peakclips.errors import InputError
from peakclips.schema import ShardStats
from peakclips.shards import complete_shards, index_path, stats_path, tar_path

# The most a reader takes from one tar member: far above what the pipeline writes (a sample's
# JSON is kilobytes, its candidate MP4 a few MB), far below what a hostile header can claim.
MAX_MEMBER_BYTES = {"json": 64 << 20, "mp4": 1 << 30}
MAX_INDEX_BYTES = 1 << 30  # a shard's Parquet index (kilobytes per video)
MAX_STATS_BYTES = 16 << 20  # a shard's _stats.json


def read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    """A member's bytes; InputError for what no PeakClips writer makes: a member that is not a
    plain file (links, devices, sparse files that expand on reading) or claims more than its cap."""
    suffix = member.name.partition(".")[2]
    if not member.isreg() or member.sparse is not None:
        raise InputError(f"tar member {member.name!r} is not a plain file")
    if member.size > MAX_MEMBER_BYTES.get(suffix, 0):
        raise InputError(f"tar member {member.name!r} claims {member.size} bytes, more than a "
                         f".{suffix or '?'} member may hold")
    return tar.extractfile(member).read()


def read_stats(output: str, name: str) -> ShardStats:
    """The `_stats.json` of shard `name`, validated."""
    return ShardStats.model_validate_json(storage.read_bytes(stats_path(output, name), MAX_STATS_BYTES))


def read_index(output: str, name: str):
    """Shard `name`'s Parquet index as a pyarrow Table, read on the calling thread from memory
    Arrow owns.

    Why both: `pq.read_table` goes through Arrow's Dataset API, which pre-buffers on Arrow's IO
    thread pool even with `use_threads=False`, and a buffer over Python bytes is released on that
    pool's thread. When the release comes after the interpreter began to finalize, the thread
    asks for the GIL, Python ends it with pthread_exit, and unwinding through Arrow's C++
    destructor aborts the process: "terminate called without an active exception", exit 134, at
    the end of `peakclips frames` (and every other command that reads indexes) in about one run
    of 30 when three run at once on 2 cores (gdb: `arrow::py::PyBuffer::~PyBuffer` on an Arrow
    pool thread during `Py_FinalizeEx`). `ParquetFile.read` without pre-buffering starts no pool
    thread, and a copy into an Arrow buffer leaves Arrow nothing of Python's to release."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    data = storage.read_bytes(index_path(output, name), MAX_INDEX_BYTES)
    owned = pa.allocate_buffer(len(data))
    pa.FixedSizeBufferWriter(owned).write(data)
    return pq.ParquetFile(pa.BufferReader(owned), pre_buffer=False).read(use_threads=False)


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
                    sample = json.loads(read_member(tar, member))
                elif suffix == "mp4" and frames:
                    mp4 = read_member(tar, member)
                if sample is not None and sample["key"] == key and (mp4 is not None or not frames):
                    yield name, sample, mp4
                    sample, mp4 = None, None
                    count += 1
                    if limit is not None and count >= limit:
                        return
