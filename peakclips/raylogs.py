"""Ray's own chatter stays off the user's terminal unless `peakclips run --verbose`; errors still
show. What is hidden by default:

  - Ray core's start-up lines and warnings (the token-auth banner, "Started a local Ray
    instance"): the `ray` logger at ERROR (`ray_logging_level`);
  - Ray Data's console lines below ERROR: the execution plan, "Starting execution",
    "Progress bars disabled" (PeakClips draws its own progress), execution times
    (`quiet_ray_data`; Ray Data's log file in the session folder keeps all of them);
  - Ray Data's error for a video whose worker died past its retries ("Ignoring this exception
    ... max_errored_blocks"): the driver runs that video again and says what became of it
    in one line (peakclips/faults.py);
  - the core worker's notice that actors keep their constructor arguments in the object store
    (an E-level line from C++ for every actor pool Ray Data starts, harmless here), by
    `filter_stderr`, which also sees what C++ writes to file descriptor 2.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

HIDDEN_LINES = ("has constructor arguments in the object store",)
"""Lines the driver's stderr never shows without --verbose (written by Ray's C++ core worker)."""


def ray_logging_level(verbose: bool) -> int:
    return logging.INFO if verbose else logging.ERROR


class _HandledElsewhere(logging.Filter):
    """Drops Ray Data's report of a block that failed past its retries: the driver reports it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "max_errored_blocks" not in record.getMessage()


def quiet_ray_data() -> None:
    """Ray Data's console handler shows errors only, and not the ones the driver reports itself."""
    import ray.data  # noqa: F401 - configures Ray Data's loggers

    for handler in logging.getLogger("ray.data").handlers:
        if type(handler).__name__ == "PlainRayHandler":  # the console; the session log file keeps all
            handler.setLevel(logging.ERROR)
            if not any(isinstance(f, _HandledElsewhere) for f in handler.filters):
                handler.addFilter(_HandledElsewhere())


class filter_stderr:
    """Within this block, lines written to file descriptor 2 (by Python or C++) that contain one of
    HIDDEN_LINES are dropped; everything else goes to the real stderr, in order. A thread reads
    a pipe that replaces fd 2 and copies the lines on; leaving the block restores fd 2.

    `real_stderr` is a file object on the original fd 2 (for the progress bar, which must still
    know that it writes to a terminal)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.real_stderr = sys.stderr

    def __enter__(self) -> filter_stderr:
        if not self.enabled:
            return self
        sys.stderr.flush()
        self._saved = os.dup(2)
        self.real_stderr = open(os.dup(self._saved), "w", buffering=1, closefd=True)  # noqa: SIM115 - closed in __exit__
        read_end, write_end = os.pipe()
        os.dup2(write_end, 2)
        os.close(write_end)
        self._thread = threading.Thread(target=self._copy, args=(read_end,), name="peakclips-stderr", daemon=True)
        self._thread.start()
        return self

    def _copy(self, read_end: int) -> None:
        with open(read_end, "rb") as pipe:
            for line in pipe:
                if not any(h.encode() in line for h in HIDDEN_LINES):
                    os.write(self._saved, line)

    def __exit__(self, *exc) -> None:
        if not self.enabled:
            return
        sys.stderr.flush()
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the thread sees EOF
        self._thread.join(timeout=5)
        os.close(self._saved)
        self.real_stderr.close()
