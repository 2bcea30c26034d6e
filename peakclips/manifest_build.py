"""Manifests from what users have: folders of videos, object-storage prefixes and tables.

    peakclips manifest SRC... -o M.jsonl     SRC: a local folder, a prefix (s3://bucket/videos/,
                                             gs://..., hf://datasets/org/name/...), or a table
    peakclips run CONFIG --manifest M.csv    a table (or a manifest on object storage) as is

- **Folders and prefixes**: every file below, in sorted order of its path relative to SRC (so the
  same files always give the same manifest), picked by its extension (`VIDEO_SUFFIXES`); local
  files are also sniffed (the first bytes of every common container, `sniff`), which picks a video
  without an extension and skips a "video" that holds text. The video id is that relative path
  (`cats/a.mp4`): stable, unique within SRC, and the same when the folder moves to a bucket.
  Everything left out is reported with its reason; nothing is fetched from a prefix but its listing.
- **Tables** (CSV, TSV, Parquet, JSON lines): one video per row, in table order, columns mapped by
  `Columns` (`--id-column`, `--uri-column`, `--source-column`, `--license-column`,
  `--queries-column`); `queries` is a list (Parquet, JSON) or the text of a JSON array or of one
  query. A row without an id takes its uri's path as id; relative local paths are resolved against
  the table's folder. Every row is checked as a manifest row is, and an error names its table row.
`--license` and `--source` fill in rows that have none. The JSON-lines manifest this writes (and
`local_manifest` hands to `peakclips run`) is read by peakclips/manifest.py like any other.
"""

from __future__ import annotations

import csv
import io
import json
import os
import posixpath
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from peakclips import storage
from peakclips.manifest import ManifestError, ManifestRow, resolve_local
from peakclips.redact import redact_uri

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".qt", ".3gp", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg",
                  ".mpeg", ".vob", ".flv", ".ogv", ".ogg", ".wmv", ".asf", ".ivf", ".h264", ".264", ".hevc", ".265"}
TABLE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
                 ".ndjson": "jsonl", ".json": "jsonl"}
MAX_TABLE_BYTES = 4 << 30  # a table is read whole; a million rows of a few hundred bytes is far below


def sniff(head: bytes) -> bool:
    """Whether the first bytes of a file are those of a media container `video.open_media`
    reads (MP4/MOV, Matroska/WebM, AVI, MPEG-TS, MPEG-PS, Ogg, FLV, ASF, IVF).

    >>> sniff(b"\\x00\\x00\\x00\\x18ftypmp42"), sniff(b"\\x1aE\\xdf\\xa3"), sniff(b"#EXTM3U\\n")
    (True, True, False)
    """
    return (head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")
            or head.startswith((b"\x1a\x45\xdf\xa3", b"OggS", b"FLV\x01", b"DKIF", b"\x00\x00\x01\xba",
                                b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"))
            or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
            or (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47))


@dataclass(frozen=True)
class Columns:
    """Which table column holds each manifest field."""

    video_id: str = "video_id"
    uri: str = "uri"
    source: str = "source"
    license: str = "license"
    queries: str = "queries"


@dataclass
class Built:
    rows: list[dict] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """(file, reason) for every file of a folder or prefix left out."""

    def report(self, limit: int = 20) -> str:
        """What was written and what was left out, by reason, with the first few files."""
        lines = [f"{len(self.rows)} video(s); {len(self.skipped)} file(s) skipped"]
        for reason, n in sorted(Counter(r for _, r in self.skipped).items()):
            lines.append(f"  {n} {reason}")
        lines += [f"  skipped {redact_uri(f)}: {r}" for f, r in self.skipped[:limit]]
        if len(self.skipped) > limit:
            lines.append(f"  ... and {len(self.skipped) - limit} more")
        return "\n".join(lines)


def table_format(uri: str) -> str | None:
    """"csv", "tsv", "parquet" or "jsonl" for a table file by its suffix; None for anything else."""
    return TABLE_FORMATS.get(os.path.splitext(uri.rstrip("/"))[1].lower())


def build(sources: list[str], columns: Columns = Columns(), license: str | None = None,
          source: str | None = None) -> Built:
    """The manifest rows of `sources`, in order (see the module docstring)."""
    built = Built()
    seen: dict[str, str] = {}
    for src in sources:
        for row in _rows_of(src, columns, built):
            row = {k: v for k, v in row.items() if v not in (None, [], "")}
            row.setdefault("license", license)
            row.setdefault("source", source)
            row = {k: v for k, v in row.items() if v is not None}
            if row["video_id"] in seen:
                built.skipped.append((row["uri"], f"duplicate video id (also {redact_uri(seen[row['video_id']])})"))
                continue
            seen[row["video_id"]] = row["uri"]
            built.rows.append(row)
    if not built.rows:
        raise ManifestError(f"no videos in {', '.join(redact_uri(s) for s in sources)}\n{built.report()}")
    return built


def _rows_of(src: str, columns: Columns, built: Built) -> Iterator[dict]:
    kind = table_format(src)
    fs, path = storage.fs_and_path(src)
    if kind and fs.isfile(path):
        yield from read_table(src, columns)
    elif fs.isdir(path):
        yield from _files(src, fs, path.rstrip("/"), built)
    else:
        raise ManifestError(f"{redact_uri(src)}: not a folder, a prefix with files, or a table "
                            f"({', '.join(sorted(TABLE_FORMATS))})")


def _files(src: str, fs, root: str, built: Built) -> Iterator[dict]:
    local = storage.protocol(src) in ("", "file")
    proto = storage.protocol(src)
    for path, info in sorted(fs.find(root, detail=True, withdirs=False).items()):
        rel = path[len(root):].lstrip("/")
        uri = path if local else f"{proto}://{path}"
        if any(part.startswith(".") for part in rel.split("/")):
            built.skipped.append((uri, "hidden"))
            continue
        by_name = os.path.splitext(rel)[1].lower() in VIDEO_SUFFIXES
        if not info.get("size"):
            built.skipped.append((uri, "empty file"))
            continue
        if local:  # a few bytes from a local file are cheap; from a bucket they are one request each
            try:
                with open(path, "rb") as f:
                    media = sniff(f.read(200)) if os.path.isfile(path) else False
            except OSError as e:
                built.skipped.append((uri, f"unreadable ({e.strerror})"))
                continue
            if not media:
                built.skipped.append((uri, "not a video (its first bytes are no media container's)"))
                continue
        elif not by_name:
            built.skipped.append((uri, "not a video file name (" + ", ".join(sorted(VIDEO_SUFFIXES)[:6]) + ", ...)"))
            continue
        yield {"video_id": rel, "uri": uri}


def read_table(uri: str, columns: Columns = Columns()) -> Iterator[dict]:
    """The manifest rows of a CSV, TSV, Parquet or JSON-lines table, in order, each checked as
    a manifest row; ManifestError names the table row (1 = the first row of data)."""
    kind = table_format(uri)
    data = storage.read_bytes(uri, MAX_TABLE_BYTES)
    base = Path(uri).resolve().parent if storage.protocol(uri) in ("", "file") else None
    for number, record in enumerate(_records(data, kind, uri), 1):
        row = _mapped(record, columns)
        if row.get("uri") and base is not None:
            row["uri"] = resolve_local(row["uri"], base)
        if not row.get("video_id") and row.get("uri"):
            row["video_id"] = row["uri"].split("://", 1)[-1]
        try:
            ManifestRow.model_validate({k: v for k, v in row.items() if v is not None})
        except ValidationError as e:
            err = e.errors()[0]
            name = getattr(columns, str(err["loc"][0]), "") if err["loc"] else ""
            raise ManifestError(f"{redact_uri(uri)} row {number}: {name or 'row'}: {err['msg']}") from None
        yield row


def _records(data: bytes, kind: str, uri: str) -> Iterator[dict]:
    if kind == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            yield from pq.read_table(pa.BufferReader(data)).to_pylist()
        except pa.ArrowException as e:
            raise ManifestError(f"{redact_uri(uri)}: not a Parquet table ({e})") from None
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ManifestError(f"{redact_uri(uri)}: not UTF-8 text") from None
    if kind == "jsonl":
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as e:
                    raise ManifestError(f"{redact_uri(uri)} row {number}: not valid JSON ({e.msg})") from None
        return
    yield from csv.DictReader(io.StringIO(text), delimiter="\t" if kind == "tsv" else ",")


def _mapped(record: dict, columns: Columns) -> dict:
    if not isinstance(record, dict):
        return {}
    row = {name: record.get(column) for name, column in vars(columns).items()}
    row = {k: (str(v) if v is not None and k != "queries" else v) for k, v in row.items()}
    queries = row.get("queries")
    if isinstance(queries, str):
        text = queries.strip()
        row["queries"] = (json.loads(text) if text.startswith("[") else [text]) if text else []
    extra = {k: record[k] for k in ("qa", "metadata") if k in record and k not in vars(columns).values()}
    return {**row, **extra}


def write(built: Built, out: str) -> None:
    storage.write_atomic(out, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in built.rows).encode())


@contextmanager
def local_manifest(manifest: str, columns: Columns = Columns()) -> Iterator[str]:
    """A local JSON-lines manifest for `peakclips run`: `manifest` itself when it is one, else a
    temporary copy (a manifest on object storage) or conversion (a CSV, TSV or Parquet table),
    named after it, removed afterwards."""
    kind = table_format(manifest)
    remote = storage.protocol(manifest) not in ("", "file")
    if kind in (None, "jsonl") and not remote:
        yield manifest
        return
    folder = manifest.rstrip("/").rsplit("/", 1)[0] if remote else None
    with tempfile.TemporaryDirectory(prefix="peakclips-manifest-") as tmp:
        local = os.path.join(tmp, os.path.basename(manifest.rstrip("/")) + ("" if kind in (None, "jsonl") else ".jsonl"))
        with open(local, "w", encoding="utf-8") as f:
            if kind in (None, "jsonl"):  # line for line, so manifest errors keep their line numbers
                for line in storage.read_bytes(manifest).decode("utf-8", errors="replace").splitlines():
                    try:
                        row = json.loads(line)
                        row["uri"] = rebase(row["uri"], folder)
                        line = json.dumps(row, ensure_ascii=False)
                    except (json.JSONDecodeError, TypeError, KeyError):
                        pass  # left for the manifest reader to name
                    f.write(line + "\n")
            else:
                for row in read_table(manifest, columns):
                    row["uri"] = rebase(row["uri"], folder) if folder else row["uri"]
                    f.write(json.dumps({k: v for k, v in row.items() if v is not None}, ensure_ascii=False) + "\n")
        yield local


def rebase(uri, folder: str | None):
    """A relative path in a manifest on object storage is relative to the manifest's folder there.

    >>> rebase("clips/a.mp4", "s3://b/lists"), rebase("../v/a.mp4", "s3://b/lists"), rebase("/data/a.mp4", "s3://b")
    ('s3://b/lists/clips/a.mp4', 's3://b/v/a.mp4', '/data/a.mp4')
    """
    if folder is None or not isinstance(uri, str) or not uri or "://" in uri or uri.startswith(("/", "~")):
        return uri
    head, _, key = folder.partition("://")[2].partition("/")
    return f"{storage.protocol(folder)}://{head}/" + posixpath.normpath(posixpath.join(key, uri)).lstrip("/")
