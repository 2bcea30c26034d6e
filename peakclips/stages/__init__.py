"""The seven pipeline stages (SPEC section 2). `peakclips/pipeline.py` chains them.

Each stage is a small callable class: `__init__` loads models or clients once per Ray worker,
`process(row)` does the work for one video and returns the columns it adds. The base class
below only does the bookkeeping every stage shares: rows that already failed pass through with
this stage's columns set to empty values (so every row has the same columns), a `VideoError`
becomes `row["error"] = "<stage>:<code>"`, any other exception `"<stage>:internal"` with its type
in `error_detail` (`errors.row_error`: one odd input never aborts the run), every detail is
redacted (`peakclips/redact.py`), the stage's wall time goes into `t_<stage>_s`, and the columns
it is the last reader of (`drops`) leave the row, so blobs travel only as far as they are read.
`peakclips/pipeline.py` lists the stages in order (`stage_specs`).
"""

from __future__ import annotations

import copy
import time
from typing import Any

from peakclips.errors import VideoError, row_error
from peakclips.redact import redact_text


class Stage:
    name: str = ""
    empty: dict[str, Any] = {}
    """The columns this stage adds, with the values a skipped or failed row gets."""
    drops: tuple[str, ...] = ()
    """Columns no later stage reads: removed from every row this stage passes on."""

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        started = time.perf_counter()
        if row.get("error"):
            return self.finish(row, None, started)
        try:
            out = self.process(row)
        except Exception as e:  # noqa: BLE001 - any failure of one row is that row's error
            return self.finish(row, row_error(e), started)
        return self.finish(row, out, started)

    def finish(self, row: dict[str, Any], out: dict | VideoError | None, started: float) -> dict[str, Any]:
        """Put a stage's outcome on the row: its columns, or the empty ones and the error
        (`out` is None for a row that had already failed). Async stages call it too."""
        if isinstance(out, dict):
            row.update(out)
        else:
            row.update(copy.deepcopy(self.empty))
        if isinstance(out, VideoError):
            row["error"] = f"{self.name}:{out.code}"
            row["error_detail"] = redact_text(out.detail)[:1000]
        for column in self.drops:
            row.pop(column, None)
        row[f"t_{self.name}_s"] = time.perf_counter() - started
        row["nodes"] = list(row.get("nodes") or []) + [_node_id()]
        return row


def _node_id() -> str:
    """The Ray node this stage ran on (stats list which nodes did work); "" outside Ray."""
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def stage_seconds(row: dict[str, Any]) -> dict[str, float]:
    """Wall seconds of each stage the row went through, in the order it went (the `t_<stage>_s`
    columns `finish` adds; the order of the stages is pipeline.stage_specs')."""
    return {k[2:-2]: v for k, v in row.items() if k.startswith("t_") and k.endswith("_s")}
