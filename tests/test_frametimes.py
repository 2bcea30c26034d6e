"""peakclips/frametimes.py: "the frame shown at t" and "the nearest candidate", each tested once."""

import doctest

import pytest

from peakclips import frametimes
from peakclips.frametimes import OnScreen, frames_at, nearest

FRAMES = [(0.0, "a"), (0.5, "b"), (1.0, "c"), (2.0, "d")]  # variable frame rate: d lasts 1 s


@pytest.mark.parametrize("t, shown", [
    (-1.0, "a"),  # before the first frame: the first frame
    (0.0, "a"), (0.49, "a"),
    (0.5, "b"),  # exactly at a frame's time: that frame (the last one with time <= t)
    (0.99, "b"), (1.7, "c"), (2.0, "d"),
    (9.0, "d"),  # after the last frame: the last frame
])
def test_the_frame_shown_at_t_is_the_last_frame_at_or_before_t(t, shown):
    assert frames_at(FRAMES, [t]) == [next((ft, f) for ft, f in FRAMES if f == shown)]


def test_frames_at_reads_only_as_far_as_needed_and_repeats_frames():
    read = []

    def frames():
        for item in FRAMES:
            read.append(item[1])
            yield item

    assert frames_at(frames(), [0.1, 0.2, 0.7]) == [(0.0, "a"), (0.0, "a"), (0.5, "b")]
    assert read == ["a", "b", "c"]  # "c" shows that "b" ends before 0.7 is passed; "d" is never read
    assert frames_at([], [1.0]) == []


def test_on_screen_streams_the_same_answers():
    screen = OnScreen([0.25, 1.0, 3.0])
    answers = [a for t, f in FRAMES for a in screen.push(t, f)] + screen.finish()
    assert answers == [(0, 0.0, "a"), (1, 1.0, "c"), (2, 2.0, "d")] and screen.done


@pytest.mark.parametrize("times, t, index", [
    ([0.0, 1.0, 2.0], -1.0, 0), ([0.0, 1.0, 2.0], 0.4, 0), ([0.0, 1.0, 2.0], 0.6, 1), ([0.0, 1.0, 2.0], 5.0, 2),
    ([0.0, 1.0, 2.0], 0.5, 0),  # a tie: the earlier frame
    ([1.0, 2.0, 2.0, 3.0], 2.4, 1),  # equal times (one frame shown at two targets): the first of them
    ([1.0, 2.0, 2.0, 3.0], 2.5, 1),  # and a tie with the next one: still the earliest
    ([1.0], 7.0, 0),
])
def test_nearest_candidate(times, t, index):
    assert nearest(times, t) == index
    distances = [abs(x - t) for x in times]
    assert index == distances.index(min(distances))  # what numpy's argmin would say


def test_docstring_examples():
    assert doctest.testmod(frametimes).failed == 0
