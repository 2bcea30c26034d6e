"""Stage 1: what may be read, and the address checks (SPEC section 7).

Address checks resolve test names to private, link-local, metadata and public addresses through
a stubbed resolver; the only connections made are to a server on 127.0.0.1.
"""

import http.server
import os
import socket
import threading

import pytest

from peakclips import download
from peakclips.config import IngestConfig
from peakclips.download import vet
from peakclips.errors import VideoError
from peakclips.fetch import check_local_path
from peakclips.stages.ingest import Ingest
from tests.conftest import REPO

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"


def fake_resolver(table):
    def resolve(host, port, *a, **k):
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
                for ip in table[host]]
    return resolve


@pytest.mark.parametrize("ip", ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254",
                                "100.64.0.1", "0.0.0.0", "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1",
                                "224.0.0.1", "2001:0:4136:e378:8000:63bf:f5ff:fffe", "::10.0.0.1",
                                "64:ff9b::10.0.0.1", "64:ff9b:1::a00:1", "::ffff:169.254.169.254"])
def test_hosts_resolving_to_non_public_addresses_are_refused(monkeypatch, ip):
    monkeypatch.setattr(download, "resolve", fake_resolver({"videos.test": [ip]}))
    with pytest.raises(VideoError) as e:
        vet("https://videos.test/a.mp4", [])
    assert e.value.code == "host_not_allowed"


def test_any_private_address_among_several_refuses(monkeypatch):
    monkeypatch.setattr(download, "resolve", fake_resolver({"videos.test": ["93.184.216.34", "10.0.0.1"]}))
    with pytest.raises(VideoError, match="10.0.0.1"):
        vet("http://videos.test/a.mp4", [])


def test_public_address_passes(monkeypatch):
    monkeypatch.setattr(download, "resolve", fake_resolver({"videos.test": ["93.184.216.34"]}))
    vet("http://videos.test/a.mp4", [])  # resolution only: nothing is fetched


@pytest.mark.parametrize("uri, code", [("ftp://x/a.mp4", "scheme_not_allowed"), ("s3://b/a.mp4", "prefix_not_allowed"),
                                       ("file:///etc/passwd", "path_not_allowed"), ("/etc/passwd", "path_not_allowed")])
def test_other_schemes_and_paths_are_refused(tmp_path, uri, code):
    row = {"uri": uri, "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(allowed_roots=[str(REPO / "manifests/videos")]), str(tmp_path))(row)
    assert out["error"] == f"ingest:{code}"


def test_symlink_out_of_an_allowed_root_is_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "escape.mp4").symlink_to(CLIP)
    with pytest.raises(VideoError) as e:
        check_local_path(str(root / "escape.mp4"), [str(root)])
    assert e.value.code == "path_not_allowed"


def test_local_file_under_root_is_probed(tmp_path):
    row = {"uri": str(CLIP), "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(allowed_roots=[str(CLIP.parent)]), str(tmp_path))(row)
    assert out["error"] is None and out["width"] == 640 and out["codec"] == "h264"
    assert out["duration_s"] == pytest.approx(10.0, abs=0.05)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path == "/redirect-private":
            self.send_response(302)
            self.send_header("Location", "http://private.test/a.mp4")
            self.end_headers()
            return
        if self.path == "/redirect-ok":
            self.send_response(302)
            self.send_header("Location", "/video.mp4")
            self.end_headers()
            return
        data = CLIP.read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def http_server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_http_download_from_an_allowed_host(http_server, tmp_path):
    row = {"uri": http_server + "/redirect-ok", "shard_id": 3, "key": "k", "error": None}
    out = Ingest(IngestConfig(allow_hosts=["127.0.0.1"]), str(tmp_path))(row)
    assert out["error"] is None, out.get("error_detail")
    assert os.path.getsize(out["path"]) == CLIP.stat().st_size and out["path"].startswith(str(tmp_path))


def test_loopback_is_refused_without_allow_hosts(http_server, tmp_path):
    row = {"uri": http_server + "/video.mp4", "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(), str(tmp_path))(row)
    assert out["error"] == "ingest:host_not_allowed"


def test_redirect_to_a_private_host_is_refused(http_server, tmp_path, monkeypatch):
    real = download.resolve
    monkeypatch.setattr(download, "resolve", lambda h, *a, **k: fake_resolver({"private.test": ["10.0.0.5"]})(h, *a, **k)
                        if h == "private.test" else real(h, *a, **k))
    row = {"uri": http_server + "/redirect-private", "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(allow_hosts=["127.0.0.1"]), str(tmp_path))(row)
    assert out["error"] == "ingest:host_not_allowed"


def test_download_size_cap(http_server, tmp_path):
    row = {"uri": http_server + "/video.mp4", "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(allow_hosts=["127.0.0.1"], max_download_bytes=1000), str(tmp_path))(row)
    assert out["error"] == "ingest:too_large"
    assert not list(tmp_path.rglob("*.mp4"))  # nothing kept
