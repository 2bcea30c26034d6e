"""clip2frame (SPEC section 2.2): from highlight clips to any budget of k frame timestamps.

A pure function, shared by `peakclips frames`, the RL reward and `peakclips select` (and any
evaluation of a selector); it returns the timestamps and the mode it applied, so no caller
re-derives the rules:
  - `focused` (default for k <= AUTO_FOCUSED_MAX_K = 8): frames only inside the clips, allotted in proportion to
    weight(priority) x clip length (P1 weight 2, P2 weight 1 by default), rounded by largest
    remainder so they sum to exactly k, evenly spaced inside each clip at sub-interval midpoints;
  - `hybrid` (default for k > 8): a background share (default 25 %) spread uniformly over the
    whole video, the rest as in `focused`;
  - `uniform`, and the fallback when there are no clips: k midpoints over the whole video.

Timestamps are sorted, distinct, inside [0, duration), deterministic, and rounded to whole
microseconds. Internally every time is an integer tick of 1 us, which makes "distinct" exact:
  - clips may come from a model (the RL rollouts), so they may overlap, repeat, reach outside
    the video or be empty. Overlapping clips are merged into disjoint segments; where a P1 and
    a P2 clip overlap, the overlap counts as P1 (the higher weight);
  - a clip holds at most one frame per tick; frames a clip cannot hold go to the other clips,
    and only when all clips are full to the uniform background grid;
  - a background grid point that falls on a clip frame moves to the nearest free tick.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from peakclips.errors import UserError

Mode = Literal["auto", "focused", "hybrid", "uniform"]
MODES = ("auto", "focused", "hybrid", "uniform")
AUTO_FOCUSED_MAX_K = 8  # `auto` is focused up to this k, hybrid above
DEFAULT_WEIGHTS = {"P1": 2.0, "P2": 1.0}
TICKS_PER_S = 1_000_000  # timestamps are whole microseconds


def to_tick(t: float) -> int:
    """The first tick whose time (tick / 1e6, as a float) is >= t; exact despite float rounding.

    >>> to_tick(0.1), to_tick(2.0)
    (100000, 2000000)
    """
    tick = math.ceil(t * TICKS_PER_S)
    while (tick - 1) / TICKS_PER_S >= t:
        tick -= 1
    while tick / TICKS_PER_S < t:
        tick += 1
    return tick


def spread(lo: int, hi: int, n: int) -> list[int]:
    """n ticks at the midpoints of n equal slices of [lo, hi); distinct when hi - lo >= n.

    >>> spread(0, 8, 4)
    [1, 3, 5, 7]
    """
    return [lo + (2 * i + 1) * (hi - lo) // (2 * n) for i in range(n)]


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


def segments(clips: Sequence[dict], end: int, weights: dict[str, float]) -> list[tuple[int, int, float]]:
    """Disjoint (lo, hi, weight) tick ranges covered by clips of positive weight.

    Clips are clamped into [0, end); non-finite or empty ones are dropped. Overlapping clips
    merge; inside a merged group each stretch takes the highest weight covering it. Clips that
    only touch stay separate (each gets its own share, as the SPEC allots per clip).

    >>> segments([{"start_s": 0, "end_s": 4, "priority": "P2"}, {"start_s": 1, "end_s": 2, "priority": "P1"}],
    ...          10_000_000, DEFAULT_WEIGHTS)
    [(0, 1000000, 1.0), (1000000, 2000000, 2.0), (2000000, 4000000, 1.0)]
    """
    spans = []
    for c in clips:
        a, b = float(c["start_s"]), float(c["end_s"])
        w = float(weights.get(str(c.get("priority", "P2")), 1.0))
        if not (math.isfinite(a) and math.isfinite(b) and w > 0):
            continue
        lo, hi = max(0, to_tick(a)), min(end, to_tick(b))
        if hi > lo:
            spans.append((lo, hi, w))
    spans.sort()
    out: list[tuple[int, int, float]] = []
    i = 0
    while i < len(spans):  # one overlapping group at a time
        group, group_end = [spans[i]], spans[i][1]
        i += 1
        while i < len(spans) and spans[i][0] < group_end:
            group.append(spans[i])
            group_end = max(group_end, spans[i][1])
            i += 1
        cuts = sorted({t for lo, hi, _ in group for t in (lo, hi)})
        for lo, hi in zip(cuts, cuts[1:]):
            w = max(gw for glo, ghi, gw in group if glo <= lo and hi <= ghi)
            if out and out[-1][1] == lo and out[-1][2] == w and out[-1][0] >= group[0][0]:
                out[-1] = (out[-1][0], hi, w)  # same weight on both sides of a cut: one stretch
            else:
                out.append((lo, hi, w))
    return out


def allot(segs: list[tuple[int, int, float]], n: int) -> list[int]:
    """Frames per segment: largest remainder of weight x length, capped at each segment's ticks.

    Frames beyond a segment's capacity are re-allotted among the others; the sum is
    min(n, total capacity).
    """
    counts = [0] * len(segs)
    free = list(range(len(segs)))
    left = n
    while left > 0 and free:
        share = largest_remainder([segs[i][2] * (segs[i][1] - segs[i][0]) for i in free], left)
        full = [i for i, c in zip(free, share) if counts[i] + c >= segs[i][1] - segs[i][0]]
        if not full:
            for i, c in zip(free, share):
                counts[i] += c
            break
        for i in full:  # fill the segments that overflow, then share the rest again
            left -= (segs[i][1] - segs[i][0]) - counts[i]
            counts[i] = segs[i][1] - segs[i][0]
        free = [i for i in free if i not in full]
    return counts


def nearest_free(tick: int, taken: set[int], end: int) -> int:
    """The free tick in [0, end) closest to `tick` (the earlier one on a tie)."""
    for d in range(end + 1):
        for t in (tick - d, tick + d):
            if 0 <= t < end and t not in taken:
                return t
    raise ValueError("no free tick")  # unreachable: callers check that k fits


@dataclass(frozen=True)
class Keyframes:
    times_s: list[float]
    """k sorted, distinct timestamps in seconds."""
    mode: Literal["focused", "hybrid", "uniform"]
    """The rule applied: `auto` resolved by k; `uniform` whenever no clip lies inside the video."""


def clip2frame(
    clips: Sequence[dict],
    duration_s: float,
    k: int,
    mode: Mode = "auto",
    weights: dict[str, float] | None = None,
    background: float = 0.25,
) -> Keyframes:
    """k sorted, distinct timestamps (seconds) for highlight `clips` ({start_s, end_s, priority}),
    and the mode applied. Arguments out of range raise `UserError` (they come from a command
    line or a config).

    >>> clip2frame([{"start_s": 2.0, "end_s": 4.0, "priority": "P1"}], 10.0, 4, "focused")
    Keyframes(times_s=[2.25, 2.75, 3.25, 3.75], mode='focused')
    >>> clip2frame([], 8.0, 4)
    Keyframes(times_s=[1.0, 3.0, 5.0, 7.0], mode='uniform')
    >>> clip2frame([{"start_s": 0.0, "end_s": 4.0, "priority": "P1"}], 8.0, 4, "hybrid", background=0.5).times_s
    [1.0, 2.0, 3.0, 6.0]
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UserError(f"k must be a positive integer, got {k!r}")
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise UserError(f"duration_s must be positive and finite, got {duration_s!r}")
    if not 0.0 <= background <= 1.0:
        raise UserError(f"background must lie in [0, 1], got {background!r}")
    if mode not in MODES:
        raise UserError(f"mode must be auto, focused, hybrid or uniform, got {mode!r}")
    end = to_tick(duration_s)  # ticks 0 .. end-1 lie inside the video
    if k > end:
        raise UserError(f"{k} distinct timestamps at 1 us resolution do not fit in {duration_s} s")
    if mode == "auto":
        mode = "focused" if k <= AUTO_FOCUSED_MAX_K else "hybrid"
    segs = [] if mode == "uniform" else segments(clips, end, weights or DEFAULT_WEIGHTS)
    n_background = math.floor(k * background + 0.5) if mode == "hybrid" and segs else 0
    counts = allot(segs, k - n_background)
    taken = {t for (lo, hi, _), n in zip(segs, counts) if n for t in spread(lo, hi, n)}
    # Background: the share asked for plus whatever the clips could not hold (all of k when
    # there are no clips), on a uniform grid over the whole video.
    for t in spread(0, end, k - len(taken)):
        taken.add(nearest_free(t, taken, end))
    return Keyframes([t / TICKS_PER_S for t in sorted(taken)], mode if segs else "uniform")
