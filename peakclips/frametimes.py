"""Frames by time: the two rules for "which frame goes with time t", each written once.

  - **The frame shown at t** (`OnScreen`, `frames_at`): the last frame whose time is <= t, the
    frame a player has on screen at t. A time before the first frame gets the first frame, a
    time after the last frame the last one. The pipeline's T candidates are taken this way
    (stages/frames.py), and so are the frames `peakclips frames --video` and `peakclips select`
    read from a source video, so a model sees at inference the frames it was trained on.
  - **The nearest candidate** (`nearest`): among already chosen frames (the T candidates of a
    shard, the kept frames of a shot), the one closest in time to t; on a tie, and among frames
    with equal times, the earliest.

Times are seconds from the stream start (pts-based, peakclips/video.py).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Generic, TypeVar

Frame = TypeVar("Frame")


class OnScreen(Generic[Frame]):
    """The frame shown at each of some sorted target times, fed one frame at a time in
    presentation order (memory: one held frame).

    `push(t, frame)` returns the (target index, frame time, frame) answers that the previous
    frame settles: every target before t showed it. `finish()` answers the targets left with
    the last frame.

    >>> screen = OnScreen([0.0, 0.5, 1.0, 2.5])
    >>> screen.push(0.2, "a"), screen.push(1.0, "b"), screen.push(2.0, "c")
    ([], [(0, 0.2, 'a'), (1, 0.2, 'a')], [(2, 1.0, 'b')])
    >>> screen.finish()
    [(3, 2.0, 'c')]
    """

    def __init__(self, targets: Sequence[float]):
        self.targets = targets
        self.answered = 0
        self._held: tuple[float, Frame] | None = None

    @property
    def done(self) -> bool:
        return self.answered == len(self.targets)

    def push(self, t: float, frame: Frame) -> list[tuple[int, float, Frame]]:
        out = self._serve(t) if self._held is not None else []
        self._held = (t, frame)
        return out

    def finish(self) -> list[tuple[int, float, Frame]]:
        return self._serve(None) if self._held is not None else []

    def _serve(self, next_t: float | None) -> list[tuple[int, float, Frame]]:
        held_t, frame = self._held
        out = []
        while not self.done and (next_t is None or self.targets[self.answered] < next_t):
            out.append((self.answered, held_t, frame))
            self.answered += 1
        return out


def frames_at(frames: Iterable[tuple[float, Frame]], targets: Sequence[float],
              convert: Callable[[Frame], Any] | None = None) -> list[tuple[float, Any]]:
    """(frame time, frame) shown at each sorted target, reading `frames` ((time, frame) in
    presentation order) only as far as the last target needs; [] when `frames` is empty.
    `convert` (e.g. to an RGB array) runs once per frame shown, as soon as it is known to be
    shown, so only one unconverted frame is held at a time.

    >>> frames_at([(0.0, "a"), (1.0, "b"), (2.0, "c")], [0.5, 1.0, 9.0])
    [(0.0, 'a'), (1.0, 'b'), (2.0, 'c')]
    >>> frames_at([(0.0, "a"), (1.0, "b")], [0.1, 0.2], convert=str.upper)
    [(0.0, 'A'), (0.0, 'A')]
    """
    screen: OnScreen[Frame] = OnScreen(targets)
    out: list[tuple[float, Any]] = []
    last: list = [None, None]  # the last frame shown, and its conversion

    def take(shown: list[tuple[int, float, Frame]]) -> None:
        for _, t, frame in shown:
            if frame is not last[0]:
                last[:] = [frame, convert(frame) if convert else frame]
            out.append((t, last[1]))

    for t, frame in frames:
        take(screen.push(t, frame))
        if screen.done:
            break
    take(screen.finish())
    return out


def nearest(times: Sequence[float], t: float) -> int:
    """Index of the time closest to t in a sorted, non-empty sequence (ties: the earliest).

    >>> [nearest([0.0, 1.0, 2.0], t) for t in (-1, 0.4, 0.5, 0.6, 1.9, 5)]
    [0, 0, 0, 1, 2, 2]
    >>> nearest([1.0, 2.0, 2.0, 3.0], 2.4)
    1
    """
    i = bisect.bisect_left(times, t)
    if i == len(times) or (i > 0 and t - times[i - 1] <= times[i] - t):
        i -= 1
        return bisect.bisect_left(times, times[i])  # the first of frames with this same time
    return i
