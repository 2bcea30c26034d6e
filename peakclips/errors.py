"""Errors are data: a per-video failure becomes `row["error"] = "<stage>:<code>"`.

Stages raise `VideoError` for failures that belong to one input (a corrupt file, a refused URL,
an annotator that keeps failing); the stage wrapper turns it into the row's error and later stages
pass the row through. Anything else is a programming error and is allowed to raise.
"""

from __future__ import annotations


class VideoError(Exception):
    """A failure of one video. `code` is short and stable (`decode_failed`); `detail` is for people."""

    def __init__(self, code: str, detail: str = ""):
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail
