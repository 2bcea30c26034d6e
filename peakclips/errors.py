"""The two kinds of errors PeakClips raises on purpose; anything else is a programming error.

  - `VideoError`: a failure of one video. Inside the pipeline errors are data: the stage
    wrapper turns it into `row["error"] = "<stage>:<code>"` and later stages pass the row
    through. Any other exception raised while working on one row is that row's
    `<stage>:internal` error (`row_error`): a hostile or unlucky input costs its own row, never
    the run. Only faults of the machine itself (a full or read-only disk, `STORAGE_FAULT`) end a
    run, with one sentence (`OutputError`). A command that works on one video the user named
    (`peakclips scenes`, `frames --video`, `select`) reports a VideoError as an input error.
  - `UserError`: a usage or input error of the person running a command (a config key, a
    manifest line, an argument, a file that is not text, a dataset that lacks what was asked
    for, an output folder that cannot be written). Its message is one sentence saying what to
    change. Library functions raise it; only the two command-line modules (peakclips/cli.py,
    peakclips/train/cli.py) print it and exit with code 2. ConfigError, ManifestError,
    InputError, OutputError, DatasetError, HubError, DataError, ... are its subclasses.
Exit codes of both CLIs: 0 ok, 1 the thing checked failed (verify found defects, a calibration
is not usable), 2 a usage or input error. Programming errors keep their traceback.
"""

from __future__ import annotations

import errno
import os


class VideoError(Exception):
    """A failure of one video. `code` is short and stable (`decode_failed`); `detail` is for people."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class UserError(ValueError):
    """A usage or input error; the message is one sentence saying what to change (exit code 2).

    A ValueError, as these errors were before the hierarchy existed; catch it by its own name."""


class DatasetError(UserError):
    """A built dataset that does not hold what was asked for (no shards, no such video or query)."""


class InputError(UserError):
    """Something the user gave (a file, a flag) cannot be used; the message says what and why."""


class OutputError(UserError):
    """The output cannot be written (not a folder, read-only, full); the message says where."""


# errno values that say the output's storage is unusable: not one row's fault, so they end the
# run (cleanly) instead of failing every remaining row one by one.
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _chain(e: BaseException | None):
    """`e` and the exceptions behind it: Ray's `cause` of a worker's exception, then Python's."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = getattr(e, "cause", None) or e.__cause__ or (None if e.__suppress_context__ else e.__context__)


def machine_error(e: BaseException) -> OSError | None:
    """The disk-full / read-only OSError behind `e` (Ray wraps worker exceptions), or None."""
    return next((x for x in _chain(e) if isinstance(x, OSError) and x.errno in MACHINE_ERRNOS), None)


def user_error(e: BaseException) -> UserError | None:
    """The UserError a worker raised behind Ray's wrapper `e` (whose message is a traceback), or
    None. Ray's wrapper is an instance of the error's class too, but it carries a `cause`."""
    return next((x for x in _chain(e) if isinstance(x, UserError) and getattr(x, "cause", None) is None), None)


# The row code of a full or read-only disk met while working on a row. It is not the row's fault:
# the last stage stages nothing for such a row and the driver ends the run with one sentence
# (peakclips/storage.py, `output_errors`), so it never reaches a shard.
STORAGE_FAULT = "storage_fault"


def row_error(e: Exception) -> VideoError:
    """The row error for any exception raised while working on one row.

    A `VideoError` is itself; a full or read-only disk is `STORAGE_FAULT`; anything else is
    `internal` with the exception's type and message (URIs redacted, machine paths cut to their
    last part: the detail is published in the index).
    """
    from peakclips.redact import hide_paths

    if isinstance(e, VideoError):
        return e
    if (disk := machine_error(e)) is not None:
        return VideoError(STORAGE_FAULT, os.strerror(disk.errno))
    return VideoError("internal", hide_paths(f"{type(e).__name__}: {e}"))


def storage_fault(row: dict) -> str | None:
    """What a row met when its stage found the disk full or read-only, else None."""
    if (row.get("error") or "").endswith(":" + STORAGE_FAULT):
        return row.get("error_detail") or STORAGE_FAULT
    return None
