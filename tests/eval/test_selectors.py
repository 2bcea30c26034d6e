"""The selectors: each gives k sorted, distinct timestamps inside the video; BOLT's inverse-transform
sampling reduces to uniform on a flat curve and crowds a peak; AKS keeps its budget exactly and
trades coverage against relevance as its threshold says; the CLIP selectors run on real open_clip
(random weights, offline); the oracle stays inside the windows; kframes goes through `peakclips
select`'s code path (a random tiny model: the visible fallback)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from peakclips.config import ClipConfig
from peakclips.errors import VideoError
from peakclips.eval import vlm
from peakclips.eval.benchmarks import Item, read_benchmark
from peakclips.eval.selectors import Context, aks, bolt, build, clip_topk
from peakclips.eval.selectors.uniform import Uniform


@pytest.mark.parametrize("module", [aks, bolt, clip_topk, vlm])
def test_docstring_examples(module):
    assert doctest.testmod(module).failed == 0


def valid(times, k, duration):
    return len(times) == k and all(b > a for a, b in zip(times, times[1:])) and 0 <= times[0] and times[-1] < duration


curves = st.lists(st.floats(-1, 1, allow_nan=False), min_size=1, max_size=40)


@settings(max_examples=60, deadline=None)
@given(curves, st.integers(1, 64), st.floats(1.0, 7200.0), st.sampled_from([1.0, 2.5, 3.0]))
def test_bolt_gives_k_distinct_times_inside_the_video(scores, k, duration, power):
    times = (np.arange(len(scores)) + 0.5) * duration / len(scores)
    assert valid(bolt.inverse_transform(times, np.array(scores), duration, k, power), k, duration)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 50), st.integers(1, 64), st.floats(1.0, 7200.0))
def test_bolt_on_a_flat_curve_is_uniform(n, k, duration):
    times = (np.arange(n) + 0.5) * duration / n
    got = bolt.inverse_transform(times, np.full(n, 0.3), duration, k)
    assert got == pytest.approx(Uniform().select(None, duration, k).timestamps_s, abs=1e-6)


def test_bolt_crowds_the_peak_and_keeps_the_rest_in_proportion():
    times = (np.arange(100) + 0.5) * 1.0
    scores = np.full(100, 0.5)
    scores[0], scores[40:45] = 0.0, 1.0
    got = bolt.inverse_transform(times, scores, 100.0, 16, power=3.0)
    inside = sum(40 <= t < 45 for t in got)
    # after min-max and the power: density 1 over the 5 s peak, 0.5 ** 3 over 94 s, 0 over 1 s
    share = 5 / (5 + 94 * 0.125)
    assert abs(inside - 16 * share) <= 1 and inside > 16 * 5 / 100 and valid(got, 16, 100.0)
    assert not any(0 <= t < 1 for t in got)  # the least similar frame gets no mass, as in BOLT


@settings(max_examples=60, deadline=None)
@given(curves, st.integers(1, 40), st.floats(0.0, 1.0), st.integers(0, 6))
def test_aks_keeps_its_budget_exactly(scores, k, threshold, depth):
    k = min(k, len(scores))
    picked = aks.judge_and_split(np.array(scores), k, threshold, depth)
    assert len(picked) == k and picked == sorted(set(picked)) and 0 <= picked[0] and picked[-1] < len(scores)


def test_aks_covers_a_flat_curve_and_takes_a_sharp_peak():
    assert aks.judge_and_split(np.zeros(64), 8) == list(range(0, 64, 8))
    peak = np.zeros(64)
    peak[30:34] = 1.0
    assert aks.judge_and_split(peak, 4) == [30, 31, 32, 33]  # top-4 mean 1 - mean 1/16 >= 0.8
    assert aks.judge_and_split(peak, 4, threshold=1.0) != [30, 31, 32, 33]  # never stands out: coverage


def test_oracle_stays_in_the_windows_and_needs_them():
    oracle = build("oracle", Context(output=None))
    item = Item("a", "v.mp4", "q", ("x", "y"), 0, ((10.0, 12.0), (50.0, 51.0)))
    for k in (1, 3, 8, 32):
        got = oracle.select(item, 60.0, k).timestamps_s
        assert valid(got, k, 60.0) and all(10 <= t < 12 or 50 <= t < 51 for t in got)
    with pytest.raises(VideoError, match="no ground-truth windows"):
        oracle.select(Item("b", "v.mp4", "q", ("x", "y"), 0), 60.0, 4)


@pytest.mark.parametrize("spec, message", [("bolt:-1", "positive number"), ("bolt:x", "positive number"),
                                           ("topk", "unknown selector 'topk'"), ("kframes:/nowhere", "not a folder")])
def test_bad_selector_specs_say_what_is_valid(spec, message):
    from peakclips.eval import EvalError

    with pytest.raises(EvalError, match=message):
        build(spec, Context(output=None))


@pytest.mark.model
def test_clip_selectors_on_real_open_clip(needle_set, tmp_path):
    """ViT-B-32 with random weights (offline): the curve is real cosine similarity, so clip-topk
    takes its k best candidates, and every selector gives valid times; the embeddings are cached."""
    out, _ = needle_set
    item = read_benchmark(out / "benchmark.jsonl", "needle")[0]
    ctx = Context(tmp_path, ClipConfig(model="ViT-B-32", pretrained=None), candidates=16)
    times, sims = ctx.similarity.curve(item)
    assert len(times) == 16 and np.all(np.diff(times) > 0) and np.all(np.abs(sims) <= 1.0001)
    best = set(np.argsort(-sims)[:4].tolist())
    assert build("clip-topk", ctx).select(item, 24.0, 4).timestamps_s == [float(times[i]) for i in sorted(best)]
    for spec in ("bolt", "bolt:2.5", "aks"):
        assert valid(build(spec, ctx).select(item, 24.0, 8).timestamps_s, 8, 24.0)
    assert len(list((tmp_path / "cache" / "clip").glob("*.npz"))) == 1
    with pytest.raises(VideoError, match="fewer than k=17"):
        build("aks", ctx).select(item, 24.0, 17)


@pytest.mark.model
def test_kframes_runs_peakclips_selects_code_path(needle_set, tmp_path):
    from peakclips.train import model

    out, _ = needle_set
    item = read_benchmark(out / "benchmark.jsonl", "needle")[0]
    m, processor = model.load("tiny", True, max_pixels=3136, min_pixels=784)  # untrained: babbles
    model.save_final(m, processor, tmp_path / "random", {"num_frames": 8, "max_pixels": 3136, "min_pixels": 784})
    selector = build(f"kframes:{tmp_path / 'random'}", Context(output=tmp_path))
    got = selector.select(item, 24.0, 4)
    assert got.timestamps_s == Uniform().select(item, 24.0, 4).timestamps_s
    assert got.note.startswith("fallback to uniform: ")
