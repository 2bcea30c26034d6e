"""Checks the hand-written reference annotations in manifests/reference/*.yaml.

They are replayed by the `reference` annotator backend and are the gold set a real annotator is
measured against, so their structure must hold exactly: the keys, contiguous scenes covering the
real (probed) duration, chapters on scene boundaries, one 1-5 score per scene for every query, and
queries that discriminate (at least one scene scored 5 and at least one scored 2 or less).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
REF_DIR = ROOT / "manifests" / "reference"
VIDEO_DIR = ROOT / "manifests" / "videos"

# video_id -> bundled file
VIDEO_FILES = {
    "tears_of_steel_10s": "tears_of_steel_10s_640x360.mp4",
    "sintel_10s": "sintel_10s_640x360.mp4",
    "caminandes1_10s": "caminandes1_10s_640x360.mp4",
    "big_buck_bunny_30s": "big_buck_bunny_0-30s_1280x720.webm",
    "intel_car_detection_30s": "intel_car_detection_30s_768x432.mp4",
    "blender_mix_60s": "blender_mix_60s_640x360.mp4",
}

# The 60 s mix is the four Blender clips joined end to end: (source video_id, offset in the mix).
MIX_ID = "blender_mix_60s"
MIX_PARTS = [
    ("tears_of_steel_10s", 0.0),
    ("caminandes1_10s", 10.0),
    ("sintel_10s", 20.0),
    ("big_buck_bunny_30s", 30.0),
]

TOP_KEYS = {"video_id", "duration_s", "summary", "scenes", "chapters", "queries"}
SPAN_KEYS = {"start_s", "end_s", "caption"}
QUERY_KEYS = {"query", "scores"}
SCORE_KEYS = {"score", "reason"}
DURATION_TOLERANCE_S = 0.1
EPS = 1e-6

REF_FILES = sorted(REF_DIR.glob("*.yaml"))


def _load(path: Path) -> dict:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: the top level must be a mapping, got {type(data).__name__}"
    return data


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_time(where: str, x) -> float:
    assert _is_number(x), f"{where}: time must be a number of seconds, got {x!r}"
    assert abs(round(x, 2) - x) < EPS, f"{where}: time {x!r} has more than 2 decimals"
    assert x >= 0, f"{where}: time {x!r} is negative"
    return float(x)


def _check_text(where: str, x) -> None:
    assert isinstance(x, str) and x.strip(), f"{where}: must be a non-empty string, got {x!r}"


def _check_keys(where: str, obj, expected: set[str]) -> None:
    assert isinstance(obj, dict), f"{where}: must be a mapping, got {type(obj).__name__}"
    missing, extra = expected - obj.keys(), obj.keys() - expected
    assert not missing and not extra, (
        f"{where}: keys must be exactly {sorted(expected)}; missing {sorted(missing)}, unexpected {sorted(extra)}"
    )


def _check_spans(name: str, what: str, spans, duration: float) -> list[float]:
    """Spans must be contiguous, ordered, non-empty and cover [0, duration]; returns the boundaries."""
    assert isinstance(spans, list) and spans, f"{name}: `{what}` must be a non-empty list"
    bounds = []
    for i, sp in enumerate(spans):
        where = f"{name}: {what}[{i}]"
        _check_keys(where, sp, SPAN_KEYS)
        start = _check_time(f"{where}.start_s", sp["start_s"])
        end = _check_time(f"{where}.end_s", sp["end_s"])
        _check_text(f"{where}.caption", sp["caption"])
        assert end > start + EPS, f"{where}: end_s {end} is not after start_s {start}"
        if i == 0:
            assert abs(start) < EPS, f"{where}: the first {what[:-1]} must start at 0.0, not {start}"
            bounds.append(start)
        else:
            prev_end = bounds[-1]
            assert abs(start - prev_end) < EPS, (
                f"{where}: starts at {start} but the previous one ends at {prev_end} "
                f"({'gap' if start > prev_end else 'overlap'}); {what} must be contiguous"
            )
        bounds.append(end)
    assert abs(bounds[-1] - duration) < EPS, (
        f"{name}: the last of `{what}` ends at {bounds[-1]} but duration_s is {duration}; they must cover the clip"
    )
    return bounds


def _check_reference(path: Path) -> dict:
    name = path.name
    data = _load(path)
    _check_keys(name, data, TOP_KEYS)
    vid = data["video_id"]
    _check_text(f"{name}: video_id", vid)
    assert path.stem == vid, f"{name}: the file must be named after its video_id ('{vid}.yaml')"
    duration = _check_time(f"{name}: duration_s", data["duration_s"])
    assert duration > 0, f"{name}: duration_s must be positive"
    _check_text(f"{name}: summary", data["summary"])

    scene_bounds = _check_spans(name, "scenes", data["scenes"], duration)
    chapter_bounds = _check_spans(name, "chapters", data["chapters"], duration)
    for b in chapter_bounds:
        assert any(abs(b - s) < EPS for s in scene_bounds), (
            f"{name}: chapter boundary {b} is not a scene boundary (scene boundaries: {scene_bounds})"
        )

    n_scenes = len(data["scenes"])
    queries = data["queries"]
    assert isinstance(queries, list) and 2 <= len(queries) <= 3, (
        f"{name}: needs 2 or 3 queries, has {len(queries) if isinstance(queries, list) else queries!r}"
    )
    texts = set()
    for qi, q in enumerate(queries):
        where = f"{name}: queries[{qi}]"
        _check_keys(where, q, QUERY_KEYS)
        _check_text(f"{where}.query", q["query"])
        assert q["query"] not in texts, f"{where}: duplicate query '{q['query']}'"
        texts.add(q["query"])
        scores = q["scores"]
        assert isinstance(scores, list) and len(scores) == n_scenes, (
            f"{where} ('{q['query']}'): needs exactly one score per scene ({n_scenes}), "
            f"has {len(scores) if isinstance(scores, list) else scores!r}"
        )
        values = []
        for si, s in enumerate(scores):
            swhere = f"{where}.scores[{si}]"
            _check_keys(swhere, s, SCORE_KEYS)
            v = s["score"]
            assert isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 5, (
                f"{swhere}: score must be an integer 1..5, got {v!r}"
            )
            _check_text(f"{swhere}.reason", s["reason"])
            values.append(v)
        assert 5 in values, f"{where} ('{q['query']}'): no scene is scored 5; every query needs a clear answer"
        assert min(values) <= 2, (
            f"{where} ('{q['query']}'): no scene is scored 2 or less; the query is not discriminative"
        )
    return data


def test_all_sample_clips_have_a_reference():
    found = {p.stem for p in REF_FILES}
    missing = sorted(set(VIDEO_FILES) - found)
    assert not missing, f"manifests/reference/ has no YAML for: {missing}"
    unknown = sorted(found - set(VIDEO_FILES))
    assert not unknown, f"manifests/reference/ has YAML for unknown videos: {unknown} (add them to VIDEO_FILES)"


@pytest.mark.parametrize("path", REF_FILES, ids=[p.stem for p in REF_FILES])
def test_reference_structure(path: Path):
    _check_reference(path)


@pytest.mark.parametrize("path", REF_FILES, ids=[p.stem for p in REF_FILES])
def test_reference_duration_matches_video(path: Path):
    av = pytest.importorskip("av")
    data = _load(path)
    video = VIDEO_DIR / VIDEO_FILES[data["video_id"]]
    assert video.is_file(), f"{path.name}: video file {video} is missing"
    with av.open(str(video)) as container:
        if container.duration is not None:
            probed = container.duration / 1_000_000
        else:
            stream = container.streams.video[0]
            probed = float(stream.duration * stream.time_base)
    assert abs(data["duration_s"] - probed) <= DURATION_TOLERANCE_S, (
        f"{path.name}: duration_s {data['duration_s']} differs from the probed duration {probed:.3f} s "
        f"of {video.name} by more than {DURATION_TOLERANCE_S} s"
    )


def test_mix_matches_single_clip_references():
    """The 60 s mix must reuse the single clips' scenes: same boundaries (shifted) and same captions."""
    paths = {p.stem: p for p in REF_FILES}
    if MIX_ID not in paths:
        pytest.skip("no blender_mix_60s reference")
    mix = _load(paths[MIX_ID])
    expected = []
    for vid, offset in MIX_PARTS:
        assert vid in paths, f"{MIX_ID}: the source reference {vid}.yaml is missing"
        part = _load(paths[vid])
        part_end = offset + round(part["duration_s"], 0)  # each part fills a whole-second slot in the mix
        for sc in part["scenes"]:
            expected.append((round(sc["start_s"] + offset, 2), round(min(sc["end_s"] + offset, part_end), 2),
                             sc["caption"], vid))
    got = [(round(s["start_s"], 2), round(s["end_s"], 2), s["caption"]) for s in mix["scenes"]]
    assert len(got) == len(expected), (
        f"{MIX_ID}: has {len(got)} scenes, the four source references shifted give {len(expected)}"
    )
    for i, ((gs, ge, gc), (es, ee, ec, vid)) in enumerate(zip(got, expected)):
        assert (gs, ge) == (es, ee), f"{MIX_ID}: scenes[{i}] is {gs}-{ge}, expected {es}-{ee} (from {vid})"
        assert gc == ec, f"{MIX_ID}: scenes[{i}] caption differs from the same shot in {vid}.yaml"
    for join in (10.0, 20.0, 30.0):
        assert any(abs(s["start_s"] - join) < EPS for s in mix["scenes"]), (
            f"{MIX_ID}: no scene starts at the join {join} s"
        )
