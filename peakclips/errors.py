"""The two kinds of errors PeakClips raises on purpose; anything else is a programming error.

  - `VideoError`: a failure of one video. Inside the pipeline errors are data: the stage
    wrapper turns it into `row["error"] = "<stage>:<code>"` and later stages pass the row
    through. A command that works on one video the user named (`peakclips scenes`, `frames
    --video`, `select`) reports it as an input error.
  - `UserError`: a usage or input error of the person running a command (a config key, a
    manifest line, an argument, a dataset that lacks what was asked for). Its message is one
    sentence saying what to change. Library functions raise it; only the two command-line
    modules (peakclips/cli.py, peakclips/train/cli.py) print it and exit with code 2.
    ConfigError, ManifestError, DatasetError, HubError, DataError, ... are its subclasses.
Exit codes of both CLIs: 0 ok, 1 the thing checked failed (verify found defects, a calibration
is not usable), 2 a usage or input error. Programming errors keep their traceback.
"""

from __future__ import annotations


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
