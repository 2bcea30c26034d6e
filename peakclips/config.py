"""Typed, strict run configuration: one small model per stage, loaded from a pipeline YAML.

`load_config(path, overrides)` is the only way in. Unknown keys anywhere are errors that list
the valid keys at that level, both in the YAML and in `--set a.b=value` overrides, because a
typo in a threshold must not silently fall back to a default on a 100k-video run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config file or override that cannot be used; the message says what to change."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IngestConfig(Strict):
    """Stage 1: where videos may come from and how big they may be."""

    allowed_roots: list[str] = Field(default_factory=list)
    """Local directories videos may be read from (resolved, symlinks followed). Empty = none."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Host names or IPs exempt from the private-address check (an internal mirror, a test server)."""
    max_download_bytes: int = 4 * 1024**3
    download_timeout_s: float = 600.0
    max_width: int = 7680
    max_height: int = 4320
    min_duration_s: float = 0.0
    max_duration_s: float = 6 * 3600.0
    scratch: str | None = None
    """Where downloaded videos wait for later stages (shared storage on a cluster). Default: OUTPUT/_scratch."""


class ScenesConfig(Strict):
    """Stages 2-3: shot boundaries and the rules that turn cuts into scenes (one decode pass)."""

    detector: Literal["combined", "content", "adaptive", "histogram"] = "combined"
    """`combined` (ContentDetector's score + adaptive cuts + a flash/occlusion filter + fade
    handling; peakclips/detect.py) had the best F1 in docs/benchmarks.md; the others are
    PySceneDetect's own detectors."""
    threshold: float | None = None
    """Detector threshold; None = the detector's default (27 for combined and content,
    3.0 adaptive ratio for adaptive, 0.05 for histogram)."""
    analysis_width: int = 256
    """Frames are downscaled to this width before detection (cuts survive downscaling; speed does not)."""
    min_scene_s: float = 0.6
    """Scenes shorter than this are merged into a neighbour; detectors wait this long between cuts."""
    max_scene_s: float = 60.0
    """Scenes longer than this are split into equal parts."""
    min_frames: int = 2
    """A video that decodes to fewer frames is a row error `scenes:too_few_frames`."""

    @model_validator(mode="after")
    def _check(self) -> ScenesConfig:
        if not 0 < self.min_scene_s <= self.max_scene_s / 2:
            raise ValueError("scenes.min_scene_s must be > 0 and at most half of scenes.max_scene_s")
        if self.analysis_width < 16 or self.min_frames < 1:
            raise ValueError("scenes.analysis_width must be >= 16 and scenes.min_frames >= 1")
        return self


class FramesConfig(Strict):
    """Stage 3: T candidate frames for the selector, m frames per scene for captions and CLIP."""

    num_candidates: int = 256
    per_scene: int = 4
    candidate_size: int = 448
    """Longest side of a stored candidate frame, in pixels."""
    candidate_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    """x264 preset of the candidates' MP4: veryfast is as small as medium at a third of the
    encoding time (docs/benchmarks.md, candidate storage)."""
    candidate_crf: int = 23
    candidate_x264_params: str = Field("partitions=i8x8,i4x4", pattern=r"^([a-z0-9-]+=[^:=]+(:[a-z0-9-]+=[^:=]+)*)?$")
    """More x264 options after the preset, in x264-params form (`key=value:key=value`). The
    default leaves out veryfast's inter sub-partition search (p8x8, b8x8): 18-25 % less
    encoding CPU for 0-2 % more bytes at the same PSNR (docs/benchmarks.md, candidate storage).
    `mbtree=0` is always added (byte-reproducible output, see peakclips/video.py)."""
    scene_frame_size: int = 384
    """Longest side of a per-scene frame sent to the annotator and CLIP."""
    jpeg_quality: int = 90


class Price(Strict):
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0


class AnnotatorConfig(Strict):
    """Stage 4: the LLM annotator (SPEC section 4)."""

    backend: Literal["reference", "openai"] = "reference"
    base_url: str | None = None
    """OpenAI-compatible endpoint; None = the OPENAI_BASE_URL environment variable."""
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    azure_api_version: str | None = None
    """Azure OpenAI (the openai package's Azure client): its `api-version`, e.g. "2024-10-21".
    When set, base_url is the resource endpoint (https://NAME.openai.azure.com; None =
    AZURE_OPENAI_ENDPOINT), model is the deployment name, and the key goes out as `api-key`."""
    response_format: Literal["auto", "json_schema", "json_object", "prompt", "guided_json"] = "auto"
    """How replies are asked to be JSON (peakclips/llm_formats.py, docs/annotator.md "Servers"):
    json_schema (OpenAI structured output), json_object with the schema (llama.cpp, TGI) and the
    schema in the prompt, prompt (the schema in the prompt only), guided_json (vLLM's older
    extra_body field). auto: the first of json_schema, json_object, prompt the server accepts,
    tried once per run at start."""
    cache: str | None = None
    """SQLite response cache; None = ~/.cache/peakclips/annotator.sqlite."""
    timeout_s: float = Field(120.0, gt=0)
    """Per request (each retry gets its own)."""
    max_retries: int = Field(4, ge=0)
    """The openai client's retries with backoff (408/409/429/5xx, Retry-After, dropped connections)."""
    max_concurrency: int = Field(16, ge=1)
    """Requests in flight per annotator actor, shared by all the videos it works on."""
    videos_per_actor: int | None = Field(None, ge=1)
    """Videos an annotator actor works on at once, so that its requests stay in flight across
    videos (one video alone has 1-3 requests to send while its chapters and queries are asked).
    None = max_concurrency, which keeps about 95 % of the slots busy (docs/annotator.md)."""
    queries_per_video: int = Field(3, ge=1)
    image_size: int = Field(512, ge=16)
    """Longest side of the frames sent as image_url parts."""
    image_detail: Literal["auto", "low", "high"] = "auto"
    """The image_url `detail` OpenAI bills by ("low": a fixed 85 tokens per frame)."""
    max_manifest_text: int = Field(500, ge=1)
    """Manifest text (titles, queries) is cut to this many characters before it enters a prompt."""
    relevance_window: int = Field(64, ge=1)
    """At most this many scenes per relevance call; longer videos are scored in windows."""
    chapter_size: int = Field(6, ge=1)
    """Target number of scenes per chapter."""
    num_actors: int = Field(2, ge=1)
    """Annotator actors (each keeps up to max_concurrency requests in flight)."""
    reference_dir: str = "manifests/reference"
    """Hand-written annotations used by the `reference` backend."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """USD per million tokens, by model name, for cost accounting."""

    @model_validator(mode="before")
    @classmethod
    def _default_videos_per_actor(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("videos_per_actor") is None:
            data = {**data, "videos_per_actor": data.get("max_concurrency", 16)}
        return data


class ClipConfig(Strict):
    """Stage 5: open_clip similarity between queries and scene frames."""

    enabled: bool = True
    model: str = "ViT-B-16-SigLIP"
    pretrained: str | None = "webli"
    """An open_clip tag, a local checkpoint path, or None for random weights (tests only)."""
    required: bool = True
    """True: weights that cannot be loaded fail the run at start. False: run on without CLIP."""
    batch_size: int = Field(64, ge=1)
    """Frames per forward pass."""
    reduce: Literal["max", "mean"] = "max"
    """How a scene's frame similarities become the scene's: max (default, SPEC) or mean."""
    alpha: float = 0.05
    """Similarity mapped to relevance 1 (docs/scores.md: how to calibrate it per model)."""
    beta: float = 0.20
    """Similarity mapped to relevance 5."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = CUDA with fp16 when the actor has a GPU, else CPU."""
    num_actors: int = 1
    num_cpus: float = Field(1.0, ge=0)
    """CPUs each CLIP actor reserves; on CPU also its torch threads (Ray sets OMP_NUM_THREADS)."""


class FiltersConfig(Strict):
    min_duration_s: float = 2.0
    max_duration_s: float = 4 * 3600.0
    min_scenes: int = 2
    max_highlight_coverage: float = 0.8
    """A query whose highlights cover more than this fraction of the video is not discriminative."""
    dedup_queries: bool = True
    dedup_threshold: float = 0.92
    """Text-embedding cosine above which two queries of one video count as duplicates."""


class HighlightsConfig(Strict):
    """Stage 6: score fusion, priorities, clips and filters (SPEC section 2.1)."""

    w1: float = 0.9
    w2: float = 0.1
    p1_threshold: float = 4.9
    p2_threshold: float = 4.3
    filters: FiltersConfig = Field(default_factory=FiltersConfig)


class ShardConfig(Strict):
    """Stage 7: how samples are written."""

    candidates_format: Literal["mp4"] = "mp4"


class RayConfig(Strict):
    address: str | None = None
    """None = RAY_ADDRESS from the environment, else a local Ray instance."""
    num_cpus: int | None = None
    """CPUs for a local instance (None = all)."""


class RunConfig(Strict):
    """A whole pipeline run. Every YAML under pipelines/ is one of these."""

    name: str = "peakclips"
    shard_size: int = 100
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    scenes: ScenesConfig = Field(default_factory=ScenesConfig)
    frames: FramesConfig = Field(default_factory=FramesConfig)
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    highlights: HighlightsConfig = Field(default_factory=HighlightsConfig)
    shard: ShardConfig = Field(default_factory=ShardConfig)
    ray: RayConfig = Field(default_factory=RayConfig)

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        if self.shard_size < 1:
            raise ValueError("shard_size must be at least 1")
        h = self.highlights
        if not h.p2_threshold <= h.p1_threshold:
            raise ValueError("highlights.p2_threshold must not exceed highlights.p1_threshold")
        if not self.clip.alpha < self.clip.beta:
            raise ValueError("clip.alpha must be below clip.beta")
        return self

    def hash(self, extra: str = "") -> str:
        """Stable hash of everything that shapes a shard's content, plus `extra` (the content of
        files the config points to, e.g. reference annotations). Keys that only say how or where
        a run executes are left out (OPERATIONAL_KEYS), so the same dataset built on another
        machine, with other paths or more parallelism, has the same hash."""
        data = self.model_dump(mode="json", exclude=OPERATIONAL_KEYS)
        return hashlib.sha256((json.dumps(data, sort_keys=True) + extra).encode()).hexdigest()[:16]


# Machine paths, endpoints and how they are spoken to (API version, response format: `auto`
# picks per server), parallelism, retries and labels: they change how a run executes, never what
# a sample is asked for (the annotator's model name and prompts are, and stay in).
OPERATIONAL_KEYS = {
    "name": True,
    "ray": True,
    "ingest": {"scratch", "allowed_roots"},
    "annotator": {"base_url", "api_key_env", "azure_api_version", "response_format", "cache", "timeout_s",
                  "max_retries", "max_concurrency", "num_actors", "reference_dir"},
    "clip": {"num_actors"},
}


def valid_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Every dotted key a config accepts, for error messages and `--set`."""
    keys = []
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            keys += valid_keys(sub, f"{prefix}{name}.")
        else:
            keys.append(prefix + name)
    return keys


def _check_unknown(data: Any, model: type[BaseModel], where: str) -> None:
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    for key, value in data.items():
        if key not in fields:
            dotted = f"{where}{key}"
            valid = ", ".join(sorted(fields))
            raise ConfigError(f"unknown config key '{dotted}'; valid keys here: {valid}")
        sub = fields[key].annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            _check_unknown(value, sub, f"{where}{key}.")


def apply_override(data: dict, assignment: str, root: type[BaseModel] = RunConfig) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (so 3, true, [a]).

    `root` is the config model the keys belong to (the trainer passes its own)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    dotted, raw = assignment.split("=", 1)
    parts = dotted.strip().split(".")
    model: type[BaseModel] = root
    node = data
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            raise ConfigError(
                f"unknown config key '{dotted}'; valid keys: {', '.join(valid_keys(root))}"
            )
        if i == len(parts) - 1:
            node[part] = yaml.safe_load(raw)
            return
        sub = fields[part].annotation
        if not (isinstance(sub, type) and issubclass(sub, BaseModel)):
            raise ConfigError(f"'{'.'.join(parts[: i + 1])}' is a value, not a section")
        node = node.setdefault(part, {})
        model = sub


def load_config(path: str | os.PathLike | None, overrides: list[str] = ()) -> RunConfig:
    """Read a pipeline YAML (or the defaults when path is None) and apply `--set` overrides."""
    defaults = {"name": Path(path).stem} if path is not None else {}
    return load_yaml_config(RunConfig, path, overrides, defaults)


def load_yaml_config(root: type[BaseModel], path: str | os.PathLike | None, overrides: list[str] = (),
                     defaults: dict | None = None):
    """Read a YAML mapping into the strict config model `root`, with `a.b=value` overrides.

    Shared by the pipeline config and the trainer config (`peakclips.train.config`)."""
    data: dict = {}
    if path is not None:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
        for key, value in (defaults or {}).items():
            data.setdefault(key, value)
    _check_unknown(data, root, "")
    for assignment in overrides:
        apply_override(data, assignment, root)
    try:
        return root.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config {path or '(defaults)'}: {loc}: {first['msg']}") from None
