"""Any exception while working on one row is that row's error, in every stage (SPEC section 7):
`<stage>:internal` with the exception's type in `error_detail`, redacted; the run goes on. And
every numeric config key is bounded at load time, so values that would divide by zero or ask
for terabytes never reach a stage."""

import asyncio
import json
import typing

import annotated_types
import pytest

import peakclips.train.config  # noqa: F401 - registers the trainer's config models
from peakclips.config import (
    AnnotatorConfig,
    ConfigError,
    FramesConfig,
    IngestConfig,
    ScenesConfig,
    Strict,
    load_config,
)
from peakclips.schema import RunInfo
from peakclips.stages.annotate import Annotate
from peakclips.stages.ingest import Ingest
from peakclips.stages.scenes import Scenes
from peakclips.stages.shard import StageSample
from tests.conftest import REPO

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"
RUN = RunInfo(config_hash="c0ffee", annotator={"backend": "reference", "model": None, "prompts": []},
              clip_model=None)


def _all_models(root: type) -> set[type]:
    out = set()
    for sub in root.__subclasses__():
        out |= {sub} | _all_models(sub)
    return out


def _numeric_slots(annotation, metadata) -> list[tuple[object, list]]:
    """(numeric type, its constraint metadata) for a field, looking through Optional, Annotated,
    lists and dict values."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _numeric_slots(args[0], list(metadata) + list(args[1:]))
    if annotation in (int, float):
        return [(annotation, metadata)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return [s for a in args if a is not type(None) for s in _numeric_slots(a, metadata)]
    if origin in (list, tuple, set):
        return [s for a in args for s in _numeric_slots(a, [])]
    if origin is dict:
        return _numeric_slots(args[1], [])
    return []


def _bounds(metadata) -> tuple[bool, bool]:
    items = [m for x in metadata for m in (x.metadata if hasattr(x, "metadata") else [x])]
    low = any(isinstance(m, (annotated_types.Ge, annotated_types.Gt)) for m in items)
    high = any(isinstance(m, (annotated_types.Le, annotated_types.Lt)) for m in items)
    return low, high


def test_every_numeric_key_of_every_config_model_has_bounds():
    models = _all_models(Strict)
    assert {m.__name__ for m in models} >= {"RunConfig", "FramesConfig", "TrainConfig", "RLConfig", "Price"}
    unbounded, checked = [], 0
    for model in models:
        for name, field in model.model_fields.items():
            for _, metadata in _numeric_slots(field.annotation, field.metadata):
                checked += 1
                if _bounds(metadata) != (True, True):
                    unbounded.append(f"{model.__name__}.{name}")
    assert checked > 60
    assert not unbounded, f"numeric config keys without a lower and an upper bound: {sorted(unbounded)}"


@pytest.mark.parametrize("override", ["frames.num_candidates=0", "frames.per_scene=0", "ray.num_cpus=0",
                                      "ingest.download_timeout_s=0", "ingest.max_download_bytes=-1",
                                      "clip.num_actors=0", "frames.candidate_crf=99",
                                      "annotator.max_concurrency=100000000"])
def test_out_of_bounds_values_fail_at_load_naming_the_key(override):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert override.split("=")[0] in str(e.value)


def _ingest_row(uri, **kw):
    return {"uri": uri, "shard_id": 0, "key": "k", "video_id": "v", "error": None,
            "manifest": json.dumps({"video_id": "v", "uri": uri}), **kw}


@pytest.mark.parametrize("uri", ["http://[::1/a.mp4", "http://videos.test:99999/a.mp4", "http://videos.test:abc/a.mp4",
                                 "http://videos.test/a\x01b.mp4", "http://videos.test/a\nb.mp4",
                                 str(CLIP.parent / "a\x00b.mp4"), "relative/a.mp4", "file://elsewhere/etc/passwd",
                                 "http://a..b/x.mp4", "http://\u2100/a.mp4", "https:///a.mp4"])
def test_uris_that_cannot_be_parsed_are_row_errors(tmp_path, uri):
    out = Ingest(IngestConfig(allowed_roots=[str(CLIP.parent)]), str(tmp_path))(_ingest_row(uri))
    assert out["error"] == "ingest:bad_uri", (out["error"], out["error_detail"])
    assert out["path"] == "" and out["t_ingest_s"] >= 0


def test_an_exception_in_a_stage_is_an_internal_row_error(tmp_path):
    # Bounds stop num_candidates=0 at load time; built past them, the stage still keeps its row.
    frames = FramesConfig.model_construct(**{**FramesConfig().model_dump(), "num_candidates": 0})
    ingest = Ingest(IngestConfig(allowed_roots=[str(CLIP.parent)]), str(tmp_path))(_ingest_row(str(CLIP)))
    out = Scenes(ScenesConfig(), frames, str(tmp_path / "out"))(ingest)
    assert out["error"] == "scenes:internal"
    assert out["error_detail"].startswith("ZeroDivisionError") and out["scenes"] == []


def test_an_exception_in_the_async_annotate_stage_is_an_internal_row_error():
    row = {"video_id": "v", "scenes": [{"scene_id": 0, "start_s": 0.0, "end_s": 1.0}], "error": None,
           "manifest": "{not json"}
    out = asyncio.run(Annotate(AnnotatorConfig(), {}, {})(row))
    assert out["error"] == "annotate:internal" and out["error_detail"].startswith("JSONDecodeError")
    assert out["llm_calls"] == 0 and out["queries"] == []


def test_a_row_that_cannot_be_staged_is_an_internal_row_error(tmp_path):
    row = {"index": 3, "shard_id": 0, "key": "k", "video_id": "v", "resume_key": "r", "error": None,
           "status": "ok", "manifest": json.dumps({"video_id": "v", "uri": "/x.mp4"}), "duration_s": 1.0,
           "scenes": [{"scene_id": 0}], "captions": [], "scene_frame_times": []}  # no queries: KeyError
    out = StageSample(str(tmp_path), RUN)(row)
    assert out["status"] == "error"
    record = json.loads((tmp_path / "_staging/000000/000000003.json").read_text())
    assert record["error"] == "shard:internal" and record["sample"] is None
    assert record["index_rows"][0]["error_detail"].startswith("KeyError")


def test_internal_error_details_keep_no_secret_and_no_machine_path(tmp_path):
    from peakclips.errors import row_error

    e = row_error(FileNotFoundError(2, "No such file", "/home/ann/private/out/_scratch/k.mp4"))
    assert e.code == "internal" and "/home/ann" not in e.detail and "k.mp4" in e.detail
    e = row_error(RuntimeError("GET https://ann:hunter2@cdn.test/v.mp4?sig=SECRET failed"))
    assert "hunter2" not in e.detail and "SECRET" not in e.detail and "cdn.test/v.mp4" in e.detail


def test_a_full_disk_is_a_storage_fault_that_stages_nothing(tmp_path):
    import errno

    from peakclips.errors import row_error

    e = row_error(OSError(errno.ENOSPC, "No space left on device"))
    assert e.code == "storage_fault"
    row = {"index": 0, "shard_id": 0, "key": "k", "error": "ingest:storage_fault", "error_detail": "No space"}
    assert StageSample(str(tmp_path), RUN)(row)["storage_fault"] == "No space"
    assert not (tmp_path / "_staging").exists()


def test_a_row_asking_for_too_many_queries_is_refused_before_any_work(tmp_path):
    manifest = {"video_id": "v", "uri": str(CLIP), "queries": ["q"] * 3,
                "qa": [{"question": "?", "options": ["a", "b"], "answer": 0}] * 2}
    row = _ingest_row(str(CLIP), manifest=json.dumps(manifest))
    out = Ingest(IngestConfig(allowed_roots=[str(CLIP.parent)], max_manifest_queries=4), str(tmp_path))(dict(row))
    assert out["error"] == "ingest:too_many_queries" and "5 queries" in out["error_detail"]
    out = Ingest(IngestConfig(allowed_roots=[str(CLIP.parent)], max_manifest_queries=5), str(tmp_path))(dict(row))
    assert out["error"] is None
