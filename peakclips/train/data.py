"""Training examples streamed out of PeakClips shards: the trainer's only input.

    expand_shards   a folder, tar, brace pattern, glob or list (local or fsspec) -> tar URIs
    read_samples    one tar (webdataset's tar iterator over an fsspec stream) -> (Sample, mp4 bytes)
    ExampleStream   a torch IterableDataset: splits shards over ranks x DataLoader workers, shuffles
                    shard order and a buffer with a seed per epoch, turns samples into task
                    examples (tasks.py), skips what a resumed run already trained on, and only
                    then decodes the candidate frames (the expensive part).

The stream never ends (epochs follow each other; the trainer stops at `max_steps`), so every
DataLoader worker always delivers whole batches in turn and the data position is just the number
of batches consumed: on resume each worker works out its own share and skips it without decoding.
Reading never imports the pipeline stages; shard names come from `peakclips.shards`, and samples
are validated against `peakclips.schema`.
"""

from __future__ import annotations

import itertools
import logging
import random
from collections.abc import Callable, Iterator

import numpy as np
import torch
from pydantic import ValidationError

from peakclips.errors import UserError
from peakclips.schema import Sample

log = logging.getLogger(__name__)

MakeExamples = Callable[[Sample, list[float], random.Random], list[dict]]


class DataError(UserError):
    """Shards that cannot be trained on (none found, none readable, no example for the stage)."""


def expand_shards(spec: str | list[str]) -> list[str]:
    """Tar URIs from a dataset folder (its complete shards: those with a `_stats.json`, as every
    reader of finished shards takes them), a tar, a brace pattern, a glob, or a list of these.

    >>> expand_shards("s3://b/peakclips-{000000..000002}.tar")
    ['s3://b/peakclips-000000.tar', 's3://b/peakclips-000001.tar', 's3://b/peakclips-000002.tar']
    """
    import braceexpand
    import fsspec

    from peakclips.shards import complete_shards, tar_path

    specs = [spec] if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for pattern in (p for s in specs for p in braceexpand.braceexpand(s)):
        if not any(c in pattern for c in "*?["):
            if pattern.endswith(".tar"):
                out.append(pattern)
                continue
            found = [tar_path(pattern, name) for name in complete_shards(pattern)]
            if not found:
                raise DataError(f"no shards match {pattern}: no complete shard (peakclips-NNNNNN.tar with its "
                                f"_stats.json) in that folder")
            out += found
            continue
        fs, path = fsspec.core.url_to_fs(pattern)
        proto = pattern.split("://", 1)[0] + "://" if "://" in pattern else ""
        found = [f if not proto or f.startswith(proto) else proto + f for f in sorted(fs.glob(path))]
        if not found:
            raise DataError(f"no shards match {pattern}")
        out += found
    return out


def _warn_and_continue(exn: Exception) -> bool:
    log.warning("skipping unreadable shard data: %s", exn)
    return True


def read_samples(uri: str) -> Iterator[tuple[Sample, bytes]]:
    """The samples of one shard in tar order; unreadable members are logged and skipped."""
    import fsspec
    from webdataset.tariterators import group_by_keys, tar_file_expander

    with fsspec.open(uri, "rb") as stream:  # fsspec, not webdataset's gopen: any filesystem fsspec knows
        members = tar_file_expander([{"url": uri, "stream": stream}], handler=_warn_and_continue)
        for raw in group_by_keys(members, handler=_warn_and_continue):
            if "json" not in raw or "mp4" not in raw:
                log.warning("%s: sample %s lacks its json or mp4 member; skipped", uri, raw.get("__key__"))
                continue
            try:
                sample = Sample.model_validate_json(raw["json"])
            except ValidationError as e:
                log.warning("%s: %s.json fails the schema (%s); skipped", uri, raw["__key__"], e.errors()[0]["msg"])
                continue
            yield sample, raw["mp4"]


def even_indices(total: int, n: int) -> list[int]:
    """n indices spread evenly over range(total), at sub-interval midpoints (all when n >= total).

    >>> even_indices(8, 4)
    [1, 3, 5, 7]
    """
    if n >= total:
        return list(range(total))
    return [int((i + 0.5) * total / n) for i in range(n)]


def worker_skip(consumed_batches: int, worker: int, num_workers: int, batch_size: int) -> int:
    """Examples worker `worker` already delivered after `consumed_batches` batches.

    A DataLoader over an iterable dataset takes whole batches from its workers in turn.

    >>> [worker_skip(5, w, 2, 4) for w in (0, 1)]
    [12, 8]
    """
    return (consumed_batches // num_workers + (worker < consumed_batches % num_workers)) * batch_size


def decode_frames(mp4: bytes, indices: list[int], expected: int) -> np.ndarray:
    """The candidate frames at `indices` as a uint8 array (n, H, W, 3).

    Every frame must be decoded (H.264 frames depend on each other), but only the wanted ones
    are converted to RGB, which is most of the cost when few of the T candidates are used."""
    from peakclips.video import shard_frames

    wanted, frames, count = set(indices), {}, 0
    for i, frame in enumerate(shard_frames(mp4)):
        if i in wanted:
            frames[i] = frame.to_ndarray(format="rgb24")
        count += 1
    if count != expected:
        raise ValueError(f"the mp4 holds {count} frames, frame_times_s lists {expected}")
    return np.stack([frames[i] for i in indices])


class ExampleStream(torch.utils.data.IterableDataset):
    """Endless, seeded, resumable stream of decoded task examples for one rank."""

    def __init__(self, shards: list[str], make_examples: MakeExamples, *, num_frames: int, seed: int,
                 shuffle_buffer: int, batch_size: int = 1, rank: int = 0, world_size: int = 1,
                 consumed_batches: int = 0):
        self.shards, self.make_examples = shards, make_examples
        self.num_frames, self.seed, self.shuffle_buffer = num_frames, seed, max(1, shuffle_buffer)
        self.batch_size, self.rank, self.world_size = batch_size, rank, world_size
        self.consumed_batches = consumed_batches

    def _slot(self) -> tuple[int, int, int, int]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        return self.rank * workers + worker, self.world_size * workers, worker, workers

    def _samples(self, rng: random.Random, slot: int, slots: int) -> Iterator[tuple[Sample, bytes]]:
        # Enough shards: each slot reads its own. Fewer shards than slots: every slot reads all
        # and keeps every slots-th sample (more reading, but no slot sits idle).
        split_shards = len(self.shards) >= slots
        mine = self.shards[slot::slots] if split_shards else list(self.shards)
        rng.shuffle(mine)
        counter = itertools.count()
        for uri in mine:
            for sample, mp4 in read_samples(uri):
                if split_shards or next(counter) % slots == slot:
                    yield sample, mp4

    def _epoch(self, epoch: int, slot: int, slots: int) -> Iterator[dict]:
        rng = random.Random(f"{self.seed}:{epoch}:{slot}")
        buffer: list[dict] = []
        for sample, mp4 in self._samples(rng, slot, slots):
            indices = even_indices(len(sample.frame_times_s), self.num_frames)
            times = [sample.frame_times_s[i] for i in indices]
            for ex in self.make_examples(sample, times, rng):
                buffer.append(dict(ex, key=sample.key, times=times, duration=sample.duration_s,
                                   mp4=mp4, indices=indices, num_candidates=len(sample.frame_times_s)))
                if len(buffer) >= self.shuffle_buffer:
                    i = rng.randrange(len(buffer))
                    buffer[i], buffer[-1] = buffer[-1], buffer[i]
                    yield buffer.pop()
        rng.shuffle(buffer)
        yield from buffer

    def __iter__(self) -> Iterator[dict]:
        slot, slots, worker, workers = self._slot()
        skip = worker_skip(self.consumed_batches, worker, workers, self.batch_size)
        seen = 0
        for epoch in itertools.count():
            count = 0
            for ex in self._epoch(epoch, slot, slots):
                count += 1
                seen += 1
                if seen <= skip:
                    continue  # already trained on before the resume: no decoding
                try:
                    frames = decode_frames(ex.pop("mp4"), ex.pop("indices"), ex.pop("num_candidates"))
                except Exception as e:  # noqa: BLE001 - any decoder failure skips this one example
                    log.warning("sample %s: candidate frames do not decode (%s); skipped", ex["key"], e)
                    continue
                yield dict(ex, frames=frames)
            if count == 0:
                raise DataError(f"no training examples for this stage in {len(self.shards)} shard(s) "
                                f"(worker slot {slot} of {slots}): {self.shards[:3]}")
