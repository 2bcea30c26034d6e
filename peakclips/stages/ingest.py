"""Stage 1, ingest: check where a video comes from, fetch it if remote, and probe it.

Security rules (SPEC section 7): only local paths under `ingest.allowed_roots` and http(s)
URLs are accepted; a URL whose host resolves to a loopback, private, link-local, reserved or
cloud-metadata address is refused, and the check is repeated on every redirect hop. Downloads
stop at a size and a time cap. Remote videos land in the scratch area (shared storage on a
cluster) so the next stage can run on any node.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from peakclips import shards, storage
from peakclips.config import IngestConfig
from peakclips.errors import VideoError
from peakclips.stages import Stage
from peakclips.video import probe

MAX_REDIRECTS = 5

# The resolver is a module attribute so tests can stub it: address checks are tested by
# resolving names to private or metadata addresses, never by connecting to them.
resolve = socket.getaddrinfo


def check_local_path(uri: str, allowed_roots: list[str]) -> str:
    """Return the real path if it lies under an allowed root, else raise `ingest:path_not_allowed`."""
    path = uri.removeprefix("file://")
    real = os.path.realpath(path)
    for root in allowed_roots:
        root_real = os.path.realpath(root)
        if real == root_real or real.startswith(root_real.rstrip(os.sep) + os.sep):
            if not os.path.exists(real):
                raise VideoError("not_found", f"no such file: {path}")
            return real
    raise VideoError("path_not_allowed", f"{path} is outside ingest.allowed_roots")


def _blocked(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def check_host(url: str, allow_hosts: list[str]) -> None:
    """Refuse a URL whose host resolves to any non-public address (all addresses are checked)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise VideoError("scheme_not_allowed", f"scheme '{parts.scheme}' is not http or https")
    host = parts.hostname
    if not host:
        raise VideoError("bad_url", f"no host in {url}")
    if host in allow_hosts:
        return
    try:
        infos = resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
    except socket.gaierror as e:
        raise VideoError("dns_failed", f"cannot resolve {host}: {e}") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if _blocked(ip):
            raise VideoError("host_not_allowed", f"{host} resolves to non-public address {ip}")


def download(url: str, dest_uri: str, cfg: IngestConfig) -> None:
    """Stream `url` to `dest_uri`, following redirects by hand so each hop is checked."""
    import httpx

    deadline = time.monotonic() + cfg.download_timeout_s
    try:
        with httpx.Client(follow_redirects=False, timeout=min(60.0, cfg.download_timeout_s)) as client:
            for _ in range(MAX_REDIRECTS + 1):
                check_host(url, cfg.allow_hosts)
                with client.stream("GET", url) as resp:
                    if resp.is_redirect:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise VideoError("http_error", f"HTTP {resp.status_code} for {_redact(url)}")
                    declared = int(resp.headers.get("content-length") or 0)
                    if declared > cfg.max_download_bytes:
                        raise VideoError("too_large", f"{declared} bytes > {cfg.max_download_bytes}")
                    _stream_to(resp, dest_uri, cfg.max_download_bytes, deadline)
                    return
    except httpx.TimeoutException:
        raise VideoError("download_timeout", f"no data in time from {_redact(url)}") from None
    except httpx.HTTPError as e:
        raise VideoError("download_failed", f"{type(e).__name__} fetching {_redact(url)}") from None
    raise VideoError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")


def _stream_to(resp, dest_uri: str, max_bytes: int, deadline: float) -> None:
    fs, path = storage.fs_and_path(dest_uri)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    tmp = path + ".part"
    size = 0
    try:
        with fs.open(tmp, "wb") as f:
            for chunk in resp.iter_bytes(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise VideoError("too_large", f"download passed {max_bytes} bytes")
                if time.monotonic() > deadline:
                    raise VideoError("download_timeout", "download passed ingest.download_timeout_s")
                f.write(chunk)
    except BaseException:
        fs.rm(tmp)  # never leave a partial download behind
        raise
    fs.mv(tmp, path)


def _redact(url: str) -> str:
    """Drop query strings (presigned URLs carry credentials there) from anything we print."""
    return url.split("?", 1)[0]


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
        scheme = urlsplit(uri).scheme
        if scheme in ("", "file"):
            path = check_local_path(uri, self.cfg.allowed_roots)
            if os.path.getsize(path) == 0:
                raise VideoError("empty_file", f"{path} is 0 bytes")
        elif scheme in ("http", "https"):
            suffix = Path(urlsplit(uri).path).suffix[:8] or ".bin"
            path = storage.join(shards.scratch_dir(self.scratch, row["shard_id"]), row["key"] + suffix)
            download(uri, path, self.cfg)
        else:
            raise VideoError("scheme_not_allowed", f"scheme '{scheme}' is not http, https or a local path")
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
