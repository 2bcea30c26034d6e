"""The driver's loop of `peakclips run`: the selected videos through the stages, what comes back
counted per shard, each shard finalized as soon as its last video is staged, and the videos a
lost worker or node left unfinished run once more on their own (peakclips/faults.py); those
of them that were staged although their rows were lost are kept, not run again.

Videos go to Ray Data in windows of `ray.window` videos, one dataset after the other: Ray Data
keeps bookkeeping for every block of a dataset (one block per video) until that dataset is done,
so one dataset for the whole run grows the driver by tens of KiB per video (docs/benchmarks.md,
scale); a window's bookkeeping is freed when it ends. Within a window, videos stream through
every stage at once; the next window starts when the last one is drained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class ShardTracker:
    """Which videos of each shard being built are staged. A set of indices, not a count: a
    retried task that reports a video twice must not complete a shard early. A shard's entry
    is dropped once it is complete, so the driver holds only the shards in progress."""

    expected: dict[int, dict[int, str]]
    """shard id -> {manifest index: resume key} of its videos, in order (resume.shard_keys)."""
    staged: dict[int, set[int]] = field(default_factory=dict)

    def add(self, shard_id: int, index: int) -> bool:
        """Record a staged video; True when this completes its shard (once per shard)."""
        done = self.staged.setdefault(shard_id, set())
        if shard_id not in self.expected or index in done:
            return False
        done.add(index)
        return len(done) == len(self.expected[shard_id])

    def complete(self) -> list[int]:
        """Shards all of whose videos are staged already (by an earlier run)."""
        return [s for s, indices in self.expected.items() if len(self.staged.get(s, ())) == len(indices)]

    def take(self, shard_id: int) -> dict[int, str]:
        """The videos (index -> resume key) of a complete shard, forgetting it."""
        self.staged.pop(shard_id, None)
        return self.expected.pop(shard_id)

    def is_staged(self, shard_id: int, index: int) -> bool:
        return shard_id not in self.expected or index in self.staged.get(shard_id, ())


def windows(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def stream(items: list[dict], build: Callable[[list[dict]], Iterable[dict]], isolate: Callable[[list[dict]], Iterable[dict]],
           staged: Callable[[list[dict]], dict[int, dict]], log=print) -> Iterator[dict]:
    """Every item through the stages: `build(items)` yields each item's last-stage row (a Ray Data
    dataset; a video whose worker died past its retries does not come back). What did not come
    back runs again: once more as a dataset when the whole dataset failed, then each video on
    its own (`isolate`), which always accounts for it. Before either, `staged(todo)` names the
    videos among them that were staged although their rows never came back (index -> the row
    the last stage would have returned): those are done and are not processed again. Yields
    one row per item."""
    todo, attempt = items, 0
    while todo:
        seen: set[int] = set()
        failure = None
        try:
            for row in build(todo):
                if row["index"] not in seen:
                    seen.add(row["index"])
                    yield row
        except Exception as e:  # noqa: BLE001 - whatever stopped the dataset, its videos run again
            failure = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
        todo = [item for item in todo if item["index"] not in seen]
        if todo and (done := staged(todo)):
            log(f"{len(done)} of the {len(todo)} video(s) whose rows did not come back were staged: kept as they are")
            yield from done.values()
            todo = [item for item in todo if item["index"] not in done]
        if not todo:
            return
        attempt += 1
        if failure and attempt == 1:
            log(f"the dataset stopped ({failure}); running its {len(todo)} unfinished video(s) again")
            continue
        log(f"{len(todo)} video(s) did not come back (a worker process or node was lost"
            f"{'; ' + failure if failure else ''}); running each once more on its own")
        yield from isolate(todo)
        return


def build_shards(tasks: list, tracker: ShardTracker, cfg, output: str, run, progress) -> list:
    """Process `tasks` (VideoTasks not staged yet) window by window, finalize each shard of
    `tracker` as soon as its last video is staged; returns every built shard's stats, by shard."""
    import ray

    from peakclips import storage
    from peakclips.faults import run_isolated
    from peakclips.pipeline import _has_gpu, build_dataset, stage_specs, video_items
    from peakclips.stages.shard import finalize_shard, staged_reports

    finalize = ray.remote(num_cpus=0.5, max_retries=2)(finalize_shard)
    pending, finished = [], []

    def launch(shard_id: int) -> None:
        pending.append(finalize.remote(output, shard_id, tracker.take(shard_id), run))

    def collect(wait: bool = False) -> None:
        if not pending:
            return
        ready, rest = ray.wait(pending, num_returns=len(pending) if wait else 1, timeout=None if wait else 0)
        for ref in ready:
            finished.append(ray.get(ref))
            progress.shard_done()
        pending[:] = rest

    for shard_id in tracker.complete():
        launch(shard_id)
    specs = stage_specs(cfg, output, run, gpu=_has_gpu())
    download_s = cfg.ingest.download_timeout_s

    def build(items: list[dict]):
        return build_dataset(items, specs, cfg).iter_rows()

    def isolate(items: list[dict]):
        return run_isolated(items, specs, cfg.faults, download_s, log=progress.log)

    def staged(items: list[dict]) -> dict[int, dict]:
        return staged_reports(output, items)

    for window in windows(tasks, cfg.ray.window):
        for row in stream(video_items(window, run), build, isolate, staged, log=progress.log):
            if row.get("storage_fault"):  # the disk is full or read-only: every next row would meet it
                raise storage.storage_fault_error(output, row["storage_fault"])
            if not tracker.is_staged(row["shard_id"], row["index"]):
                progress.video_done(row["status"], row.get("llm_calls", 0), row.get("cost_usd", 0.0))
            if tracker.add(row["shard_id"], row["index"]):
                launch(row["shard_id"])
            collect()
    collect(wait=True)
    return sorted(finished, key=lambda s: s.shard)
