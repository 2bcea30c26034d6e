"""Where a video comes from: the checks on a manifest URI and the fetch that follows them.

Security rules (SPEC section 7, docs/security.md): only local paths under `ingest.allowed_roots`
and http(s) URLs are accepted, and a URI that cannot be parsed is the `bad_uri` error. Downloads
(peakclips/download.py) are checked, pinned to the checked address, and capped in bytes and
wall-clock time. Used by the ingest stage and by every command that opens a manifest's URI
(`peakclips frames --manifest`), so both apply the same checks; a shared helper, not a stage.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from peakclips import storage
from peakclips.config import IngestConfig
from peakclips.download import download
from peakclips.errors import VideoError


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
