"""Exports of the sample dataset: QVHighlights / Moment-DETR jsonl and Charades-STA text."""

import json
import math
import re

import pytest

from peakclips.cli import main
from peakclips.dataset import iter_samples
from peakclips.export import windows
from peakclips.export.qvhighlights import clip_ids, saliency

pytestmark = pytest.mark.slow  # they read the session's sample run


@pytest.fixture(scope="module")
def qvh(sample_output, tmp_path_factory):
    out, _ = sample_output
    dest = tmp_path_factory.mktemp("export") / "qvh.jsonl"
    assert main(["export", "qvhighlights", str(out), str(dest)]) == 0
    return [json.loads(line) for line in dest.read_text().splitlines()]


def test_qvhighlights_has_the_moment_detr_field_types(qvh, sample_output):
    out, _ = sample_output
    kept = sum(len(s["queries"]) for _, s, _ in iter_samples(str(out)))
    assert len(qvh) == kept == 12
    for rec in qvh:
        assert set(rec) == {"qid", "query", "vid", "duration", "relevant_windows", "relevant_clip_ids", "saliency_scores"}
        assert isinstance(rec["qid"], int) and isinstance(rec["query"], str) and rec["query"]
        assert isinstance(rec["vid"], str) and re.fullmatch(r"[A-Za-z0-9_-]+", rec["vid"])
        assert isinstance(rec["duration"], (int, float)) and rec["duration"] > 0
        assert rec["relevant_windows"] and all(
            isinstance(w, list) and len(w) == 2 and all(isinstance(x, (int, float)) for x in w)
            and 0 <= w[0] < w[1] <= rec["duration"] + 1e-3 for w in rec["relevant_windows"])
        assert all(isinstance(i, int) for i in rec["relevant_clip_ids"])
        assert len(rec["saliency_scores"]) == len(rec["relevant_clip_ids"])
        assert all(len(s) == 3 and all(isinstance(x, int) and 0 <= x <= 4 for x in s) for s in rec["saliency_scores"])
    assert [r["qid"] for r in qvh] == list(range(len(qvh)))


def test_relevant_clip_ids_agree_with_relevant_windows(qvh):
    for rec in qvh:
        ids, wins = rec["relevant_clip_ids"], rec["relevant_windows"]
        assert ids == sorted(set(ids)) and max(ids) < math.ceil(rec["duration"] / 2)
        for i in ids:  # every clip on the 2-s grid lies on a window...
            assert any(min(e, 2 * i + 2) > max(s, 2 * i) for s, e in wins), (rec["qid"], i)
        for s, e in wins:  # ...and every part of every window lies in a listed clip
            assert all(i in ids for i in range(int(s // 2), math.ceil(e / 2)) if 2 * i < e), (rec["qid"], s, e)


def test_saliency_follows_the_scene_scores():
    scenes = [{"start_s": 0.0, "end_s": 3.0}, {"start_s": 3.0, "end_s": 4.0}]
    scores = [{"llm": 5, "clip": 0.2, "final": 4.9}, {"llm": 1, "clip": 0.05, "final": 1.0}]
    clip_model = {"used": True, "alpha": 0.05, "beta": 0.2}
    assert saliency(0, 4.0, scenes, scores, clip_model) == [4, 4, 4]  # clip [0, 2): all scene 0
    assert saliency(1, 4.0, scenes, scores, clip_model) == [2, 2, 2]  # [2, 4): half 5, half 1 -> 3 -> 2
    assert saliency(0, 4.0, scenes, scores, {"used": False, "alpha": 0, "beta": 1}) == [4, 4, 4]
    assert clip_ids(windows([{"start_s": 1.9, "end_s": 2.1}]), 4.0) == [0, 1]


def test_charades_lines_parse_and_match_the_windows(sample_output, qvh, tmp_path):
    out, _ = sample_output
    dest = tmp_path / "charades.txt"
    assert main(["export", "charades", str(out), str(dest)]) == 0
    lines = dest.read_text().splitlines()
    assert len(lines) == sum(len(r["relevant_windows"]) for r in qvh)
    parsed = []
    for line in lines:
        head, query = line.split("##")
        vid, start, end = head.split(" ")
        parsed.append((vid, round(float(start), 2), round(float(end), 2), query))
    expected = [(r["vid"], round(s, 2), round(e, 2), r["query"]) for r in qvh for s, e in r["relevant_windows"]]
    assert [(v, pytest.approx(s, abs=0.006), pytest.approx(e, abs=0.006), q) for v, s, e, q in expected] == parsed
