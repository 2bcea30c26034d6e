"""`peakclips annotator-eval`: metrics on made-up annotations with known answers (shards written
by the real writer), on the sample dataset (reference backend: perfect agreement by
construction), and the command line."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from peakclips.annotator_eval import EvalError, average_ranks, evaluate, spearman
from peakclips.reference import load_references
from peakclips.verify import verify
from tests.conftest import REPO
from tests.shards import video_row, write_dataset

REFS = load_references(REPO / "manifests/reference")


def test_spearman_matches_scipy_with_ties():
    stats = pytest.importorskip("scipy.stats")
    a, b = [1, 2, 2, 5, 3, 3, 4], [1, 1, 3, 5, 2, 4, 4]
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert average_ranks([2, 2, 1]) == [2.5, 2.5, 1.0]
    assert spearman([1, 1, 1], [1, 2, 3]) is None and spearman([1], [1]) is None


def _write(out, rows):
    write_dataset(out, [(dict(r, index=i), None) for i, r in enumerate(rows)])


def test_known_disagreement_gives_known_numbers(tmp_path):
    ref = REFS["tears_of_steel_10s"]
    starts = [s["start_s"] for s in ref["scenes"]]  # the detector found the reference's scenes
    queries = []
    for i, q in enumerate(ref["queries"]):
        gold = [s["score"] for s in q["scores"]]
        pred = list(gold)
        if i == 0:
            pred[0] = gold[0] % 5 + 1  # off by one (or 5 -> 1)
            pred[-1] = (gold[-1] + 2) % 5 + 1  # off by three or two
        fives = [{"start_s": s["start_s"], "end_s": s["end_s"], "priority": "P1", "scene_ids": [j], "reason": "5"}
                 for j, (s, g) in enumerate(zip(ref["scenes"], gold)) if g == 5]
        queries.append({"query": q["query"].upper() + "  ", "llm": pred,
                        "highlights": fives if i else []})  # the first query: no highlight
    queries.append({"query": "a generated query", "llm": [1] * len(starts), "highlights": [], "origin": "generated"})
    _write(tmp_path / "out", [video_row("tears_of_steel_10s", starts, ref["duration_s"], queries),
                              video_row("sintel_10s", [0.0], 10.0, [], error="annotate:llm_timeout")])
    assert verify(str(tmp_path / "out")) == (1, [])  # a real shard, as the pipeline writes them
    r = evaluate(str(tmp_path / "out"))
    n = len(starts) * len(ref["queries"])
    within = n - sum(abs(p - g) > 1 for p, g in zip(queries[0]["llm"], [s["score"] for s in ref["queries"][0]["scores"]]))
    assert r["overall"]["pairs"] == n and r["overall"]["exact"] == pytest.approx((n - 2) / n)
    assert r["overall"]["within_1"] == pytest.approx(within / n)
    assert r["overall"]["highlight_tiou"] == pytest.approx(2 / 3)  # 1, 1 and 0
    assert r["overall"]["highlight_r_at_0_5"] == pytest.approx(2 / 3)
    assert r["queries_unmatched"] == 1 and r["videos_with_errors"] == ["sintel_10s"]
    assert r["videos_compared"] == 1


def test_detected_scenes_are_matched_by_time(tmp_path):
    ref = REFS["sintel_10s"]  # 8 reference scenes; a detector that found only two cuts
    starts = [0.0, 4.0, 7.33]
    q = ref["queries"][0]
    spans = [(s["start_s"], s["end_s"]) for s in ref["scenes"]]
    from peakclips.reference import best_overlap

    gold = [q["scores"][best_overlap(a, b, spans)]["score"] for a, b in zip(starts, starts[1:] + [10.0])]
    assert gold == [q["scores"][0]["score"], q["scores"][5]["score"], q["scores"][6]["score"]]
    _write(tmp_path / "o", [video_row("sintel_10s", starts, 10.0, [{"query": q["query"], "llm": gold, "highlights": []}])])
    assert evaluate(str(tmp_path / "o"))["overall"]["exact"] == 1.0


def test_nothing_to_compare_is_a_clear_error(tmp_path):
    _write(tmp_path / "o", [video_row("sintel_10s", [0.0, 5.0], 10.0,
                                      [{"query": "a generated query", "llm": [1, 2], "highlights": []}])])
    with pytest.raises(EvalError, match="sample_eval.jsonl"):
        evaluate(str(tmp_path / "o"))
    with pytest.raises(EvalError, match="no finished shard"):
        evaluate(str(tmp_path / "empty"))


@pytest.mark.slow
def test_sample_output_agrees_with_itself_and_the_command_prints_a_table(sample_output, tmp_path):
    out, _ = sample_output
    r = evaluate(str(out))
    assert r["videos_compared"] == 6 and r["queries_unmatched"] == 0 and r["overall"]["queries"] == 18
    # The reference backend replays the references with the same time matching.
    assert r["overall"]["exact"] == 1.0 and r["overall"]["spearman_pooled"] == pytest.approx(1.0)
    # Highlights are built on detected scenes: where the detector finds the reference's cuts
    # they coincide with the reference's score-5 scenes; where it misses cuts (sintel, the
    # cut-free intel clip) they do not, and the overlap says so.
    for clip in ("big_buck_bunny_30s", "tears_of_steel_10s"):
        assert r["per_video"][clip]["highlight_tiou"] > 0.95
    assert 0 < r["overall"]["highlight_tiou"] < 1
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "annotator-eval", str(out), "--json",
                           str(tmp_path / "r.json")], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "| **all** | 18 |" in proc.stdout and json.loads((tmp_path / "r.json").read_text())["overall"] == r["overall"]
