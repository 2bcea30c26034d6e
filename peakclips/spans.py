"""Time spans: the interval arithmetic every part of PeakClips shares.

A span is a (start, end) pair of seconds, end exclusive. Scenes, highlight clips, exported
windows and predicted clips are all spans; this module is the one place that merges, measures,
compares and splits them, so every edge case is decided here once:

  - spans that overlap, or touch within EPS (1 us), are one span in a union (a P1 clip that
    ends where a P2 clip starts is one moment);
  - a length counts each moment once (a union's measure), exactly the plain sum of the lengths
    when the spans are already disjoint;
  - the temporal IoU of two empty (or zero-length) sets of spans is 1.0: two empty sets are the
    same set (the Jaccard index's convention), so an annotator that marks no highlight where
    the reference has none agrees with it. The RL reward never scores against an empty gold
    set (it returns None there, rewards.py), so only agreement measures see this case;
  - a span splits into ceil(length / max_len) equal parts, where a length within EPS of a
    multiple of max_len counts as that multiple: stored times are rounded to 0.1 ms, so the
    excess is invisible, and float sums (3 x 20.0 s = 60.00000000000001) must not add a part.
    So 120.000000001 s with max_len 60 is 2 parts, not 3.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Span = tuple[float, float]

EPS = 1e-6
"""Seconds below which two times are the same moment (1 us; stored times are rounded to 0.1 ms)."""


def union(spans: Iterable[Span]) -> list[Span]:
    """Sorted, merged spans: overlapping or touching (within EPS) spans become one.

    >>> union([(3, 5), (0, 1), (4, 6), (1, 2)])
    [(0, 2), (3, 6)]
    """
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + EPS:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def length(spans: Iterable[Span]) -> float:
    """Seconds covered by `spans`, each moment counted once; the plain sum of the lengths (in
    start order) when the spans are disjoint.

    >>> length([(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)])
    4.0
    """
    total, reach = 0.0, -math.inf
    for a, b in sorted(spans):
        total += max(0.0, b - max(a, reach))
        reach = max(reach, b)
    return total


def coverage(spans: Iterable[Span], duration: float) -> float:
    """The share of [0, duration) that `spans` cover (0.0 for a video without duration).

    >>> coverage([(0.0, 2.5), (2.5, 5.0)], 10.0)
    0.5
    """
    return length(spans) / duration if duration > 0 else 0.0


def overlap(a: Span, b: Span) -> float:
    """Seconds two spans share.

    >>> overlap((0.0, 4.0), (3.0, 6.0)), overlap((0.0, 1.0), (2.0, 3.0))
    (1.0, 0.0)
    """
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def temporal_iou(pred: Iterable[Span], gold: Iterable[Span]) -> float:
    """Intersection over union of two sets of spans, each taken as its union; 1.0 when both are
    empty (see the module docstring).

    >>> temporal_iou([(0, 4)], [(2, 6)])
    0.3333333333333333
    >>> temporal_iou([(0, 2), (4, 6)], [(1, 5)])
    0.3333333333333333
    >>> temporal_iou([], [])
    1.0
    """
    p, g = union(pred), union(gold)
    inter = sum(overlap(x, y) for x in p for y in g)
    total = length(p) + length(g) - inter
    return inter / total if total > 0 else 1.0


def split(start: float, end: float, max_len: float) -> list[Span]:
    """[start, end) in ceil(length / max_len) equal parts (see the module docstring for the
    tolerance); the last part ends exactly at `end`.

    >>> split(0.0, 10.0, 4.0)
    [(0.0, 3.3333333333333335), (3.3333333333333335, 6.666666666666667), (6.666666666666667, 10.0)]
    >>> len(split(0.0, 120.000000001, 60.0))
    2
    """
    parts = max(1, math.ceil((end - start - EPS) / max_len))
    step = (end - start) / parts
    return [(start + k * step, end if k == parts - 1 else start + (k + 1) * step) for k in range(parts)]


def midpoints(start: float, end: float, n: int) -> list[float]:
    """n times at the midpoints of n equal slices of [start, end).

    >>> midpoints(0.0, 4.0, 2)
    [1.0, 3.0]
    """
    step = (end - start) / n
    return [start + (i + 0.5) * step for i in range(n)]
