"""peakclips/spans.py: every edge case of the span arithmetic, decided and tested once."""

import doctest

import pytest

from peakclips import spans
from peakclips.spans import EPS, coverage, length, midpoints, overlap, split, temporal_iou, union


def test_union_merges_overlapping_and_touching_spans_only():
    assert union([(3.0, 5.0), (0.0, 1.0), (4.0, 6.0)]) == [(0.0, 1.0), (3.0, 6.0)]
    assert union([(0.0, 2.5), (2.5, 4.0)]) == [(0.0, 4.0)]  # a P1 clip ending where a P2 clip starts
    assert union([(0.0, 1.0), (1.0 + EPS / 2, 2.0)]) == [(0.0, 2.0)]  # closer than 1 us: one moment
    assert union([(0.0, 1.0), (1.0 + 10 * EPS, 2.0)]) == [(0.0, 1.0), (1.0 + 10 * EPS, 2.0)]
    assert union([]) == []


def test_length_counts_each_moment_once_and_is_the_plain_sum_for_disjoint_spans():
    assert length([(0.0, 2.0), (1.0, 3.0), (2.5, 2.7)]) == 3.0
    clips = [(0.1, 0.3), (0.3, 0.7), (1.1, 1.9)]  # touching clips: the same float as the plain sum
    assert length(clips) == sum(b - a for a, b in clips)
    assert coverage(clips, 2.0) == sum(b - a for a, b in clips) / 2.0
    assert coverage(clips, 0.0) == 0.0  # a video without duration covers nothing


def test_temporal_iou_of_unions():
    assert temporal_iou([(0, 2), (1, 3)], [(0, 3)]) == 1.0  # overlapping spans merge first
    assert temporal_iou([(0, 4)], [(1, 2), (3, 5)]) == pytest.approx(2 / 5)
    assert temporal_iou([(0, 1)], [(2, 3)]) == 0.0
    assert temporal_iou([], [(0, 1)]) == temporal_iou([(0, 1)], []) == 0.0


def test_temporal_iou_of_two_empty_sets_is_1():
    """Both empty (or zero-length): the same set, so they agree (module docstring: why)."""
    assert temporal_iou([], []) == 1.0
    assert temporal_iou([(2.0, 2.0)], []) == 1.0


def test_overlap():
    assert overlap((0.0, 4.0), (3.0, 6.0)) == 1.0 and overlap((0.0, 1.0), (1.0, 2.0)) == 0.0


@pytest.mark.parametrize("start, end, max_len, parts", [
    (0.0, 10.0, 4.0, 3), (2.0, 3.0, 60.0, 1), (0.0, 60.0, 60.0, 1), (0.0, 0.0, 60.0, 1),
    (0.0, 120.000000001, 60.0, 2),  # within 1 us of 2 x max_len: 2 parts (the scene rules once said 3)
    (0.0, 3 * 20.0 + 3 * 1e-15, 60.0, 1),  # float noise above a multiple adds no part
    (0.0, 120.00001, 60.0, 3),  # 10 us over: a real excess, a third part
])
def test_split_decides_the_number_of_parts_once(start, end, max_len, parts):
    out = split(start, end, max_len)
    assert len(out) == parts and out[0][0] == start and out[-1][1] == end
    assert all(a[1] == b[0] for a, b in zip(out, out[1:]))
    assert all(b - a == pytest.approx((end - start) / parts) for a, b in out)


def test_midpoints():
    assert midpoints(0.0, 1.0, 4) == pytest.approx([0.125, 0.375, 0.625, 0.875])


def test_docstring_examples():
    assert doctest.testmod(spans).failed == 0
