"""Fetching one remote video for ingest (stage 1), with the checks of SPEC section 7: over
http(s) (`download`), or from object storage under `ingest.allowed_prefixes` (`download_object`,
the same caps; below).

  - Addresses: the host is resolved once, and every address it resolves to must be public: not
    loopback, private, link-local, shared (100.64/10), reserved, multicast or unspecified, and
    not an IPv6 address that carries such an IPv4 address inside it (IPv4-mapped and -compatible,
    6to4, Teredo, ISATAP; NAT64's prefixes are reserved and refused whole). `ingest.allow_hosts`
    exempts a host name, or an address wherever a name resolves to it.
  - Pinning: the connection goes to the address that was checked, never to a second answer of
    the resolver (DNS rebinding): the request names the vetted IP, and carries the host name in
    `Host` and, for https, in the TLS server name (the certificate is checked against the name).
  - Redirects are followed by hand, each hop checked and pinned like the first (at most 5).
  - A hard wall-clock limit, `ingest.download_timeout_s`, on the whole download: a server that
    trickles one byte a second is cut at the deadline, not when some read finally times out.
  - A size cap, `ingest.max_download_bytes`, on the raw bytes on the wire and, when the server
    compresses anyway (we ask for `identity`), on the decoded bytes too; decoding is done here,
    a bounded step at a time, so a gzip bomb never expands in memory. Stacked or unknown
    encodings are refused.
  - No proxy, netrc or other environment settings (`trust_env=False`); a partial file is removed.

The resolver is a module attribute so tests can stub it: address checks are tested by resolving
names to private or metadata addresses, never by connecting to them.

Object storage (s3://, gs://, hf://, ...) is reached through fsspec with the backend's own
credentials and the run's `storage_options`; the prefix check happened before (peakclips/fetch.py).
The object's size comes from one HEAD and must be within `ingest.max_download_bytes` before a
byte is read; the bytes read are counted against it too (an object replaced meanwhile), and the
whole copy is held to `ingest.download_timeout_s`. Stores with an async fsspec backend (s3fs,
gcsfs) stream one GET, cancelled at the deadline; others are read 8 MiB at a time with the
deadline checked between reads. Streaming to scratch was measured against reading the object in
place through the decoder: copying is 5.6x faster for a 500 MB video (docs/benchmarks.md,
object_storage). When the scratch folder is itself on object storage, the copy would be read in
place too, so ingest only checks the object (`check_object`) and the decoder reads the source.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
import time
import zlib
from contextlib import contextmanager
from urllib.parse import unquote, urljoin, urlsplit

from peakclips import storage
from peakclips.config import IngestConfig
from peakclips.errors import VideoError
from peakclips.redact import redact_uri

MAX_REDIRECTS = 5
READ_SIZE = 1 << 16  # raw bytes read at a time; the decoder turns them into at most 1 MiB per step
DECODE_STEP = 1 << 20
OBJECT_READ = 8 << 20  # a read of an object-storage file (one ranged GET on a store without async)

resolve = socket.getaddrinfo

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries, in any of the forms that route to it."""
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]  # (server, client): traffic goes to the client
    value = int(ip)
    if value >> 32 == 0 and value > 1:  # IPv4-compatible ::a.b.c.d (deprecated)
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if (value >> 32) & 0xFFFFFFFF in (0x00005EFE, 0x02005EFE):  # ISATAP interface identifier
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def blocked(ip: IPAddress) -> bool:
    """True for any address a download must not reach (see the module docstring).

    >>> blocked(ipaddress.ip_address("2002:a9fe:a9fe::1")), blocked(ipaddress.ip_address("2002:5db8:d822::1"))
    (True, False)
    """
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    if inner is not None and blocked(inner):
        return True
    return not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified


def vet(url: str, allow_hosts: list[str]) -> str:
    """Check one hop's URL and return the address to connect to (the first one resolved)."""
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as e:
        raise VideoError("bad_uri", f"cannot parse {redact_uri(url)}: {e}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise VideoError("scheme_not_allowed", f"scheme '{parts.scheme}' is not http or https")
    host = parts.hostname
    if not host:
        raise VideoError("bad_uri", f"no host in {redact_uri(url)}")
    try:
        infos = resolve(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise VideoError("dns_failed", f"cannot resolve {host}: {e}") from None
    except UnicodeError as e:  # a name IDNA cannot encode (an empty or over-long label)
        raise VideoError("bad_uri", f"bad host name: {e}") from None
    ips = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not ips:
        raise VideoError("dns_failed", f"{host} resolves to no address")
    if host not in allow_hosts:
        for ip in ips:
            if blocked(ip) and str(ip) not in allow_hosts:
                raise VideoError("host_not_allowed", f"{host} resolves to non-public address {ip}")
    return str(ips[0])


def download(url: str, dest_uri: str, cfg: IngestConfig) -> None:
    """Stream `url` to `dest_uri` within `ingest.download_timeout_s` and `ingest.max_download_bytes`."""
    import httpx

    try:
        asyncio.run(asyncio.wait_for(_download(url, dest_uri, cfg), cfg.download_timeout_s))
    except (TimeoutError, httpx.TimeoutException):
        raise VideoError("download_timeout", f"{redact_uri(url)} took longer than ingest.download_timeout_s "
                         f"({cfg.download_timeout_s:g} s)") from None
    except httpx.InvalidURL as e:
        raise VideoError("bad_uri", f"cannot fetch {redact_uri(url)}: {e}") from None
    except httpx.HTTPError as e:
        raise VideoError("download_failed", f"{type(e).__name__} fetching {redact_uri(url)}") from None


async def _download(url: str, dest_uri: str, cfg: IngestConfig) -> None:
    import httpx

    timeout = httpx.Timeout(cfg.download_timeout_s)  # the hard limit is download()'s deadline
    # No connection reuse: a redirect to another name on the same address must get its own TLS
    # handshake, checked against its own name.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=timeout, limits=limits) as client:
        for _ in range(MAX_REDIRECTS + 1):
            ip = vet(url, cfg.allow_hosts)
            response = await client.send(pinned_request(client, url, ip), stream=True)
            try:
                if response.is_redirect:
                    url = urljoin(url, response.headers["location"])
                    continue
                if response.status_code != 200:
                    raise VideoError("http_error", f"HTTP {response.status_code} for {redact_uri(url)}")
                await _save(response, dest_uri, cfg.max_download_bytes)
                return
            finally:
                await response.aclose()
    raise VideoError("too_many_redirects", f"more than {MAX_REDIRECTS} redirects")


def pinned_request(client, url: str, ip: str):
    """A GET of `url` that connects to `ip`: the URL names the address, `Host` and the TLS
    server name (httpcore's `sni_hostname`) name the host. Credentials in the URL become basic
    auth, as in any client."""
    parts = urlsplit(url)
    address = f"[{ip}]" if ":" in ip else ip
    target = parts._replace(netloc=address + (f":{parts.port}" if parts.port else ""), fragment="").geturl()
    headers = {"Host": parts.netloc.rpartition("@")[2], "Accept-Encoding": "identity"}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return client.build_request("GET", target, headers=headers, extensions={"sni_hostname": parts.hostname})


async def _save(response, dest_uri: str, max_bytes: int) -> None:
    declared = int(response.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise VideoError("too_large", f"{declared} bytes > ingest.max_download_bytes ({max_bytes})")
    body = Body(response.headers.get("content-encoding", ""), max_bytes)
    # storage.writing removes the partial file on any exception, the deadline's cancellation too
    with storage.writing(dest_uri) as local, open(local, "wb") as f:
        async for raw in response.aiter_raw(READ_SIZE):
            for data in body.feed(raw):
                f.write(data)
        for data in body.finish():
            f.write(data)


def check_object(uri: str, cfg: IngestConfig):
    """(fs, path) of the object-storage file `uri` after one HEAD: it exists, is a file, is not
    empty and is within `ingest.max_download_bytes`."""
    with object_errors(uri, cfg):
        fs, path = storage.fs_and_path(uri)
        info = fs.info(path)
        if info.get("type") == "directory":
            raise VideoError("not_found", f"{redact_uri(uri)} is a folder, not a file")
        if not info.get("size"):
            raise VideoError("empty_file", f"{redact_uri(uri)} is 0 bytes")
        if info["size"] > cfg.max_download_bytes:
            raise VideoError("too_large", f"{info['size']} bytes > ingest.max_download_bytes ({cfg.max_download_bytes})")
    return fs, path


def download_object(uri: str, dest_uri: str, cfg: IngestConfig) -> None:
    """Copy the object-storage file `uri` to `dest_uri` within ingest's size and time caps."""
    from fsspec.asyn import AsyncFileSystem, sync

    deadline = time.monotonic() + cfg.download_timeout_s
    fs, path = check_object(uri, cfg)
    with object_errors(uri, cfg):
        body = Body("identity", cfg.max_download_bytes)
        with storage.writing(dest_uri) as local, open(local, "wb") as out:
            if isinstance(fs, AsyncFileSystem) and hasattr(fs, "open_async"):
                sync(fs.loop, _stream_object, fs, path, out, body, timeout=max(0.001, deadline - time.monotonic()))
            else:
                with fs.open(path, "rb", block_size=OBJECT_READ, cache_type="none") as f:
                    while data := f.read(OBJECT_READ):
                        out.writelines(body.feed(data))
                        if time.monotonic() > deadline:
                            raise TimeoutError


@contextmanager
def object_errors(uri: str, cfg: IngestConfig):
    """An object store's exceptions as ingest's row errors (details without credentials)."""
    from fsspec.exceptions import FSTimeoutError

    shown = redact_uri(uri)
    try:
        yield
    except (TimeoutError, FSTimeoutError):
        raise VideoError("download_timeout", f"{shown} took longer than ingest.download_timeout_s "
                         f"({cfg.download_timeout_s:g} s)") from None
    except FileNotFoundError:
        raise VideoError("not_found", f"no such object: {shown}") from None
    except PermissionError:
        raise VideoError("access_denied", f"the store refused to read {shown} (its credentials or policy)") from None
    except ImportError as e:  # fsspec names the package a protocol needs (s3fs, gcsfs, ...)
        raise VideoError("backend_missing", str(e)) from None
    except VideoError:
        raise
    except Exception as e:  # noqa: BLE001 - the backend's errors (no credentials, connection): the row's
        raise VideoError("download_failed", f"{type(e).__name__} reading {shown}") from None


async def _stream_object(fs, path: str, out, body: Body) -> None:
    """One GET, streamed (runs on the backend's event loop, cancelled there at the deadline)."""
    f = await fs.open_async(path, "rb")
    try:
        while data := await f.read(READ_SIZE * 16):
            out.writelines(body.feed(data))
    finally:
        if getattr(f, "r", None) is not None:  # the response body: give its connection back
            f.r.close()


class Body:
    """Counts the raw bytes of a response body and, for a gzip or deflate body, decodes it a
    bounded step at a time and counts the decoded bytes; both are held to `max_bytes`."""

    def __init__(self, encoding: str, max_bytes: int):
        self.encoding = encoding.strip().lower()
        if self.encoding not in ("", "identity", "gzip", "x-gzip", "deflate"):
            raise VideoError("unsupported_encoding", f"Content-Encoding '{encoding[:40]}' (only identity, gzip "
                             "or deflate; one of them)")
        self.max_bytes = max_bytes
        self.raw = self.decoded = 0
        self.z = self._decoder()

    def _decoder(self):
        if self.encoding in ("gzip", "x-gzip"):
            return zlib.decompressobj(16 + zlib.MAX_WBITS)
        return zlib.decompressobj() if self.encoding == "deflate" else None

    def _count(self, attr: str, n: int) -> None:
        total = getattr(self, attr) + n
        setattr(self, attr, total)
        if total > self.max_bytes:
            what = "on the wire" if attr == "raw" else "decoded"
            raise VideoError("too_large", f"download passed ingest.max_download_bytes ({self.max_bytes}) {what}")

    def feed(self, raw: bytes):
        self._count("raw", len(raw))
        if self.z is None:
            self._count("decoded", len(raw))
            yield raw
            return
        data = raw
        while data:
            try:
                out = self.z.decompress(data, DECODE_STEP)
            except zlib.error as e:
                raise VideoError("download_failed", f"the {self.encoding} body does not decode: {e}") from None
            self._count("decoded", len(out))
            yield out
            data = self.z.unconsumed_tail
            if self.z.eof and self.z.unused_data:  # gzip allows concatenated members
                data, self.z = self.z.unused_data, self._decoder()

    def finish(self):
        if self.z is not None:
            out = self.z.flush(DECODE_STEP)
            self._count("decoded", len(out))
            yield out
