"""The input manifest: JSON lines, one video per line (schema in manifests/README.md).

The whole manifest is validated before any work starts, and every error names its line:
a bad line discovered three hours into a run would waste the run. The manifest is then cut
into numbered input shards of `shard_size` rows; input shard i becomes output shard i.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
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


@dataclass(frozen=True, slots=True)
class VideoTask:
    """One manifest row placed in its shard: what the pipeline's first stage receives.

    The row is kept as its validated JSON (relative local URIs resolved): a few hundred bytes
    per video, where the parsed model would take kilobytes (a run holds every selected video)."""

    index: int  # 0-based position in the manifest; fixes the order of samples in a shard
    shard_id: int
    key: str  # the WebDataset key: safe, unique within the run
    manifest_json: str

    @property
    def row(self) -> ManifestRow:
        return ManifestRow.model_validate_json(self.manifest_json)


@dataclass
class ManifestPlan:
    """What a run keeps of its manifest: the videos of the selected shards, and the counts."""

    num_rows: int
    shard_size: int
    selected: list[int]
    """The selected shards that exist in the manifest, sorted."""
    tasks: list[VideoTask]
    """The videos of the selected shards, in manifest order."""

    @property
    def num_shards(self) -> int:
        return (self.num_rows + self.shard_size - 1) // self.shard_size


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_PLAIN_ABSOLUTE = re.compile(r"(/[^/.][^/]*)+")
"""An absolute local path that pathlib leaves as it is: no empty, `.` or `..` part (nor any
part starting with a dot, to keep the check simple), no trailing slash."""


def safe_key(video_id: str) -> str:
    """Map a video id to a WebDataset key: [A-Za-z0-9_-]+, no dots (dots split tar members)."""
    key = _UNSAFE.sub("_", video_id).strip("_")
    return key[:120] or "video"


def plan_manifest(path: str | Path, shard_size: int, shards: str | None = None,
                  base_dir: Path | None = None) -> ManifestPlan:
    """Validate every line of the manifest in one streaming pass and keep only the videos of the
    selected shards (`shards` as `parse_shards` reads it).

    Memory: the selected videos (`VideoTask`, their JSON), plus for every row of the manifest a
    64-bit hash of its video_id (the duplicate check) and its key (keys depend on every earlier
    row). A 1,000,000-line manifest is planned in about 19 s of CPU within 600 MB, 10 s and
    200 MB when 10 of its 10,000 shards are selected (docs/benchmarks.md, scale).
    """
    path = Path(path)
    base_dir = base_dir or path.resolve().parent
    wanted = _shard_ranges(shards)
    keys, ids = Keys(), _DuplicateIds(path)
    tasks: list[VideoTask] = []
    seen_shards: dict[int, bool] = {}
    index = 0
    for lineno, line in _lines(path):
        row = _validate(path, lineno, line)
        ids.add(row.video_id, lineno)
        key = keys.assign(row.video_id)
        shard_id = index // shard_size
        if (selected := seen_shards.get(shard_id)) is None:
            selected = seen_shards[shard_id] = _in_ranges(shard_id, wanted)
        if selected:
            if (uri := _resolve_local(row.uri, base_dir)) != row.uri:
                row = row.model_copy(update={"uri": uri})
            tasks.append(VideoTask(index, shard_id, key, row.model_dump_json()))
        index += 1
    if not index:
        raise ManifestError(f"{path}: no videos")
    plan = ManifestPlan(num_rows=index, shard_size=shard_size,
                        selected=[s for s, on in seen_shards.items() if on], tasks=tasks)
    if not plan.selected:
        raise _no_shard_matches(shards, plan.num_shards)
    return plan


def read_manifest(path: str | Path, base_dir: Path | None = None) -> list[ManifestRow]:
    """Parse and validate every line. Relative local URIs are resolved against the manifest's folder.

    Duplicate video ids are an error (decided: a duplicate is almost always a concatenation
    mistake, and silently keeping one would make the dataset depend on line order).
    For small manifests (tests, tools); a run plans its manifest with `plan_manifest`.
    """
    plan = plan_manifest(path, shard_size=1, base_dir=base_dir)
    return [t.row for t in plan.tasks]


MAX_LINE_BYTES = 1 << 20  # one row: a URI, ids and a few queries; far below this


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each non-blank line of a UTF-8 text file, streamed, each line
    read within MAX_LINE_BYTES."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below; the errors are the user's
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
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ManifestError(f"{path} line {lineno}: not UTF-8 text (a manifest is JSON lines)") from None
            if text.strip():
                yield lineno, text


def _validate(path: Path, lineno: int, line: str) -> ManifestRow:
    try:
        return ManifestRow.model_validate_json(line)
    except ValidationError as e:
        err = e.errors()[0]
        if err["type"] == "json_invalid":
            raise ManifestError(f"{path} line {lineno}: not valid JSON "
                                f"({err['msg'].removeprefix('Invalid JSON: ')})") from None
        if err["type"] == "model_type" and not err["loc"]:
            raise ManifestError(f"{path} line {lineno}: expected a JSON object") from None
        field = ".".join(str(p) for p in err["loc"]) or "row"
        raise ManifestError(f"{path} line {lineno}: {field}: {err['msg']}") from None


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


class _DuplicateIds:
    """The duplicate-id check in 8 bytes of hash per row (a set of ints, not of strings). A hash
    seen before is confirmed by reading the manifest again up to that line, so a collision of
    two different ids (about 1 in 10^7 for a million rows) is never reported as a duplicate."""

    def __init__(self, path: Path):
        self.path = path
        self.hashes: set[int] = set()

    def add(self, video_id: str, lineno: int) -> None:
        h = _hash64(video_id)
        if h not in self.hashes:
            self.hashes.add(h)
            return
        for first, line in _lines(self.path):
            if first >= lineno:
                break
            if ManifestRow.model_validate_json(line).video_id == video_id:
                raise ManifestError(f"{self.path} line {lineno}: duplicate video_id '{video_id}' "
                                    f"(first on line {first})")


class Keys:
    """Assigns each video id, in manifest order, a safe key unique within the manifest: a
    collision gets a deterministic `-N` suffix, so the same manifest always yields the same keys."""

    def __init__(self):
        self.seen: dict[str, int] = {}

    def assign(self, video_id: str) -> str:
        seen = self.seen
        key = safe_key(video_id)
        if key in seen:
            seen[key] += 1
            key = f"{key}-{seen[key]}"
            while key in seen:  # the suffixed form may itself be a real id
                key += "_"
        seen.setdefault(key, 0)
        return key


def _resolve_local(uri: str, base_dir: Path) -> str:
    if "://" in uri or _PLAIN_ABSOLUTE.fullmatch(uri):
        return uri  # already what the Path below would make of it (it took half of planning's time)
    try:
        p = Path(uri).expanduser()
        return str(p if p.is_absolute() else (base_dir / p).resolve())
    except (ValueError, RuntimeError):  # a NUL byte, an unknown ~user: ingest refuses the row (bad_uri)
        return uri


resolve_local = _resolve_local  # also for tables converted to manifests (peakclips/manifest_build.py)


def _shard_ranges(spec: str | None) -> list[tuple[int, int]] | None:
    """`0-99`, `7`, `0,3,5` -> inclusive ranges; `all` or empty -> None (every shard)."""
    if spec is None or spec.strip() in ("", "all"):
        return None
    ranges = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d{1,12})(?:-(\d{1,12}))?", part)
        if not m:
            raise ManifestError(f"bad shard selection '{part[:40]}' (use e.g. 0-99, 7 or 0,3,5)")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if hi < lo:
            raise ManifestError(f"bad shard range '{part}': end before start")
        ranges.append((lo, hi))
    return ranges


def _in_ranges(shard_id: int, ranges: list[tuple[int, int]] | None) -> bool:
    return ranges is None or any(lo <= shard_id <= hi for lo, hi in ranges)


def _no_shard_matches(spec: str | None, num_shards: int) -> ManifestError:
    return ManifestError(f"shard selection '{spec}' matches none of the manifest's {num_shards} shard(s) "
                         f"(0-{num_shards - 1})")


def parse_shards(spec: str | None, num_shards: int) -> list[int]:
    """`0-99`, `7`, `0,3,5`, `all` or empty -> sorted shard ids that exist in the manifest."""
    ranges = _shard_ranges(spec)
    selected = [s for s in range(num_shards) if _in_ranges(s, ranges)]
    if not selected:
        raise _no_shard_matches(spec, num_shards)
    return selected


def plan_tasks(rows: list[ManifestRow], shard_size: int) -> list[VideoTask]:
    """Assign shard ids and unique keys (`Keys`) to rows already read."""
    keys = Keys()
    return [VideoTask(index, index // shard_size, keys.assign(row.video_id), row.model_dump_json())
            for index, row in enumerate(rows)]
