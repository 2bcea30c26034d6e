"""Exports of a built dataset to the formats existing grounding code reads unchanged:
QVHighlights / Moment-DETR jsonl (`qvhighlights.py`) and Charades-STA text (`charades.py`).

Both read finished shards only (peakclips/shards.py) and export the kept queries of every
sample, in shard and sample order. `windows()` is the one rule both share.
"""

from __future__ import annotations

EXPORTS = ("qvhighlights", "charades")


def windows(highlights: list[dict]) -> list[list[float]]:
    """A query's highlight clips as time windows, touching clips merged into one.

    P1 and P2 clips are maximal same-priority runs, so a P1 clip can touch a P2 clip; as a
    moment they are one span (the priority lives on in QVHighlights' saliency scores).

    >>> windows([{"start_s": 0.0, "end_s": 2.5}, {"start_s": 2.5, "end_s": 4.0}, {"start_s": 6.0, "end_s": 7.0}])
    [[0.0, 4.0], [6.0, 7.0]]
    """
    merged: list[list[float]] = []
    for h in sorted(highlights, key=lambda h: h["start_s"]):
        if merged and h["start_s"] <= merged[-1][1] + 1e-6:
            merged[-1][1] = max(merged[-1][1], h["end_s"])
        else:
            merged.append([h["start_s"], h["end_s"]])
    return merged


def export(kind: str, output: str, dest: str) -> int:
    """Write the `kind` export of the dataset in `output` to `dest` (a path or fsspec URI,
    written atomically); returns the number of lines."""
    import os
    import tempfile

    from peakclips import storage
    from peakclips.export import charades, qvhighlights
    from peakclips.shards import iter_samples

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
