"""The input manifest: JSON lines, one video per line (schema in manifests/README.md).

The whole manifest is validated before any work starts, and every error names its line:
a bad line discovered three hours into a run would waste the run. The manifest is then cut
into numbered input shards of `shard_size` rows; input shard i becomes output shard i.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from peakclips.errors import UserError


class ManifestError(UserError):
    """The manifest cannot be used; the message names the file and line."""


class QAItem(BaseModel):
    """A multiple-choice question about the video (used as a query and by the RL stage)."""

    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1)
    options: list[str] = Field(min_length=2)
    answer: int
    """Index of the correct option in `options`."""

    @field_validator("answer")
    @classmethod
    def _answer_in_range(cls, v: int, info) -> int:
        options = info.data.get("options") or []
        if not 0 <= v < len(options):
            raise ValueError(f"answer {v} is not an index into {len(options)} options")
        return v


class ManifestRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    video_id: str = Field(min_length=1, max_length=256)
    uri: str = Field(min_length=1)
    source: str | None = None
    license: str | None = None
    queries: list[str] = Field(default_factory=list)
    qa: list[QAItem] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class VideoTask:
    """One manifest row placed in its shard: what the pipeline's first stage receives."""

    index: int  # 0-based position in the manifest; fixes the order of samples in a shard
    shard_id: int
    key: str  # the WebDataset key: safe, unique within the run
    row: ManifestRow


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def safe_key(video_id: str) -> str:
    """Map a video id to a WebDataset key: [A-Za-z0-9_-]+, no dots (dots split tar members)."""
    key = _UNSAFE.sub("_", video_id).strip("_")
    return key[:120] or "video"


def read_manifest(path: str | Path, base_dir: Path | None = None) -> list[ManifestRow]:
    """Parse and validate every line. Relative local URIs are resolved against the manifest's folder.

    Duplicate video ids are an error (decided: a duplicate is almost always a concatenation
    mistake, and silently keeping one would make the dataset depend on line order).
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    base_dir = base_dir or path.resolve().parent
    rows: list[ManifestRow] = []
    first_line_of: dict[str, int] = {}
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            raise ManifestError(f"{path} line {lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(data, dict):
            raise ManifestError(f"{path} line {lineno}: expected a JSON object")
        try:
            row = ManifestRow.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "row"
            raise ManifestError(f"{path} line {lineno}: {field}: {err['msg']}") from None
        if row.video_id in first_line_of:
            raise ManifestError(
                f"{path} line {lineno}: duplicate video_id '{row.video_id}' "
                f"(first on line {first_line_of[row.video_id]})"
            )
        first_line_of[row.video_id] = lineno
        rows.append(row.model_copy(update={"uri": _resolve_local(row.uri, base_dir)}))
    if not rows:
        raise ManifestError(f"{path}: no videos")
    return rows


def _resolve_local(uri: str, base_dir: Path) -> str:
    if "://" in uri:
        return uri
    p = Path(uri).expanduser()
    return str(p if p.is_absolute() else (base_dir / p).resolve())


def parse_shards(spec: str | None, num_shards: int) -> list[int]:
    """`0-99`, `7`, `0,3,5`, `all` or empty -> sorted shard ids that exist in the manifest."""
    if spec is None or spec.strip() in ("", "all"):
        return list(range(num_shards))
    wanted: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise ManifestError(f"bad shard selection '{part}' (use e.g. 0-99, 7 or 0,3,5)")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if hi < lo:
            raise ManifestError(f"bad shard range '{part}': end before start")
        wanted.update(range(lo, hi + 1))
    selected = sorted(s for s in wanted if s < num_shards)
    if not selected:
        raise ManifestError(
            f"shard selection '{spec}' matches none of the manifest's {num_shards} shard(s) "
            f"(0-{num_shards - 1})"
        )
    return selected


def plan_tasks(rows: list[ManifestRow], shard_size: int) -> list[VideoTask]:
    """Assign shard ids and unique keys. Key collisions get a deterministic `-N` suffix in
    manifest order, so the same manifest always yields the same keys."""
    seen: dict[str, int] = {}
    tasks = []
    for index, row in enumerate(rows):
        key = safe_key(row.video_id)
        if key in seen:
            seen[key] += 1
            key = f"{key}-{seen[key]}"
            while key in seen:  # the suffixed form may itself be a real id
                key += "_"
        seen.setdefault(key, 0)
        tasks.append(VideoTask(index=index, shard_id=index // shard_size, key=key, row=row))
    return tasks


def num_shards(rows: list[ManifestRow], shard_size: int) -> int:
    return (len(rows) + shard_size - 1) // shard_size
