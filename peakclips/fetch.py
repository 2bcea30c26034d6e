"""Where a video comes from: the checks on a manifest URI and the fetch that follows them.

Security rules (SPEC section 7, docs/security.md): only local paths under `ingest.allowed_roots`,
http(s) URLs, and object-storage URIs under `ingest.allowed_prefixes` are accepted, and a URI that
cannot be parsed is the `bad_uri` error. The prefix check is on the text of the URI, before any
request. Downloads (peakclips/download.py) are checked, pinned to the checked address, and capped
in bytes and wall-clock time; object-storage files are copied to scratch with the same caps. Used by the ingest stage and by every command that opens a manifest's URI
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
from peakclips.download import check_object, download, download_object
from peakclips.errors import VideoError
from peakclips.redact import redact_uri


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


def check_prefix(uri: str, allowed_prefixes: list[str]) -> str:
    """The object-storage URI (protocol lower-cased) if it lies under an allowed prefix, else
    `ingest:prefix_not_allowed`; decided on the text alone, so a refused URI costs no request."""
    normal = storage.check_object_uri(uri)
    for prefix in allowed_prefixes:
        if normal.startswith(storage.check_object_uri(prefix).rstrip("/") + "/"):
            return normal
    raise VideoError("prefix_not_allowed", f"{redact_uri(uri)} is outside ingest.allowed_prefixes")


def source_kind(uri: str) -> str:
    """"local", "http" or "object" (s3://, gs://, hf://, ...: storage.OBJECT_STORES) for a URI
    ingest accepts; `ingest:bad_uri` for one that cannot be parsed (decided: a row error, like any
    other bad source, not a manifest error that would stop the whole run),
    `ingest:scheme_not_allowed` for other schemes."""
    if any(ord(c) < 32 or ord(c) == 127 for c in uri):
        raise VideoError("bad_uri", "the URI holds a control character")
    if storage.protocol(uri) in storage.OBJECT_STORES:
        try:
            storage.check_object_uri(uri)
        except ValueError as e:
            raise VideoError("bad_uri", str(e)) from None
        return "object"
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
    raise VideoError("scheme_not_allowed", f"scheme '{scheme}' is not http, https, a local path or an object "
                     f"store ({', '.join(storage.OBJECT_STORES)})")


def local_path(uri: str) -> str:
    """The file system path of a local URI (a path, or file:///path with %-escapes)."""
    if uri[:7].lower() == "file://":
        return url2pathname(urlsplit(uri).path)
    return uri


def fetch(uri: str, cfg: IngestConfig, scratch_dir: str, name: str) -> str:
    """Where to read the video of `uri` from: its real path, when it is a local file under the
    roots, else the file in `scratch_dir` it was downloaded to (`name` plus a suffix); an
    object-storage file when `scratch_dir` is on object storage too: the file itself."""
    kind = source_kind(uri)
    if kind == "object":
        check_prefix(uri, cfg.allowed_prefixes)
        if storage.is_object_store(storage.fs_and_path(scratch_dir)[0]):
            # A copy into a scratch folder that is itself on object storage would be read in place
            # afterwards anyway: read the source in place (its size checked) and spare the copy.
            check_object(uri, cfg)
            return storage.check_object_uri(uri)
    if kind == "local":
        path = check_local_path(uri, cfg.allowed_roots)
        if os.path.getsize(path) == 0:
            raise VideoError("empty_file", f"{local_path(uri)} is 0 bytes")
        return path
    # The suffix only helps people looking at the scratch folder: letters and digits, never a
    # `::` or `/` that fsspec or the file system would read as more than a name.
    suffix = "." + (re.sub(r"[^a-z0-9]", "", Path(urlsplit(uri).path).suffix.lower())[:8] or "bin")
    path = storage.join(scratch_dir, name + suffix)
    (download_object if kind == "object" else download)(uri, path, cfg)
    return path
