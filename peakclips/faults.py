"""What a run does when a video's processing does not come back: a worker process killed (a
crash, an out-of-memory kill), a node lost, a stage that never returns. Each costs that row only:
bounded retries, then a row error, and the run goes on (SPEC section 7; docs/architecture.md,
"The fault model").

Three layers, from the inside out:

1. The deadline (`guarded`). A stage that works on one video at a time runs it in a thread and
   waits `faults.deadline_s(duration)`; past that the row leaves with `<stage>:timeout`, and the
   worker process, which still holds the stuck thread, ends itself before it takes another video
   (Ray then runs that next video elsewhere). Should the process not get that far (a call that
   never releases the GIL), faulthandler's watchdog, which needs no GIL, ends it GRACE_S later.
   The process title names the stage and the video (`ps` shows what each worker holds).
2. Ray. A task or actor call whose worker process died is retried `faults.retries` times
   (`ray_args`: Ray Data's default is forever, and one poison video would stall the run);
   objects lost with a node are rebuilt from their lineage. A video whose retries all failed
   leaves the dataset (`DataContext.max_errored_blocks = -1`) instead of failing it.
3. The driver (`run_isolated`). The videos that did not come back run once more, each stage of
   each video as a Ray task of its own, so a death is pinned on one stage: after 1 + retries
   deaths the row gets `<stage>:worker_lost` (`<stage>:timeout` when it died past its deadline,
   or is still running GRACE_S after it); the later stages pass the failed row through and the
   shard stage stages its record, so its shard still completes.

Timeouts are not retried: a decoder that hangs on a file hangs again. The async annotate stage
has no deadline of its own: its requests have timeouts and bounded retries (annotator.*).
"""

from __future__ import annotations

import asyncio
import faulthandler
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from peakclips.config import FaultsConfig
from peakclips.errors import VideoError

GRACE_S = 30.0
"""After a stage's deadline: how long a stuck process has to end itself before faulthandler
ends it, and the driver's margin before it cancels an isolated stage task."""
TAINTED_EXIT = 75
"""Exit status of a worker that ends itself because a thread it still holds passed its deadline."""

_tainted: str | None = None
"""Set in a worker process that left a stuck thread behind (what it was stuck on)."""


def deadline_s(stage_name: str, row: dict, faults: FaultsConfig, download_timeout_s: float) -> float:
    """The seconds `stage_name` gets for `row` (ingest: also the download's own time cap)."""
    extra = download_timeout_s if stage_name == "ingest" else 0.0
    return faults.deadline_s(row.get("duration_s") or 0.0) + extra


def guarded(stage, row: dict, seconds: float) -> dict:
    """`stage(row)` within `seconds`; the row with `<stage>:timeout` when it does not return."""
    if _tainted:
        # The thread left behind still holds this process (and maybe a CPU): end the process
        # before doing any work, so Ray runs this task again on a fresh worker.
        print(f"peakclips: worker {os.getpid()} ends itself: {_tainted}", file=sys.stderr, flush=True)
        os._exit(TAINTED_EXIT)
    if row.get("error"):  # a failed row only passes through
        return stage(row)
    started = time.perf_counter()
    previous = _set_title(f"ray::peakclips {stage.name} {row.get('key', '')}")
    outcome: dict = {}

    def work():
        try:
            outcome["row"] = stage(dict(row))
        except BaseException as e:  # handed to the caller, which raises it
            outcome["error"] = e

    thread = threading.Thread(target=work, name=f"peakclips-{stage.name}", daemon=True)
    faulthandler.dump_traceback_later(seconds + GRACE_S, exit=True)
    try:
        thread.start()
        thread.join(seconds)
    finally:
        faulthandler.cancel_dump_traceback_later()
        _set_title(previous)
    if thread.is_alive():
        _taint(f"{stage.name} of video {row.get('key')} passed its deadline of {seconds:.0f} s")
        return stage.finish(row, VideoError("timeout", f"{stage.name} did not finish within {seconds:.0f} s"), started)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["row"]


def _taint(why: str) -> None:
    global _tainted
    _tainted = why


def _set_title(title: str) -> str:
    try:
        import ray._raylet

        previous = ray._raylet.getproctitle()
        ray._raylet.setproctitle(title)
        return previous
    except (ImportError, AttributeError):  # outside a Ray worker: nothing to name
        return ""


class GuardedStage:
    """An actor stage that works on one video at a time, with the deadline of `guarded`."""

    def __init__(self, stage_cls, kwargs: dict, faults: FaultsConfig, download_timeout_s: float = 0.0):
        self.stage = stage_cls(**kwargs)
        self.faults, self.download_timeout_s = faults, download_timeout_s

    def __call__(self, row: dict) -> dict:
        return guarded(self.stage, row, deadline_s(self.stage.name, row, self.faults, self.download_timeout_s))


def ray_args(runs_as: str, faults: FaultsConfig) -> dict:
    """Ray's retries of a stage whose worker process died: bounded (Ray Data retries forever)."""
    if runs_as == "tasks":
        return {"max_retries": faults.retries}
    return {"max_restarts": -1, "max_task_retries": faults.retries}


# --- the driver's second chance: one video at a time, one Ray task per stage ---------------------

def _run_stage(spec, row: dict, seconds: float) -> dict:
    """One stage for one video, in a Ray task of its own (max_calls=1: a fresh worker process,
    which ends with the task, stuck threads and all)."""
    stage = spec.cls(**spec.kwargs)
    if asyncio.iscoroutinefunction(stage.__call__):
        return asyncio.run(stage(row))
    return guarded(stage, row, seconds)


def _bookkeeping(spec):
    """The stage's bookkeeping alone (`finish` uses class attributes only): no model loaded."""
    return spec.cls.__new__(spec.cls)


@dataclass
class _Flight:
    row: dict
    stage: int
    attempt: int
    submitted: float
    seconds: float


def run_isolated(rows: list[dict], specs, faults: FaultsConfig, download_timeout_s: float,
                 log=print) -> Iterator[dict]:
    """Every row through `specs`, one Ray task per stage, each in a fresh worker process and
    without Ray's retries (they are counted here); yields what the last stage returns, one per row.

    A stage whose worker dies runs again up to `faults.retries` times, then the row gets
    `<stage>:worker_lost`; one that passes its deadline gets `<stage>:timeout`: from `guarded`,
    from faulthandler's stop (a death GRACE_S or more past the deadline, counted from when the
    task was sent), or from here, cancelled, when it still runs 2 x GRACE_S past it. A failed row skips to the last stage (the
    stages between would only pass it through). As many videos at once as the cluster has CPUs.
    """
    import ray

    remote = ray.remote(max_calls=1)(_run_stage)
    spec_refs = [ray.put(spec) for spec in specs]
    pending = deque(rows)
    flights: dict = {}
    at_once = max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(row: dict, stage: int, attempt: int = 0) -> None:
        spec = specs[stage]
        seconds = deadline_s(spec.name, row, faults, download_timeout_s)
        ref = remote.options(num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, max_retries=0,
                             name=f"peakclips-isolated-{spec.name}").remote(spec_refs[stage], row, seconds)
        flights[ref] = _Flight(row, stage, attempt, time.monotonic(), seconds)

    def advance(stage: int, row: dict) -> dict | None:
        """Submit the row's next stage; the row itself once the last stage has returned it."""
        if stage == len(specs) - 1:
            return row
        stage += 1
        while row.get("error") and stage < len(specs) - 1:
            row = _bookkeeping(specs[stage]).finish(row, None, time.perf_counter())
            stage += 1
        submit(row, stage)
        return None

    def failed(flight: _Flight, code: str, detail: str) -> dict | None:
        spec = specs[flight.stage]
        log(f"video {flight.row.get('key')}: {spec.name}:{code} ({detail})")
        row = _bookkeeping(spec).finish(dict(flight.row), VideoError(code, detail), time.perf_counter())
        return advance(flight.stage, row)

    while pending or flights:
        while pending and len(flights) < at_once:
            submit(pending.popleft(), 0)
        ready, _ = ray.wait(list(flights), num_returns=1, timeout=1.0)
        for ref in ready:
            flight = flights.pop(ref)
            try:
                out = advance(flight.stage, ray.get(ref))
            except ray.exceptions.RayTaskError:
                raise  # an exception the stage let escape: a programming error, with its traceback
            except ray.exceptions.RayError as e:  # the worker process or its node died
                elapsed = time.monotonic() - flight.submitted
                name = specs[flight.stage].name
                if elapsed >= flight.seconds + GRACE_S:  # faulthandler's hard stop (a call that held the GIL)
                    out = failed(flight, "timeout", f"its worker ended {elapsed:.0f} s after the stage was "
                                                    f"sent, past the deadline of {flight.seconds:.0f} s")
                elif flight.attempt < faults.retries:
                    log(f"video {flight.row.get('key')}: the worker running {name} was lost "
                        f"({type(e).__name__}); trying again ({flight.attempt + 1}/{faults.retries})")
                    submit(flight.row, flight.stage, flight.attempt + 1)
                    out = None
                else:
                    out = failed(flight, "worker_lost", f"its worker process died {faults.retries + 1} "
                                                        f"time(s) ({type(e).__name__})")
            if out is not None:
                yield out
        now = time.monotonic()
        for ref, flight in list(flights.items()):
            if now - flight.submitted > flight.seconds + 2 * GRACE_S:
                ray.cancel(ref, force=True)
                flights.pop(ref)
                out = failed(flight, "timeout", f"still running {now - flight.submitted:.0f} s after it "
                                                f"started (deadline {flight.seconds:.0f} s); cancelled")
                if out is not None:
                    yield out
