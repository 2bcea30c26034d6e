"""Errors are data: a per-video failure becomes `row["error"] = "<stage>:<code>"`.

Stages raise `VideoError` for failures that belong to one input (a corrupt file, a refused URL,
an annotator that keeps failing); the stage wrapper turns it into the row's error and later stages
pass the row through. Any other exception raised while working on one row is that row's
`<stage>:internal` error (`row_error`): a hostile or unlucky input costs its own row, never the
run. Only faults of the machine itself (the output's disk is full or read-only, `OutputError`)
end a run, with one sentence.

Library code raises `InputError` / `OutputError` for what a user must fix (a manifest that is not
text, an output folder that cannot be written); only the command line prints them (exit code 2).
"""

from __future__ import annotations

import errno


class VideoError(Exception):
    """A failure of one video. `code` is short and stable (`decode_failed`); `detail` is for people."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class InputError(ValueError):
    """Something the user gave (a file, a flag) cannot be used; the message says what and why."""


class OutputError(OSError):
    """The output cannot be written (not a folder, read-only, full); the message says where."""


# errno values that say the output's storage is unusable: not one row's fault, so they end the
# run (cleanly) instead of failing every remaining row one by one.
MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def machine_error(e: BaseException) -> OSError | None:
    """The disk-full / read-only OSError behind `e` (Ray wraps worker exceptions), or None."""
    seen: set[int] = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in MACHINE_ERRNOS:
            return e
        e = getattr(e, "cause", None) or e.__cause__ or e.__context__
    return None


def row_error(e: Exception) -> VideoError:
    """The row error for any exception raised while working on one row.

    A `VideoError` is itself; anything else is `internal` with the exception's type and message
    (URIs redacted, machine paths cut to their last part: the detail is published in the index).
    A full or read-only output is re-raised: the next row would meet it too.
    """
    from peakclips.redact import hide_paths

    if isinstance(e, VideoError):
        return e
    if machine_error(e) is not None:
        raise e
    return VideoError("internal", hide_paths(f"{type(e).__name__}: {e}"))
