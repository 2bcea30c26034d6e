"""Exports of a built dataset to the formats existing grounding code reads unchanged:
QVHighlights / Moment-DETR jsonl (`qvhighlights.py`) and Charades-STA text (`charades.py`).

Both read finished shards only (peakclips/shards.py) and export the kept queries of every
sample, in shard and sample order. `windows()` is the one rule both share.
"""

from __future__ import annotations

from peakclips.spans import union

EXPORTS = ("qvhighlights", "charades")


def windows(highlights: list[dict]) -> list[list[float]]:
    """A query's highlight clips as time windows, touching clips merged into one.

    P1 and P2 clips are maximal same-priority runs, so a P1 clip can touch a P2 clip; as a
    moment they are one span (the priority lives on in QVHighlights' saliency scores).

    >>> windows([{"start_s": 0.0, "end_s": 2.5}, {"start_s": 2.5, "end_s": 4.0}, {"start_s": 6.0, "end_s": 7.0}])
    [[0.0, 4.0], [6.0, 7.0]]
    """
    return [[a, b] for a, b in union((h["start_s"], h["end_s"]) for h in highlights)]


def export(kind: str, output: str, dest: str) -> int:
    """Write the `kind` export of the dataset in `output` to `dest` (a path or fsspec URI,
    written atomically); returns the number of lines."""
    import os
    import tempfile

    from peakclips import storage
    from peakclips.dataset import iter_samples
    from peakclips.export import charades, qvhighlights

    module = {"qvhighlights": qvhighlights, "charades": charades}[kind]
    count = 0
    with tempfile.TemporaryDirectory(prefix="peakclips-export-") as tmp:
        local = os.path.join(tmp, "export")
        with open(local, "w", encoding="utf-8") as f:
            for line in module.lines(sample for _, sample, _ in iter_samples(output)):
                f.write(line + "\n")
                count += 1
        storage.upload_atomic(local, dest)
    return count
