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

from peakclips.errors import UserError


class ConfigError(UserError):
    """A config file or override that cannot be used; the message says what to change."""


class Strict(BaseModel):
    """Every config model: unknown keys are errors, and (tests/test_config.py checks it) every
    number has a lower and an upper bound, so a value that would divide by zero or ask for
    terabytes fails at load time with the key's name, not hours into a run."""

    model_config = ConfigDict(extra="forbid", frozen=True)


DAY_S = 24 * 3600.0


class IngestConfig(Strict):
    """Stage 1: where videos may come from and how big they may be."""

    allowed_roots: list[str] = Field(default_factory=list)
    """Local directories videos may be read from (resolved, symlinks followed). Empty = none."""
    allowed_prefixes: list[str] = Field(default_factory=list)
    """Object-storage prefixes videos may be read from (`s3://bucket/videos/`, `gs://...`,
    `hf://datasets/org/name/...`). Empty = none. A URI outside them is `ingest:prefix_not_allowed`,
    refused before any request."""
    allow_hosts: list[str] = Field(default_factory=list)
    """Host names exempt from the private-address check (an internal mirror, a test server), or
    addresses (an IP here is allowed under any name that resolves to it)."""
    max_download_bytes: int = Field(4 * 1024**3, ge=1, le=1 << 44)
    """Cap on the bytes of one download, counted on the wire and after any content decoding."""
    download_timeout_s: float = Field(600.0, gt=0, le=7 * DAY_S)
    """Wall-clock limit on one whole download (connect, redirects and every byte)."""
    max_width: int = Field(7680, ge=16, le=65536)
    max_height: int = Field(4320, ge=16, le=65536)
    min_duration_s: float = Field(0.0, ge=0, le=7 * DAY_S)
    max_duration_s: float = Field(6 * 3600.0, gt=0, le=7 * DAY_S)
    max_manifest_queries: int = Field(32, ge=0, le=10_000)
    """A manifest row with more `queries` + `qa` items than this is a row error
    `ingest:too_many_queries` (each one costs LLM calls)."""
    scratch: str | None = None
    """Where downloaded videos wait for later stages (shared storage on a cluster). Default: OUTPUT/_scratch."""


class ScenesConfig(Strict):
    """Stages 2-3: shot boundaries and the rules that turn cuts into scenes (one decode pass)."""

    detector: Literal["combined", "content", "adaptive", "histogram"] = "combined"
    """`combined` (ContentDetector's score + adaptive cuts + a flash/occlusion filter + fade
    handling; peakclips/detect.py) had the best F1 in docs/benchmarks.md; the others are
    PySceneDetect's own detectors."""
    threshold: float | None = Field(None, gt=0, le=255)
    """Detector threshold; None = the detector's default (27 for combined and content,
    3.0 adaptive ratio for adaptive, 0.05 for histogram)."""
    analysis_width: int = Field(256, ge=16, le=4096)
    """Frames are downscaled to this width before detection (cuts survive downscaling; speed does not)."""
    min_scene_s: float = Field(0.6, gt=0, le=DAY_S)
    """Scenes shorter than this are merged into a neighbour; detectors wait this long between cuts."""
    max_scene_s: float = Field(60.0, gt=0, le=DAY_S)
    """Scenes longer than this are split into equal parts."""
    min_frames: int = Field(2, ge=1, le=100_000)
    """A video that decodes to fewer frames is a row error `scenes:too_few_frames`."""

    @model_validator(mode="after")
    def _check(self) -> ScenesConfig:
        if not self.min_scene_s <= self.max_scene_s / 2:
            raise ValueError("scenes.min_scene_s must be at most half of scenes.max_scene_s")
        return self


class FramesConfig(Strict):
    """Stage 3: T candidate frames for the selector, m frames per scene for captions and CLIP."""

    num_candidates: int = Field(256, ge=1, le=4096)
    per_scene: int = Field(4, ge=1, le=64)
    candidate_size: int = Field(448, ge=16, le=4096)
    """Longest side of a stored candidate frame, in pixels."""
    candidate_preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "veryfast"
    """x264 preset of the candidates' MP4: veryfast is as small as medium at a third of the
    encoding time (docs/benchmarks.md, candidate storage)."""
    candidate_crf: int = Field(23, ge=0, le=51)
    candidate_x264_params: str = Field("partitions=i8x8,i4x4", pattern=r"^([a-z0-9-]+=[^:=]+(:[a-z0-9-]+=[^:=]+)*)?$")
    """More x264 options after the preset, in x264-params form (`key=value:key=value`). The
    default leaves out veryfast's inter sub-partition search (p8x8, b8x8): 18-25 % less
    encoding CPU for 0-2 % more bytes at the same PSNR (docs/benchmarks.md, candidate storage).
    `mbtree=0` is always added (byte-reproducible output, see peakclips/video.py)."""
    scene_frame_size: int = Field(384, ge=16, le=4096)
    """Longest side of a per-scene frame sent to the annotator and CLIP."""
    jpeg_quality: int = Field(90, ge=1, le=100)


class Price(Strict):
    input_per_mtok: float = Field(0.0, ge=0, le=1e6)
    output_per_mtok: float = Field(0.0, ge=0, le=1e6)


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
    timeout_s: float = Field(120.0, gt=0, le=DAY_S)
    """Per request (each retry gets its own)."""
    max_retries: int = Field(4, ge=0, le=100)
    """The openai client's retries with backoff (408/409/429/5xx, Retry-After, dropped connections)."""
    max_concurrency: int = Field(16, ge=1, le=4096)
    """Requests in flight per annotator actor, shared by all the videos it works on."""
    videos_per_actor: int | None = Field(None, ge=1, le=4096)
    """Videos an annotator actor works on at once, so that its requests stay in flight across
    videos (one video alone has 1-3 requests to send while its chapters and queries are asked).
    None = max_concurrency, which keeps about 95 % of the slots busy (docs/annotator.md)."""
    queries_per_video: int = Field(3, ge=1, le=100)
    image_size: int = Field(512, ge=16, le=4096)
    """Longest side of the frames sent as image_url parts."""
    image_detail: Literal["auto", "low", "high"] = "auto"
    """The image_url `detail` OpenAI bills by ("low": a fixed 85 tokens per frame)."""
    max_manifest_text: int = Field(500, ge=1, le=100_000)
    """Manifest text (titles, queries) is cut to this many characters before it enters a prompt."""
    relevance_window: int = Field(64, ge=1, le=4096)
    """At most this many scenes per relevance call; longer videos are scored in windows."""
    chapter_size: int = Field(6, ge=1, le=4096)
    """Target number of scenes per chapter."""
    num_actors: int = Field(2, ge=1, le=4096)
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
    batch_size: int = Field(64, ge=1, le=65536)
    """Frames per forward pass."""
    reduce: Literal["max", "mean"] = "max"
    """How a scene's frame similarities become the scene's: max (default, SPEC) or mean."""
    alpha: float = Field(0.05, ge=-1, le=1)
    """Similarity mapped to relevance 1 (docs/scores.md: how to calibrate it per model)."""
    beta: float = Field(0.20, ge=-1, le=1)
    """Similarity mapped to relevance 5."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = CUDA with fp16 when the actor has a GPU, else CPU."""
    num_actors: int = Field(1, ge=1, le=4096)
    num_cpus: float = Field(1.0, ge=0, le=4096)
    """CPUs each CLIP actor reserves; on CPU also its torch threads (Ray sets OMP_NUM_THREADS)."""


class FiltersConfig(Strict):
    min_duration_s: float = Field(2.0, ge=0, le=7 * DAY_S)
    max_duration_s: float = Field(4 * 3600.0, gt=0, le=7 * DAY_S)
    min_scenes: int = Field(2, ge=0, le=100_000)
    max_highlight_coverage: float = Field(0.8, ge=0, le=1)
    """A query whose highlights cover more than this fraction of the video is not discriminative."""
    dedup_queries: bool = True
    dedup_threshold: float = Field(0.92, ge=-1, le=1)
    """Text-embedding cosine above which two queries of one video count as duplicates."""


class HighlightsConfig(Strict):
    """Stage 6: score fusion, priorities, clips and filters (SPEC section 2.1)."""

    w1: float = Field(0.9, ge=0, le=1)
    w2: float = Field(0.1, ge=0, le=1)
    p1_threshold: float = Field(4.9, ge=0, le=5)
    p2_threshold: float = Field(4.3, ge=0, le=5)
    filters: FiltersConfig = Field(default_factory=FiltersConfig)


class RayConfig(Strict):
    address: str | None = None
    """None = RAY_ADDRESS from the environment, else a local Ray instance."""
    num_cpus: int | None = Field(None, ge=1, le=1 << 16)
    """CPUs for a local instance (None = all)."""
    window: int = Field(1000, ge=1, le=1_000_000)
    """Videos per Ray Data dataset: the driver feeds the run's videos as a sequence of datasets of
    this many, because Ray Data keeps bookkeeping for every video of a dataset until it ends
    (peakclips/driver.py; docs/benchmarks.md, scale)."""


class FaultsConfig(Strict):
    """When a worker process or a node is lost, or a stage never returns (docs/architecture.md,
    the fault model): bounded retries, then a row error; the run goes on."""

    retries: int = Field(2, ge=0, le=100)
    """Ray runs a stage again this many times when its worker process died (a crash, an
    out-of-memory kill, a lost node); a video that still did not come back then runs once more on
    its own, stage by stage, with as many retries, before it gets `<stage>:worker_lost`."""
    timeout_s: float = Field(300.0, gt=0, le=7 * DAY_S)
    """A stage's deadline for one video is timeout_s + timeout_per_video_s x the video's
    duration, at most max_timeout_s (ingest adds ingest.download_timeout_s). Past it the row
    gets `<stage>:timeout`, without retries (a decoder that hangs on a file hangs again)."""
    timeout_per_video_s: float = Field(2.0, ge=0, le=3600)
    max_timeout_s: float = Field(6 * 3600.0, gt=0, le=7 * DAY_S)

    def deadline_s(self, duration_s: float) -> float:
        return min(self.max_timeout_s, self.timeout_s + self.timeout_per_video_s * max(0.0, duration_s))


class RunConfig(Strict):
    """A whole pipeline run. Every YAML under pipelines/ is one of these."""

    name: str = "peakclips"
    shard_size: int = Field(100, ge=1, le=1_000_000)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    scenes: ScenesConfig = Field(default_factory=ScenesConfig)
    frames: FramesConfig = Field(default_factory=FramesConfig)
    annotator: AnnotatorConfig = Field(default_factory=AnnotatorConfig)
    clip: ClipConfig = Field(default_factory=ClipConfig)
    highlights: HighlightsConfig = Field(default_factory=HighlightsConfig)
    ray: RayConfig = Field(default_factory=RayConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    storage_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """fsspec options per protocol for inputs and outputs on object storage, such as
    `{s3: {endpoint_url: ..., client_kwargs: {region_name: ...}, requester_pays: true}}`. Where and
    how to reach a store only: keys that look like credentials are refused (credentials come from
    the backend's standard sources: AWS_* variables, instance roles, GOOGLE_APPLICATION_CREDENTIALS,
    HF_TOKEN)."""

    @model_validator(mode="after")
    def _check(self) -> RunConfig:
        h = self.highlights
        if not h.p2_threshold <= h.p1_threshold:
            raise ValueError("highlights.p2_threshold must not exceed highlights.p1_threshold")
        if not self.clip.alpha < self.clip.beta:
            raise ValueError("clip.alpha must be below clip.beta")
        from peakclips.storage import OBJECT_STORES, check_object_uri, check_storage_options

        for proto in self.storage_options:
            if proto not in OBJECT_STORES:
                raise ValueError(f"storage_options.{proto}: not an object store ({', '.join(OBJECT_STORES)})")
        check_storage_options(self.storage_options)
        for prefix in self.ingest.allowed_prefixes:
            try:
                check_object_uri(prefix)
            except ValueError as e:
                raise ValueError(f"ingest.allowed_prefixes: {prefix!r}: {e}") from None
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
    "faults": True,
    "storage_options": True,
    "ingest": {"scratch", "allowed_roots", "allowed_prefixes", "allow_hosts"},
    "annotator": {"base_url", "api_key_env", "azure_api_version", "response_format", "cache", "timeout_s",
                  "max_retries", "max_concurrency", "num_actors", "reference_dir"},
    "clip": {"num_actors"},
}


def published_config(cfg: RunConfig) -> dict:
    """The config as `_stats.json` and the dataset card publish it: without OPERATIONAL_KEYS
    (machine paths, endpoints, internal host names), and a local CLIP checkpoint named by its
    file name only (the hash still covers the full path)."""
    data = cfg.model_dump(mode="json", exclude=OPERATIONAL_KEYS)
    data["clip"] = {**data["clip"], "model": public_name(cfg.clip.model),
                    "pretrained": public_name(cfg.clip.pretrained)}
    return data


def public_name(value: str | None) -> str | None:
    """A model tag as is; a local path (or `local-dir:` path) as its last component.

    >>> public_name("webli"), public_name("/home/ann/ckpt/siglip.bin"), public_name("local-dir:/m/x")
    ('webli', 'siglip.bin', 'local-dir:x')
    """
    if not value or ("/" not in value and os.sep not in value):
        return value
    prefix = "local-dir:" if value.startswith("local-dir:") else ""
    path = value.removeprefix(prefix)
    if prefix or path.startswith(("/", "~", ".")) or os.path.exists(path):
        return prefix + os.path.basename(path.rstrip("/"))
    return value  # a hub id such as org/name


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
        if getattr(sub, "__origin__", None) is dict:  # a mapping (storage_options): the rest are its keys
            node = node.setdefault(part, {})
            for key in parts[i + 1:-1]:
                node = node.setdefault(key, {})
            node[parts[-1]] = yaml.safe_load(raw)
            return
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
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {path}") from None
        except IsADirectoryError:
            raise ConfigError(f"{path} is a folder, not a config file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text (a config is YAML)") from None
        except OSError as e:
            raise ConfigError(f"cannot read the config {path}: {e.strerror}") from None
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
        msg = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"config {path or '(defaults)'}: {loc + ': ' if loc else ''}{msg}") from None
