"""Stage 1, ingest: check where a video comes from, fetch it if remote, and probe it.

Security rules (SPEC section 7, docs/security.md): only local paths under `ingest.allowed_roots`
and http(s) URLs are accepted, and a URI that cannot be parsed is the row error `bad_uri`.
Downloads (peakclips/download.py) are checked, pinned to the checked address, and capped in
bytes and wall-clock time. Remote videos land in the scratch area (shared storage on a cluster)
so the next stage can run on any node. The probe opens single-file media only
(`video.open_media`): a playlist or concat list is `unsupported_container`.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from peakclips import storage
from peakclips.config import IngestConfig
from peakclips.download import download
from peakclips.errors import VideoError
from peakclips.stages import Stage
from peakclips.video import probe


def check_local_path(uri: str, allowed_roots: list[str]) -> str:
    """Return the real path if it lies under an allowed root, else raise `ingest:path_not_allowed`."""
    path = local_path(uri)
    real = os.path.realpath(path)
    for root in allowed_roots:
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
            if not os.path.exists(real):
                raise VideoError("not_found", f"no such file: {path}")
            return real
    raise VideoError("path_not_allowed", f"{path} is outside ingest.allowed_roots")


def source_kind(uri: str) -> str:
    """"local" or "http" for a URI ingest accepts; `ingest:bad_uri` for one that cannot be
    parsed (decided: a row error, like any other bad source, not a manifest error that would
    stop the whole run), `ingest:scheme_not_allowed` for other schemes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise VideoError("bad_uri", "the URI holds a control character")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - parses the port: raises on one out of range or not a number
    except ValueError as e:
        raise VideoError("bad_uri", f"cannot parse the URI: {e}") from None
    scheme = parts.scheme.lower()
    if scheme in ("", "file"):
        # Relative paths were resolved against the manifest's folder when it was read; one left
        # here would resolve against whatever folder a worker runs in.
        if scheme == "file" and (parts.netloc not in ("", "localhost") or parts.query or parts.fragment):
            raise VideoError("bad_uri", "a file URI is file:///absolute/path, with no host, query or fragment")
        if not os.path.isabs(local_path(uri)):
            raise VideoError("bad_uri", "a local path that is not absolute (or did not resolve)")
        return "local"
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise VideoError("bad_uri", "no host in the URL")
        return "http"
    raise VideoError("scheme_not_allowed", f"scheme '{scheme}' is not http, https or a local path")


def local_path(uri: str) -> str:
    """The file system path of a local URI (a path, or file:///path with %-escapes)."""
    if uri[:7].lower() == "file://":
        return url2pathname(urlsplit(uri).path)
    return uri


def fetch(uri: str, cfg: IngestConfig, scratch_dir: str, name: str) -> str:
    """Where to read the video of `uri` from: its real path, when it is a local file under the
    roots, else the file in `scratch_dir` it was downloaded to (`name` plus a suffix)."""
    if source_kind(uri) == "local":
        path = check_local_path(uri, cfg.allowed_roots)
        if os.path.getsize(path) == 0:
            raise VideoError("empty_file", f"{local_path(uri)} is 0 bytes")
        return path
    # The suffix only helps people looking at the scratch folder: letters and digits, never a
    # `::` or `/` that fsspec or the file system would read as more than a name.
    suffix = "." + (re.sub(r"[^a-z0-9]", "", Path(urlsplit(uri).path).suffix.lower())[:8] or "bin")
    path = storage.join(scratch_dir, name + suffix)
    download(uri, path, cfg)
    return path


def check_video(path: str, cfg: IngestConfig):
    """Probe a local video and apply the size and duration limits before any decoding."""
    info = probe(path, cfg.max_width, cfg.max_height)
    if info.duration_s > cfg.max_duration_s:
        raise VideoError("too_long", f"{info.duration_s:.0f} s > ingest.max_duration_s ({cfg.max_duration_s:.0f} s)")
    return info


class Ingest(Stage):
    name = "ingest"
    empty = {
        "path": "",
        "duration_s": 0.0,
        "fps": 0.0,
        "n_frames": 0,
        "width": 0,
        "height": 0,
        "codec": "",
    }

    def __init__(self, cfg: IngestConfig, scratch: str):
        self.cfg = cfg
        self.scratch = scratch

    def process(self, row: dict) -> dict:
        uri = row["uri"]
        manifest = json.loads(row.get("manifest") or "{}")
        asked = len(manifest.get("queries") or []) + len(manifest.get("qa") or [])
        if asked > self.cfg.max_manifest_queries:  # each costs LLM calls: refused before any work
            raise VideoError("too_many_queries", f"{asked} queries and qa items > ingest.max_manifest_queries "
                             f"({self.cfg.max_manifest_queries})")
        path = fetch(uri, self.cfg, storage.join(self.scratch, f"{row['shard_id']:06d}"), row["key"])
        info = check_video(path, self.cfg)
        return {
            "path": path,
            "duration_s": info.duration_s,
            "fps": info.fps,
            "n_frames": info.n_frames,
            "width": info.width,
            "height": info.height,
            "codec": info.codec,
        }
