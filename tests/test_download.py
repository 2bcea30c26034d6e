"""Downloads (peakclips/download.py, SPEC section 7): a hard wall-clock limit, the connection
pinned to the checked address, the size cap on the wire and after decoding, and IPv6 forms that
carry a private IPv4 address. Real loopback servers (tests/loopback.py); other addresses only
through a stubbed resolver, never connected to."""

import gzip
import socket
import time
import tracemalloc
import zlib

import pytest

from peakclips import download
from peakclips.config import IngestConfig
from peakclips.errors import VideoError
from peakclips.stages.ingest import Ingest
from tests.conftest import REPO
from tests.loopback import send, serve

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"


def ingest(url, tmp_path, **cfg):
    row = {"uri": url, "shard_id": 0, "key": "k", "error": None}
    return Ingest(IngestConfig(**{"allow_hosts": ["127.0.0.1"], **cfg}), str(tmp_path / "scratch"))(row)


def trickle(handler):
    handler.send_response(200)
    handler.send_header("Content-Length", "100000")
    handler.end_headers()
    for _ in range(40):  # a byte every 0.25 s for 10 s: every byte would reset a read timeout
        handler.wfile.write(b"\0")
        handler.wfile.flush()
        time.sleep(0.25)


def test_the_download_timeout_is_a_hard_wall_clock_limit(tmp_path):
    with serve(trickle) as (base, _):
        started = time.monotonic()
        out = ingest(base + "/v.mp4", tmp_path, download_timeout_s=1.5)
        elapsed = time.monotonic() - started
    assert out["error"] == "ingest:download_timeout", out["error_detail"]
    assert elapsed < 3.0, elapsed
    assert not [p for p in (tmp_path / "scratch").rglob("*") if p.is_file()]  # no partial file left


def test_the_connection_goes_to_the_checked_address_not_a_second_answer(tmp_path, monkeypatch):
    """The resolver answers 127.0.0.1 first and 127.0.0.2 (where another server waits) after:
    a client that resolved the name again would fetch from the second server."""
    real = socket.getaddrinfo
    calls = []

    def rebinding(host, port, *a, **k):
        if host != "rebind.test":
            return real(host, port, *a, **k)
        calls.append(host)
        ip = "127.0.0.1" if len(calls) == 1 else "127.0.0.2"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(download, "resolve", rebinding)
    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    good = CLIP.read_bytes()
    with serve(lambda h: send(h, good)) as (base, seen):
        port = int(base.rsplit(":", 1)[1])
        with serve(lambda h: send(h, b"evil"), host="127.0.0.2", port=port) as (_, evil_seen):
            out = ingest(f"http://rebind.test:{port}/v.mp4?sig=abc", tmp_path)
    assert out["error"] is None, out["error_detail"]
    assert calls == ["rebind.test"] and evil_seen == []
    assert seen[0]["headers"]["Host"] == f"rebind.test:{port}" and seen[0]["path"] == "/v.mp4?sig=abc"
    assert (tmp_path / "scratch/000000/k.mp4").read_bytes() == good


def test_each_redirect_hop_is_pinned_and_checked(tmp_path, monkeypatch):
    real = socket.getaddrinfo
    names = {"a.test": "127.0.0.1", "b.test": "127.0.0.1", "private.test": "10.0.0.7"}

    def resolver(host, port, *a, **k):
        if host in names:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (names[host], port))]
        return real(host, port, *a, **k)

    monkeypatch.setattr(download, "resolve", resolver)

    def answer(h):
        if h.path == "/start":
            send(h, b"", 302, {"Location": f"http://b.test:{h.server.server_address[1]}/video.mp4"})
        elif h.path == "/to-private":
            send(h, b"", 302, {"Location": "http://private.test/video.mp4"})
        else:
            send(h, CLIP.read_bytes())

    with serve(answer) as (base, seen):
        port = base.rsplit(":", 1)[1]
        ok = ingest(f"http://a.test:{port}/start", tmp_path)
        refused = ingest(f"http://a.test:{port}/to-private", tmp_path)
    assert ok["error"] is None and [s["headers"]["Host"] for s in seen[:2]] == [f"a.test:{port}", f"b.test:{port}"]
    assert refused["error"] == "ingest:host_not_allowed"  # and private.test was never connected to


def _gzip_members_flood(h):
    member = gzip.compress(b"")
    h.send_response(200)
    h.send_header("Content-Encoding", "gzip")
    h.end_headers()  # no length: read until the server closes
    for _ in range(5 * 1024 * 1024 // len(member)):  # 5 MB on the wire that decode to nothing
        h.wfile.write(member)
    h.close_connection = True


def test_the_size_cap_counts_bytes_on_the_wire(tmp_path):
    with serve(_gzip_members_flood) as (base, _):
        out = ingest(base + "/v.mp4", tmp_path, max_download_bytes=1 << 20)
    assert out["error"] == "ingest:too_large" and "on the wire" in out["error_detail"]


def _bomb(layers: int) -> bytes:
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    data = b"".join(z.compress(b"\0" * (1 << 20)) for _ in range(256)) + z.flush()  # 256 MiB of zeros
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


@pytest.mark.parametrize("layers, encoding, code", [(1, "gzip", "too_large"), (2, "gzip, gzip", "unsupported_encoding")])
def test_a_gzip_bomb_is_stopped_without_expanding_in_memory(tmp_path, layers, encoding, code):
    body = _bomb(layers)
    with serve(lambda h: send(h, body, headers={"Content-Encoding": encoding})) as (base, _):
        tracemalloc.start()
        try:
            out = ingest(base + "/v.mp4", tmp_path, max_download_bytes=4 << 20)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert out["error"] == f"ingest:{code}", out["error_detail"]
    assert peak < 24 << 20, f"{peak / 2**20:.0f} MiB held while decoding"


def test_a_gzip_encoded_video_is_decoded(tmp_path):
    data = CLIP.read_bytes()
    with serve(lambda h: send(h, gzip.compress(data), headers={"Content-Encoding": "gzip"})) as (base, _):
        out = ingest(base + "/v.mp4", tmp_path, max_download_bytes=len(data) + 10)
    assert out["error"] is None and (tmp_path / "scratch/000000/k.mp4").read_bytes() == data


@pytest.mark.parametrize("ip", ["2002:0a00:0001::1", "2002:7f00:1::", "2002:a9fe:a9fe::",  # 6to4: 10/8, loopback, metadata
                                "2a00:1450::5efe:10.0.0.1"])  # ISATAP carrying 10.0.0.1
def test_ipv6_forms_that_carry_a_private_ipv4_are_refused(monkeypatch, ip):
    monkeypatch.setattr(download, "resolve", lambda h, p, *a, **k: [(socket.AF_INET6, socket.SOCK_STREAM, 6, "",
                                                                     (ip, p, 0, 0))])
    with pytest.raises(VideoError) as e:
        download.vet("https://videos.test/a.mp4", [])
    assert e.value.code == "host_not_allowed"


def test_a_6to4_address_of_a_public_ipv4_passes(monkeypatch):
    monkeypatch.setattr(download, "resolve", lambda h, p, *a, **k: [(socket.AF_INET6, socket.SOCK_STREAM, 6, "",
                                                                     ("2002:5db8:d822::1", p, 0, 0))])
    assert download.vet("https://videos.test/a.mp4", []) == "2002:5db8:d822::1"  # resolution only
