"""One run at a time on an output: the output lock, `OUTPUT/_peakclips.lock` (shards.lock_path).

Two runs writing one output would delete each other's staged videos and could finish a shard
from the other's samples. So `peakclips run` (pipeline.run) holds this lock from before it
touches the output to its end, on a local folder and on object storage alike:

  - **Taking it** is an exclusive create (storage.create_exclusive): a hard link of a finished
    file locally, a conditional PUT (`If-None-Match: *`) on S3. Of two runs that try at once,
    exactly one gets it; the other is refused with one sentence naming the lock and its holder.
  - **Heartbeat**: the holder rewrites the lock every `HEARTBEAT_S` seconds with the time. A
    heartbeat that finds someone else's lock there (it was broken and taken) stops the run
    (`on_lost`), before it publishes anything more.
  - **Stale**: a lock whose holder crashed does not block the output for ever. It is stale when
    its process is gone (a holder on this machine: checked at once, by pid and start time) or,
    for a holder on another machine, when its last heartbeat is more than `STALE_S` seconds old
    (clocks of the machines must agree within a minute or so). A run that finds a stale lock says
    so in one line and takes it over.
  - **Breaking it by hand**: `peakclips unlock OUTPUT` removes it (for a holder that is gone
    but, on another machine, not yet stale). A run whose lock was broken stops at its next
    heartbeat.
Released when the run ends, however it ends short of a kill.
"""

from __future__ import annotations

import _thread
import datetime
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable

from peakclips import shards, storage
from peakclips.errors import OutputError
from peakclips.redact import redact_uri

HEARTBEAT_S = 15.0
STALE_S = 120.0


class OutputLocked(OutputError):
    """Another run holds the output's lock; the message names the lock, its holder and what to do."""


def machine_id() -> str:
    """This machine: its host name and, where Linux has one, this boot's id (a rebooted machine
    runs none of the processes an old lock names)."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return f"{socket.gethostname()}/{boot}"


def process_started(pid: int) -> float | None:
    """When process `pid` of this machine started (None: there is none)."""
    import psutil

    try:
        return round(psutil.Process(pid).create_time(), 2)
    except psutil.Error:
        return None


def stale_reason(holder: dict | None, now: float, stale_s: float = STALE_S) -> str | None:
    """Why a lock whose content is `holder` may be taken over; None while its run may still live."""
    if not isinstance(holder, dict) or not {"owner", "machine", "pid", "pid_started", "heartbeat"} <= holder.keys():
        return "it is not a lock a PeakClips run wrote"
    if holder["machine"] == machine_id():
        started = process_started(holder["pid"])
        if started is None or abs(started - holder["pid_started"]) > 1:
            return f"its run (pid {holder['pid']} on this machine) is gone"
        return None
    age = now - holder["heartbeat"]
    if age > stale_s:
        return f"its run (pid {holder['pid']} on {holder['host']}) last showed signs of life {age:.0f} s ago"
    return None


def describe(holder: dict | None, now: float) -> str:
    if not isinstance(holder, dict):
        return "an unreadable lock"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}, "
            f"last heartbeat {now - holder.get('heartbeat', now):.0f} s ago")


def read_lock(output: str) -> tuple[bytes, dict | None] | None:
    """(raw bytes, parsed holder or None if unreadable) of the output's lock; None: no lock."""
    try:
        raw = storage.read_bytes(shards.lock_path(output), max_bytes=1 << 16)
    except FileNotFoundError:
        return None
    try:
        return raw, json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return raw, None


class OutputLock:
    """`with OutputLock(output): ...` holds the output's lock for the block (see the module
    docstring). `lost` says why, when someone else took it meanwhile; `on_lost` is then called
    once from the heartbeat thread (default: interrupt the main thread, which the run turns into
    one sentence)."""

    def __init__(self, output: str, log: Callable[[str], None] = print, on_lost: Callable[[], None] | None = None,
                 heartbeat_s: float = HEARTBEAT_S, stale_s: float = STALE_S):
        self.output, self.uri, self.log = output, shards.lock_path(output), log
        self.on_lost = on_lost or _thread.interrupt_main
        self.heartbeat_s, self.stale_s = heartbeat_s, stale_s
        self.owner = uuid.uuid4().hex
        self.lost: str | None = None
        self._created: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        pid = os.getpid()
        self._holder = {"owner": self.owner, "host": socket.gethostname(), "machine": machine_id(), "pid": pid,
                        "pid_started": process_started(pid),
                        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}

    def _record(self) -> bytes:
        return json.dumps(dict(self._holder, heartbeat=time.time()), indent=1).encode()

    def acquire(self) -> None:
        storage.check_writable(self.output)  # one sentence for an output that is a file, read-only, full, no bucket
        self._created = storage.missing_folder(self.output)  # removed again if the run writes nothing
        shown = redact_uri(self.uri)
        for _ in range(3):
            try:
                storage.create_exclusive(self.uri, self._record())
                break
            except FileExistsError:
                pass
            found = read_lock(self.output)
            if found is None:  # released meanwhile: try again
                continue
            raw, holder = found
            why = stale_reason(holder, time.time(), self.stale_s)
            if why is None:
                raise OutputLocked(
                    f"{redact_uri(self.output)} is being written by another run ({describe(holder, time.time())}; "
                    f"lock {shown}): wait for it to end, or if it is gone, run `peakclips unlock "
                    f"{redact_uri(self.output)}` (a lock from another machine also goes stale {self.stale_s:.0f} s "
                    "after its last heartbeat)")
            self.log(f"taking over the stale lock {shown}: {why}")
            again = read_lock(self.output)
            if again is not None and again[0] == raw:  # nobody took it over meanwhile
                storage.remove(self.uri)
        else:
            raise OutputLocked(f"could not take the lock {shown}: other runs keep taking it; is another run "
                               f"starting on {redact_uri(self.output)}?")
        self._thread = threading.Thread(target=self._beat, name="peakclips-lock-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                found = read_lock(self.output)
                holder = found[1] if found else None
                if not isinstance(holder, dict) or holder.get("owner") != self.owner:
                    self.lost = (f"the lock {redact_uri(self.uri)} was broken"
                                 + (f" and taken by another run ({describe(holder, time.time())})" if found else "")
                                 + ": this run stopped so as not to write beside it; complete shards are kept")
                    self.on_lost()
                    return
                storage.write_atomic(self.uri, self._record())
            except Exception as e:  # noqa: BLE001 - a storage hiccup: the next beat tries again
                self.log(f"could not renew the lock {redact_uri(self.uri)} ({type(e).__name__}); retrying")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self.lost:
            return
        try:
            found = read_lock(self.output)
            if found is not None and isinstance(found[1], dict) and found[1].get("owner") == self.owner:
                storage.remove(self.uri)
        except Exception as e:  # noqa: BLE001 - the lock goes stale by itself (at once on this machine)
            self.log(f"could not remove the lock {redact_uri(self.uri)} ({type(e).__name__}); it goes stale by itself")
        if self._created:
            storage.remove_if_empty(self._created)

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def unlock(output: str, now: float | None = None) -> str:
    """`peakclips unlock OUTPUT`: remove the output's lock; returns what was removed, in words."""
    found = read_lock(output)
    if found is None:
        return f"no lock in {redact_uri(output)}"
    raw, holder = found
    now = time.time() if now is None else now
    why = stale_reason(holder, now)
    storage.remove(shards.lock_path(output))
    said = f"removed the lock {redact_uri(shards.lock_path(output))} ({describe(holder, now)})"
    if why is None:
        return said + ": if that run is still going, it stops at its next heartbeat"
    return f"{said}: {why}"
