"""The shard formats: the per-sample `KEY.json`, the Parquet index row and the shard's
`_stats.json` (docs/data-format.md); and `RunInfo`, the run-level facts every sample and shard
records.

These models are the contract between the pipeline, `peakclips verify`, the exports and the
trainer. Bump SCHEMA_VERSION on any change a reader would notice. (Where files live:
peakclips/shards.py.)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = "1.0"

Priority = Literal["P1", "P2"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scene(_Model):
    scene_id: int
    start_s: float
    end_s: float
    start_frame: int
    end_frame: int  # exclusive
    caption: str = ""
    frame_times_s: list[float] = Field(default_factory=list)
    """Times of the per-scene frames the annotator and CLIP saw."""


class Chapter(_Model):
    start_s: float
    end_s: float
    scene_ids: list[int]
    caption: str


class SceneScore(_Model):
    llm: int = Field(ge=1, le=5)
    clip: float | None
    """Raw CLIP similarity (None when CLIP did not run)."""
    final: float
    reason: str


class Highlight(_Model):
    start_s: float
    end_s: float
    priority: Priority
    scene_ids: list[int]
    reason: str


class Query(_Model):
    query_id: int
    query: str
    origin: Literal["manifest", "qa", "generated", "reference"]
    scene_scores: list[SceneScore]
    highlights: list[Highlight]


class QA(_Model):
    question: str
    options: list[str]
    answer: int


class PromptRef(_Model):
    id: str  # name.vN
    sha256: str


class AnnotatorInfo(_Model):
    backend: Literal["reference", "openai"]
    model: str | None
    prompts: list[PromptRef] = Field(default_factory=list)


class ClipInfo(_Model):
    model: str
    pretrained: str | None
    used: bool
    """False when weights could not be loaded and clip.required was false."""
    reduce: str
    alpha: float
    beta: float


class Sample(_Model):
    """`KEY.json` in a shard: everything known about one kept video."""

    schema_version: str = SCHEMA_VERSION
    video_id: str
    key: str
    source: str | None
    license: str | None
    duration_s: float
    fps: float
    width: int
    height: int
    frame_times_s: list[float]
    """Timestamps of the T candidate frames stored in `KEY.mp4`, in the same order."""
    scenes: list[Scene]
    chapters: list[Chapter]
    summary: str
    queries: list[Query]
    qa: list[QA]
    annotator: AnnotatorInfo
    clip_model: ClipInfo | None
    config_hash: str
    peakclips_version: str


class RunInfo(_Model):
    """What a run records in every sample and shard: made once on the driver
    (pipeline.run_info), shipped to the workers with the stages that need it."""

    annotator: AnnotatorInfo
    clip_model: ClipInfo | None
    clip_note: str | None = None
    """Why CLIP did not run (None when it did)."""
    llm_price: dict[str, float] | None = None
    """USD per million input/output tokens of the annotator's model (annotator.prices)."""
    config_hash: str
    config: dict[str, Any] | None = None
    """The config without its operational keys (config.OPERATIONAL_KEYS)."""
    scratch: str = ""
    """Where downloads wait (shards.scratch_dir); the finalized shard removes its part."""
    fingerprint: str = ""
    """resume.fingerprint of the above: staged videos of another fingerprint are redone."""


class VideoCounts(_Model):
    total: int
    ok: int
    dropped: int
    error: int


class LlmUsage(_Model):
    calls: int
    cache_hits: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | int
    """An int (0) when no video had a price: the file keeps the number as summed."""
    price_per_mtok: dict[str, float] | None


class ShardStats(_Model):
    """`peakclips-NNNNNN_stats.json`: counts and provenance of one shard, written last (its
    presence marks the shard complete). Fields in the file's order."""

    shard: str
    videos: VideoCounts
    queries: dict[str, int]
    """Kept and dropped queries by status (ok, dropped)."""
    highlights: int
    video_drop_reasons: dict[str, int]
    query_drop_reasons: dict[str, int]
    """Queries dropped in videos that were kept, by reason."""
    errors: dict[str, int]
    """Row errors by `<stage>:<code>`."""
    stage_seconds: dict[str, float]
    """Wall seconds per stage, summed over the shard's videos."""
    nodes: dict[str, int]
    """Stage runs per Ray node id."""
    llm: LlmUsage
    annotator: AnnotatorInfo
    clip_model: ClipInfo | None
    clip_note: str | None
    config_hash: str
    config: dict[str, Any] | None
    peakclips_version: str
    schema_version: str


# Columns of `peakclips-NNNNNN.parquet`: one row per (video, query), and one row with a null
# query for a video that ended before it had queries. Types are pinned so every shard's index
# has the same Arrow schema (readers concatenate them).
INDEX_COLUMNS: dict[str, str] = {
    "video_id": "string",
    "key": "string",
    "shard_id": "int32",
    "query_id": "int32",
    "query": "string",
    "origin": "string",
    "status": "string",  # ok | dropped | error
    "error": "string",  # <stage>:<code>
    "error_detail": "string",
    "drop_reason": "string",
    "duration_s": "float64",
    "truncated": "bool",  # the file decoded to less than its header claims (processed as far as it goes)
    "num_scenes": "int32",
    "scene_starts_s": "list<float64>",  # scene i spans [starts[i], starts[i+1]) (the last: to duration_s)
    "num_highlights": "int32",
    "num_p1": "int32",
    "num_p2": "int32",
    "highlight_coverage": "float64",
    "highlights_json": "string",
    "llm_scores": "list<int32>",
    "clip_sims": "list<float64>",
    "final_scores": "list<float64>",
    "annotator_backend": "string",
    "annotator_model": "string",
    "prompt_ids": "string",
    "clip_model": "string",
    "llm_calls": "int32",  # requests the annotator's server answered for this video (cache hits not)
    "llm_cache_hits": "int32",
    "prompt_tokens": "int64",
    "completion_tokens": "int64",
    "cost_usd": "float64",
    "config_hash": "string",
}
