"""clip2frame (SPEC section 2.2): from highlight clips to any budget of k frame timestamps.

A pure function, shared by `peakclips frames`, the RL reward and `peakclips select`:
  - `focused` (default for k <= 8): frames only inside the clips, allotted in proportion to
    weight(priority) x clip length (P1 weight 2, P2 weight 1 by default), rounded by largest
    remainder so they sum to exactly k, evenly spaced inside each clip at sub-interval midpoints;
  - `hybrid` (default for k > 8): a background share (default 25 %) spread uniformly over the
    whole video, the rest as in `focused`;
  - `uniform`, and the fallback when there are no clips: k midpoints over the whole video.
Timestamps are sorted, distinct, inside [0, duration), and deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Mode = Literal["auto", "focused", "hybrid", "uniform"]
DEFAULT_WEIGHTS = {"P1": 2.0, "P2": 1.0}


def _midpoints(start: float, end: float, n: int) -> list[float]:
    step = (end - start) / n
    return [start + (i + 0.5) * step for i in range(n)]


def largest_remainder(shares: Sequence[float], total: int) -> list[int]:
    """Integers proportional to `shares` that sum to exactly `total` (ties: earlier first).

    >>> largest_remainder([2.0, 1.0, 1.0], 5)
    [3, 1, 1]
    """
    s = sum(shares)
    if total <= 0 or s <= 0:
        return [0] * len(shares)
    exact = [total * x / s for x in shares]
    counts = [int(e) for e in exact]
    order = sorted(range(len(shares)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _normalise(clips: Sequence[dict], duration: float) -> list[tuple[float, float, str]]:
    """Clamp clips into the video, drop empty ones, sort by start."""
    out = []
    for c in clips:
        a, b = max(0.0, float(c["start_s"])), min(duration, float(c["end_s"]))
        if b > a:
            out.append((a, b, str(c.get("priority", "P2"))))
    return sorted(out)


def _dedupe(times: list[float], duration: float, k: int) -> list[float]:
    """Sorted distinct timestamps; if rounding made duplicates, fill from a uniform grid."""
    unique = sorted({round(t, 6) for t in times})
    if len(unique) >= k:
        return unique[:k]
    for t in _midpoints(0.0, duration, 4 * k):  # deterministic fill, nearest-first is not needed
        if len(unique) >= k:
            break
        rt = round(t, 6)
        if rt not in unique:
            unique.append(rt)
            unique.sort()
    return unique


def clip2frame(
    clips: Sequence[dict],
    duration_s: float,
    k: int,
    mode: Mode = "auto",
    weights: dict[str, float] | None = None,
    background: float = 0.25,
) -> list[float]:
    """k sorted timestamps (seconds) for highlight `clips` ({start_s, end_s, priority}).

    >>> clip2frame([{"start_s": 2.0, "end_s": 4.0, "priority": "P1"}], 10.0, 4, "focused")
    [2.25, 2.75, 3.25, 3.75]
    >>> clip2frame([], 8.0, 4)
    [1.0, 3.0, 5.0, 7.0]
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if duration_s <= 0:
        raise ValueError("duration_s must be positive")
    weights = weights or DEFAULT_WEIGHTS
    spans = _normalise(clips, duration_s)
    if mode == "auto":
        mode = "focused" if k <= 8 else "hybrid"
    if mode == "uniform" or not spans:
        return _dedupe(_midpoints(0.0, duration_s, k), duration_s, k)
    n_background = int(round(k * background)) if mode == "hybrid" else 0
    n_clips = k - n_background
    shares = [weights.get(p, 1.0) * (b - a) for a, b, p in spans]
    counts = largest_remainder(shares, n_clips)
    times = _midpoints(0.0, duration_s, n_background) if n_background else []
    for (a, b, _), n in zip(spans, counts):
        if n:
            times += _midpoints(a, b, n)
    return _dedupe(times, duration_s, k)
