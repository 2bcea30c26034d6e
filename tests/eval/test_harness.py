"""`peakclips eval` measures what it claims: with a VLM that really sees (tests/vlm_server.py),
oracle frames are always answered right, uniform frames at a small budget often miss the needle,
and uniform accuracy rises with the budget; every reported rate is recomputed here from
results.json alone; a re-run sends no request and selects nothing twice."""

from __future__ import annotations

import json

import pytest

from peakclips.config import AnnotatorConfig
from peakclips.eval.harness import EvalSettings, Store, evaluate
from tests.vlm_server import SeeingServer

KS = [2, 6, 18]  # nested grids: each uniform midpoint at k is one at 3k, so hits can only grow


def settings(needle_set, tmp_path, srv, **kw) -> EvalSettings:
    out, _ = needle_set
    vlm = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="seeing-vlm", cache=str(tmp_path / "vlm.sqlite"),
                          max_retries=0)
    return EvalSettings(**{"benchmark": str(out / "benchmark.jsonl"), "format": "needle",
                           "selectors": ["uniform", "oracle"], "ks": KS, "output": str(tmp_path / "eval"),
                           "vlm": vlm, **kw})


@pytest.fixture(scope="module")
def seen(needle_set, tmp_path_factory):
    """One run of uniform and oracle at k = 2, 6, 18 with the seeing VLM."""
    tmp = tmp_path_factory.mktemp("harness")
    with SeeingServer() as srv:
        results = evaluate(settings(needle_set, tmp, srv), log=lambda *_: None)
        yield results, tmp, srv.count(path="/chat/completions")


def test_oracle_is_always_right_and_uniform_rises_with_k(seen):
    results, _, _ = seen
    acc = {(r["selector"], r["k"]): r["accuracy"] for r in results["runs"]}
    hit = {(r["selector"], r["k"]): r["hit_rate"] for r in results["runs"]}
    assert all(acc["oracle", k] == 1.0 and hit["oracle", k] == 1.0 for k in KS), acc
    assert hit["uniform", 2] <= 0.5 and acc["uniform", 2] <= 0.5, (hit, acc)  # clearly less than the oracle
    assert acc["uniform", 2] < acc["uniform", 6] < acc["uniform", 18] == 1.0, acc
    # The server answers right on every hit, and on a miss only by its seeded guess.
    for run in results["runs"]:
        assert run["answered"] == run["selected"] == 12 and run["errors"] == 0
        for e in run["items"]:
            assert e["correct"] or not e["hit"], (run["selector"], run["k"], e)


def test_every_rate_recomputes_from_results_json(seen):
    results, tmp, _ = seen
    data = json.loads((tmp / "eval" / "results.json").read_text())
    windows = {i["id"]: i["windows_s"] for i in data["items"]}
    assert len(data["runs"]) == 2 * len(KS)
    for run in data["runs"]:
        hits, shares = [], []
        for e in run["items"]:
            inside = [any(a <= t < b for a, b in windows[e["id"]]) for t in e["timestamps_s"]]
            assert len(e["timestamps_s"]) == run["k"] and e["timestamps_s"] == sorted(set(e["timestamps_s"]))
            hits.append(any(inside))
            shares.append(sum(inside) / len(inside))
        assert run["hit_rate"] == sum(hits) / len(hits)
        assert run["frames_in_window"] == pytest.approx(sum(shares) / len(shares))
        assert run["accuracy"] == sum(e["correct"] for e in run["items"]) / len(run["items"])
    md = (tmp / "eval" / "results.md").read_text()
    assert md.index("| uniform |") < md.index("| oracle |") and "k = 18" in md
    assert (tmp / "eval" / "results.png").read_bytes()[:4] == b"\x89PNG"


def test_a_rerun_does_only_what_is_missing(seen, needle_set):
    results, tmp, requests = seen
    lines = (tmp / "eval" / "selections.jsonl").read_text().count("\n")
    assert requests == 2 * len(KS) * 12  # one request per (selector, k, item); none twice
    with SeeingServer() as srv:
        again = evaluate(settings(needle_set, tmp, srv), log=lambda *_: None)
        assert srv.count(path="/chat/completions") == 0  # answers come from answers.jsonl
        assert (tmp / "eval" / "selections.jsonl").read_text().count("\n") == lines
        assert [r["accuracy"] for r in again["runs"]] == [r["accuracy"] for r in results["runs"]]
        # a new budget costs only its own selections and answers
        more = evaluate(settings(needle_set, tmp, srv, ks=KS + [4]), log=lambda *_: None)
        assert srv.count(path="/chat/completions") == 2 * 12
        assert (tmp / "eval" / "selections.jsonl").read_text().count("\n") == lines + 2 * 12
        assert {r["k"] for r in more["runs"]} == {2, 4, 6, 18}


def test_other_settings_in_the_same_folder_are_refused(seen, needle_set, tmp_path):
    from peakclips.eval import EvalError

    _, tmp, _ = seen
    out, _ = needle_set
    fewer = tmp_path / "fewer.jsonl"  # another benchmark: one question less
    fewer.write_text("".join((out / "benchmark.jsonl").read_text().splitlines(keepends=True)[:-1]))
    with SeeingServer() as srv, pytest.raises(EvalError, match="other settings .benchmark_sha256"):
        evaluate(settings(needle_set, tmp, srv, benchmark=str(fewer), videos=str(out)), log=lambda *_: None)


def test_settings_are_kept_per_selector(tmp_path):
    from peakclips.eval import EvalError
    from peakclips.eval.harness import check_settings, record_settings

    bench = {"benchmark_sha256": "abc", "format": "needle"}
    record_settings(tmp_path, check_settings(tmp_path, bench, {"uniform": {}, "bolt": {"clip": "ViT-B-32/None",
                                                                                          "candidates": 256}}, False))
    with pytest.raises(EvalError, match=r"bolt candidates: 256 then, 64 now"):
        check_settings(tmp_path, bench, {"bolt": {"clip": "ViT-B-32/None", "candidates": 64}}, False)
    # a selector not run before brings its own settings; the others' stay recorded
    recorded = check_settings(tmp_path, bench, {"aks": {"clip": "ViT-B-32/None", "candidates": 64}}, False)
    assert set(recorded["selectors"]) == {"uniform", "bolt", "aks"}
    record_settings(tmp_path, recorded)
    (tmp_path / "selections.jsonl").write_text("{}\n")
    recorded = check_settings(tmp_path, bench, {"bolt": {"clip": "ViT-B-32/None", "candidates": 64}}, True)
    assert set(recorded["selectors"]) == {"bolt"} and not (tmp_path / "selections.jsonl").exists()


def test_a_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"selector": "uniform", "k": 2, "id": "a", "timestamps_s": [1.0, 2.0]}\n{"selector": "unif')
    store = Store(path, lambda r: (r["selector"], r["k"], r["id"]))
    assert list(store.rows) == [("uniform", 2, "a")]
