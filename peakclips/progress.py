"""What a running `peakclips run` shows while it works: a live one-line bar on a terminal, a plain
line every minute (`--progress SECONDS`) when stderr is a file or a pipe.

    [########......] 1234/10000 videos 12% | ok 1000 dropped 200 error 34 | 45.2/min | ETA 3h14m | shards 12/100 | LLM 10234 calls $1.23

The driver's loop (peakclips/driver.py) counts what comes back from the stages (`video_done`)
and the shards it finalized (`shard_done`); a daemon thread draws, so the bar keeps moving (time,
rate, ETA) while no video comes back. Lines the run logs meanwhile go through `log`, which wipes
the bar first and draws it again after, so the two never share a line.
"""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from collections import Counter

BAR_INTERVAL_S = 1.0
"""How often the bar is redrawn on a terminal."""
LINE_INTERVAL_S = 60.0
"""The default seconds between plain progress lines when stderr is not a terminal."""


def format_duration(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts of a run and their rendering. `total` videos to account for, of which `done` were
    already staged by an earlier run; `shards` to build."""

    def __init__(self, total: int, shards: int, done: int = 0, stream=None, interval_s: float | None = None,
                 log=print, clock=time.monotonic):
        self.total, self.shards_total = total, shards
        self.kept = done  # staged by an earlier run: done, but not part of this run's rate
        self.status: Counter = Counter()
        self.shards_done = 0
        self.llm_calls, self.cost_usd = 0, 0.0
        self.clock = clock
        self.started = clock()
        self.sink = log
        self.stream = stream if stream is not None else sys.stderr
        self.live = _isatty(self.stream)
        self.interval_s = BAR_INTERVAL_S if self.live else (LINE_INTERVAL_S if interval_s is None else interval_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False  # a bar is on the current terminal line

    # --- counting (the driver's thread) -----------------------------------------------------

    def video_done(self, status: str, llm_calls: int = 0, cost_usd: float = 0.0) -> None:
        self.status[status] += 1
        self.llm_calls += llm_calls
        self.cost_usd += cost_usd

    def shard_done(self) -> None:
        self.shards_done += 1

    @property
    def done(self) -> int:
        return self.kept + sum(self.status.values())

    # --- rendering --------------------------------------------------------------------------

    def line(self) -> str:
        """One line of the current counts (without the bar)."""
        elapsed = self.clock() - self.started
        processed = sum(self.status.values())
        rate = processed / elapsed * 60 if elapsed > 0 else 0.0
        left = self.total - self.done
        eta = format_duration(left / rate * 60) if rate > 0 else "-"
        pct = 100 * self.done // self.total if self.total else 100
        s = self.status
        return (f"{self.done}/{self.total} videos {pct}% | ok {s['ok']} dropped {s['dropped']} error {s['error']} | "
                f"{rate:.1f}/min | ETA {eta} | shards {self.shards_done}/{self.shards_total} | "
                f"LLM {self.llm_calls} calls ${self.cost_usd:.2f} | {format_duration(elapsed)}")

    def bar(self, width: int) -> str:
        text = self.line()
        cells = max(10, min(30, width - len(text) - 4))
        filled = cells * self.done // self.total if self.total else cells
        return f"[{'#' * filled}{'.' * (cells - filled)}] {text}"[: max(20, width - 1)]

    def draw(self) -> None:
        with self._lock:
            if self.live:
                width = shutil.get_terminal_size((120, 24)).columns
                self._write(f"\r{self.bar(width)}\x1b[K")
                self._drawn = True
            else:
                self._write(f"progress: {self.line()}\n")

    def log(self, message: str) -> None:
        """Hand a line of the run's log to its sink (print, by default) without breaking the bar."""
        with self._lock:
            if self._drawn:
                self._write("\r\x1b[K")
                self._drawn = False
            self.sink(message)
            sys.stdout.flush()
        if self.live and self._thread is not None and not self._stop.is_set():
            self.draw()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: progress is a nicety, never a failure
            pass

    # --- the drawing thread -----------------------------------------------------------------

    def __enter__(self) -> Progress:
        if self.interval_s > 0:
            self._thread = threading.Thread(target=self._tick, name="peakclips-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.live:
            with self._lock:
                if self._drawn:  # leave the last state on screen, and the cursor on a new line
                    self._write("\n")
                    self._drawn = False

    def _tick(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.draw()
        self.draw()  # the final counts


def _isatty(stream) -> bool:
    try:
        return os.isatty(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
