"""clip2frame (SPEC section 2.2): the properties under hypothesis, plus the worked examples."""

import doctest
import math

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from peakclips import clip2frame as c2f
from peakclips.clip2frame import DEFAULT_WEIGHTS, TICKS_PER_S, clip2frame, segments, to_tick
from peakclips.errors import UserError


def times_of(*args, **kwargs) -> list[float]:
    return clip2frame(*args, **kwargs).times_s


durations = st.floats(min_value=1e-3, max_value=4 * 3600.0, allow_nan=False)


@st.composite
def cases(draw, max_k=300):
    """(clips, duration, k): clips anywhere, also overlapping, outside the video, tiny or empty."""
    duration = draw(durations)
    bounds = st.floats(min_value=-0.2 * duration, max_value=1.2 * duration, allow_nan=False)
    clips = []
    for _ in range(draw(st.integers(0, 6))):
        a = draw(bounds)
        length = draw(st.one_of(st.floats(0, duration / 2), st.sampled_from([0.0, 1e-6, 2e-6, 3.5e-6])))
        clips.append({"start_s": a, "end_s": a + length, "priority": draw(st.sampled_from(["P1", "P2"]))})
    k = draw(st.integers(1, min(max_k, to_tick(duration))))
    return clips, duration, k


def inside(t: float, clips: list[dict], duration: float) -> bool:
    return any(max(0.0, c["start_s"]) <= t < min(duration, c["end_s"]) for c in clips)


def capacity(clips: list[dict], duration: float) -> int:
    """Distinct microsecond ticks inside the (merged) clips."""
    return sum(hi - lo for lo, hi, _ in segments(clips, to_tick(duration), DEFAULT_WEIGHTS))


MODES = ["auto", "focused", "hybrid", "uniform"]


@settings(max_examples=400, deadline=None)
@given(cases(), st.sampled_from(MODES), st.floats(0, 1))
@example(([{"start_s": 1.0, "end_s": 1.000002, "priority": "P1"}], 10.0, 8), "focused", 0.25)  # 2 ticks, 8 frames
@example(([{"start_s": 0.0, "end_s": 10.0, "priority": "P1"}], 10.0, 16), "hybrid", 0.5)  # grids coincide
@example(([], 3e-6, 3), "uniform", 0.25)  # every tick of the video used
def test_exactly_k_distinct_sorted_timestamps_inside_the_video(case, mode, background):
    clips, duration, k = case
    times = times_of(clips, duration, k, mode, background=background)
    assert len(times) == k
    assert times == sorted(times) and len(set(times)) == k
    assert all(0.0 <= t < duration for t in times)
    assert all(t == round(t, 6) for t in times)
    assert times_of(clips, duration, k, mode, background=background) == times  # deterministic


@settings(max_examples=300, deadline=None)
@given(cases())
def test_focused_frames_lie_inside_the_clips(case):
    clips, duration, k = case
    times = times_of(clips, duration, k, "focused")
    n_inside = sum(inside(t, clips, duration) for t in times)
    if capacity(clips, duration) == 0:  # no usable clip: uniform
        assert times == times_of([], duration, k, "uniform")
    else:  # every frame inside, unless the clips hold fewer distinct ticks than k
        assert n_inside == min(k, capacity(clips, duration))


@settings(max_examples=300, deadline=None)
@given(cases(), st.floats(0, 1))
def test_hybrid_keeps_the_focused_frames_and_adds_the_background_share(case, background):
    clips, duration, k = case
    times = times_of(clips, duration, k, "hybrid", background=background)
    n_background = math.floor(k * background + 0.5)
    if capacity(clips, duration) == 0:
        assert times == times_of([], duration, k, "uniform")
        return
    if capacity(clips, duration) >= k - n_background:  # else the clips' overflow joins the background
        focused = times_of(clips, duration, k - n_background, "focused") if k > n_background else []
        assert set(focused) <= set(times)
        assert sum(inside(t, clips, duration) for t in times) >= k - n_background


@settings(max_examples=200, deadline=None)
@given(durations, st.data())
def test_uniform_when_there_are_no_clips(duration, data):
    k = data.draw(st.integers(1, min(500, to_tick(duration))))
    mode = data.draw(st.sampled_from(MODES))
    times = times_of([], duration, k, mode)
    step = duration / k
    assert times == times_of([], duration, k, "uniform")
    if step >= 1e-4:  # away from the microsecond grid the points are the slice midpoints
        assert times == pytest.approx([(i + 0.5) * step for i in range(k)], abs=1.5e-6)


@settings(max_examples=200, deadline=None)
@given(cases(max_k=8))
def test_auto_is_focused_up_to_8_then_hybrid(case):
    clips, duration, k = case
    assert times_of(clips, duration, k) == times_of(clips, duration, k, "focused")
    assert times_of(clips, duration, k + 8 if k + 8 <= to_tick(duration) else k, "auto") == \
        times_of(clips, duration, k + 8 if k + 8 <= to_tick(duration) else k,
                   "hybrid" if k + 8 <= to_tick(duration) else "focused")


def test_frames_are_allotted_by_priority_weight_times_length():
    clips = [{"start_s": 0.0, "end_s": 2.0, "priority": "P2"}, {"start_s": 5.0, "end_s": 7.0, "priority": "P1"}]
    times = times_of(clips, 10.0, 6, "focused")
    assert sum(t < 2 for t in times) == 2 and sum(5 <= t < 7 for t in times) == 4
    assert times_of(clips, 10.0, 6, "focused", weights={"P1": 1.0, "P2": 1.0}) == [0.333333, 1.0, 1.666666, 5.333333, 6.0, 6.666666]


def test_overlapping_clips_are_merged_and_the_overlap_counts_at_the_higher_priority():
    clips = [{"start_s": 0.0, "end_s": 4.0, "priority": "P2"}, {"start_s": 1.0, "end_s": 2.0, "priority": "P1"},
             {"start_s": 1.0, "end_s": 2.0, "priority": "P1"}]
    assert segments(clips, 10 * TICKS_PER_S, DEFAULT_WEIGHTS) == [
        (0, 1_000_000, 1.0), (1_000_000, 2_000_000, 2.0), (2_000_000, 4_000_000, 1.0)]
    assert len(set(times_of(clips, 10.0, 8, "focused"))) == 8


@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k must be"), ({"k": 2.0}, "k must be"), ({"duration_s": 0.0}, "duration_s"),
    ({"duration_s": math.inf}, "duration_s"), ({"background": 1.5}, "background"),
    ({"mode": "random"}, "mode"), ({"k": 11, "duration_s": 1e-5}, "do not fit"),
])
def test_bad_arguments_are_refused_with_a_reason(kwargs, message):
    args = {"clips": [], "duration_s": 10.0, "k": 4} | kwargs
    with pytest.raises(UserError, match=message):
        clip2frame(**args)


def test_docstring_examples():
    assert doctest.testmod(c2f).failed == 0


@pytest.mark.parametrize("clips, k, mode, applied", [
    ([{"start_s": 1.0, "end_s": 3.0, "priority": "P1"}], 8, "auto", "focused"),
    ([{"start_s": 1.0, "end_s": 3.0, "priority": "P1"}], 9, "auto", "hybrid"),
    ([{"start_s": 1.0, "end_s": 3.0, "priority": "P1"}], 4, "hybrid", "hybrid"),
    ([], 4, "focused", "uniform"),
    ([{"start_s": 20.0, "end_s": 30.0, "priority": "P1"}], 4, "auto", "uniform"),  # no clip inside the video
])
def test_the_mode_applied_is_returned(clips, k, mode, applied):
    assert clip2frame(clips, 10.0, k, mode).mode == applied
