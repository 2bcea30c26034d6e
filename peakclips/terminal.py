"""Keep every process PeakClips starts off the user's terminal.

A user types `make peakclips` in a terminal. Ray starts its workers in that terminal's session,
each in a process group of its own, so to the terminal they are background jobs: a background
process that configures the terminal is stopped by SIGTTOU (one that reads it, by SIGTTIN), and
the run hangs with no message. The ffmpeg CLI does exactly that with a terminal on its stdin, and
PySceneDetect runs `ffmpeg -v quiet` when it is imported (to find ffmpeg), in every decode worker.

So nothing PeakClips starts gets the terminal as stdin:
  - the driver of `peakclips run` points its own stdin at /dev/null before it starts Ray
    (`detach_stdin`); every process Ray starts on this machine inherits that;
  - every Ray worker of a run does the same at start-up (`detach_stdin` is the job's
    `worker_process_setup_hook`: `RAY_RUNTIME_ENV`), for clusters whose nodes were started
    with `ray start` typed in a terminal, and for library users who start Ray themselves;
  - our own subprocesses get `stdin=subprocess.DEVNULL`, and the ffmpeg CLI `-nostdin`.
And in case something still ends up stopped, `StoppedWatch` looks at the driver's child
processes every few seconds and ends the run with one sentence instead of hanging.

This module is imported by every Ray worker (the setup hook): it must stay free of heavy imports.
"""

from __future__ import annotations

import os
import sys
import threading

WORKER_SETUP_HOOK = "peakclips.terminal.detach_stdin"
RAY_RUNTIME_ENV = {"worker_process_setup_hook": WORKER_SETUP_HOOK}
"""`ray.init(runtime_env=...)` for every Ray instance PeakClips, its tests and benchmarks start."""


def detach_stdin() -> None:
    """Point file descriptor 0 at /dev/null when it is a terminal (children inherit it)."""
    try:
        if not os.isatty(0):
            return
    except OSError:  # fd 0 closed
        pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    if sys.stdin is not None and not sys.stdin.closed:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - replaces the interpreter's stdin


def stopped_children() -> list[tuple[int, str]]:
    """(pid, command line) of this process's descendants that are stopped (state T): by a
    terminal signal (SIGTTOU, SIGTTIN, SIGTSTP) or by SIGSTOP."""
    import psutil

    stopped = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() == psutil.STATUS_STOPPED:
                stopped.append((child.pid, " ".join(child.cmdline())[:120] or child.name()))
        except psutil.Error:  # exited meanwhile
            continue
    return stopped


class StoppedWatch:
    """Calls `on_stopped(message)` once when a descendant of this process has been stopped for
    two checks in a row (`interval_s` apart, so within 2 x interval_s of the stop).

    A daemon thread; `stop()` ends it. Used by `peakclips run` around the Ray work.
    """

    def __init__(self, on_stopped, interval_s: float = 10.0):
        self.on_stopped = on_stopped
        self.interval_s = interval_s
        self.message: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="peakclips-stopped-watch", daemon=True)

    def __enter__(self) -> StoppedWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        seen: set[int] = set()
        while not self._done.wait(self.interval_s):
            stopped = dict(stopped_children())
            still = [pid for pid in stopped if pid in seen]
            if still:
                pid = still[0]
                self.message = (
                    f"process {pid} ({stopped[pid]}) that this run started has been stopped for "
                    f"{self.interval_s:.0f}+ s, most likely by the terminal (SIGTTOU/SIGTTIN): the run "
                    "cannot finish; run it with stdin from /dev/null (`< /dev/null`) and report this "
                    "as a PeakClips bug")
                self.on_stopped(self.message)
                return
            seen = set(stopped)
