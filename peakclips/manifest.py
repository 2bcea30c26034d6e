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
    base_dir = base_dir or path.resolve().parent
    rows: list[ManifestRow] = []
    first_line_of: dict[str, int] = {}
    for lineno, line in _lines(path):
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


MAX_LINE_BYTES = 1 << 20  # one row: a URI, ids and a few queries; far below this


def _lines(path: Path):
    """(line number, text) of a UTF-8 text file, each line read within MAX_LINE_BYTES."""
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise ManifestError(f"manifest not found: {path}") from None
    except IsADirectoryError:
        raise ManifestError(f"{path} is a folder, not a manifest file") from None
    except OSError as e:
        raise ManifestError(f"cannot read the manifest {path}: {e.strerror}") from None
    with f:
        lineno = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                raise ManifestError(f"{path} line {lineno}: longer than {MAX_LINE_BYTES >> 20} MiB")
            try:
                yield lineno, raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(f"{path} line {lineno}: not UTF-8 text (a manifest is JSON lines)") from None


def _resolve_local(uri: str, base_dir: Path) -> str:
    if "://" in uri:
        return uri
    try:
        p = Path(uri).expanduser()
        return str(p if p.is_absolute() else (base_dir / p).resolve())
    except (ValueError, RuntimeError):  # a NUL byte, an unknown ~user: ingest refuses the row (bad_uri)
        return uri


def parse_shards(spec: str | None, num_shards: int) -> list[int]:
    """`0-99`, `7`, `0,3,5`, `all` or empty -> sorted shard ids that exist in the manifest."""
    if spec is None or spec.strip() in ("", "all"):
        return list(range(num_shards))
    wanted: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,12})(?:-(\d{1,12}))?", part)
        if not m:
            raise ManifestError(f"bad shard selection '{part[:40]}' (use e.g. 0-99, 7 or 0,3,5)")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if hi < lo:
            raise ManifestError(f"bad shard range '{part}': end before start")
        wanted.update(range(lo, min(hi, num_shards - 1) + 1))  # never more ids than the manifest has
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
