"""One real `peakclips run` (the CLI, local Ray) over a manifest that mixes good rows with rows of
every kind of hostile or broken input (SPEC section 7): the run exits 0, good rows are `ok`,
every bad row is a row error with its specific code, nothing outside the allowed roots is opened,
and no secret reaches any output, log line or the dataset card.

The servers are on 127.0.0.1; the one address check that needs another address uses [::1],
which is refused before any connection.
"""

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from tests.conftest import REPO, SAMPLE_CONFIG
from tests.loopback import send, serve
from tests.test_containers import Outside, hls

pytestmark = pytest.mark.slow

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"
SECRETS = ["hunter2", "SECRETSIG", "SECRETFRAG", "sk-peakclips-SECRET", "hf_peakclipsSECRET"]
HOSTILE_SOURCE = "Evil | Col\n# Heading <script>alert(1)</script> [x](http://e.test)"


def server(playlist: bytes):
    """How the loopback server answers: a good clip, a playlist, a 404, a gzip bomb, a trickle."""
    def answer(h):
        path = h.path.split("?")[0]
        if path.startswith("/good"):
            send(h, CLIP.read_bytes())
        elif path == "/playlist.m3u8":
            send(h, playlist)
        elif path == "/missing.mp4":
            send(h, b"no", 404)
        elif path == "/bomb.mp4":
            send(h, gzip.compress(bytes(64 << 20)), headers={"Content-Encoding": "gzip"})
        elif path == "/trickle.mp4":
            h.send_response(200)
            h.send_header("Content-Length", "100000")
            h.end_headers()
            for _ in range(60):
                h.wfile.write(b"\0")
                h.wfile.flush()
                time.sleep(0.25)
    return serve(answer)


def test_a_run_over_hostile_and_broken_rows_keeps_the_good_ones_and_no_secret(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    secret_video = Outside(str(outside / "secret.mp4"))
    for name in ("tears_of_steel_10s_640x360.mp4", "sintel_10s_640x360.mp4"):
        shutil.copy(REPO / "manifests/videos" / name, root / name)
    (root / "playlist.m3u8").write_text(hls(f"file://{outside / 'secret.mp4'}"))
    (root / "playlist_renamed.mp4").write_text(hls(str(outside / "secret.mp4")))
    (root / "list.ffconcat").write_text("ffconcat version 1.0\nfile 'sintel_10s_640x360.mp4'\n")
    (root / "text.mp4").write_text("not a video at all\n")
    (root / "escape.mp4").symlink_to(CLIP)  # a link out of the root
    refs = tmp_path / "reference"
    refs.mkdir()
    for vid, clip in [("tears", "tears_of_steel_10s"), ("sintel", "sintel_10s"), ("remote", "sintel_10s"),
                      ("remote_colons", "sintel_10s")]:
        ref = yaml.safe_load((REPO / "manifests/reference" / f"{clip}.yaml").read_text())
        (refs / f"{vid}.yaml").write_text(yaml.safe_dump(dict(ref, video_id=vid)))

    with server(hls(f"file://{outside / 'secret.mp4'}").encode()) as (base, _):
        port = base.rsplit(":", 1)[1]
        creds = f"http://ann:hunter2@127.0.0.1:{port}"
        sig = "?X-Amz-Signature=SECRETSIG#SECRETFRAG"
        rows = {  # video_id -> (uri, expected error; None = ok)
            "tears": (str(root / "tears_of_steel_10s_640x360.mp4"), None),
            "sintel": (str(root / "sintel_10s_640x360.mp4"), None),
            "remote": (f"{creds}/good.mp4{sig}", None),
            "remote_colons": (f"{base}/good.mp4::file:///etc/passwd", None),
            "bracket": (f"http://[::1/a.mp4{sig}", "ingest:bad_uri"),
            "port_range": ("http://ann:hunter2@videos.test:99999/a.mp4", "ingest:bad_uri"),
            "port_text": ("http://videos.test:abc/a.mp4", "ingest:bad_uri"),
            "control": ("http://videos.test/a\x01.mp4", "ingest:bad_uri"),
            "nul": (str(root / "a\x00b.mp4"), "ingest:bad_uri"),
            "file_host": ("file://elsewhere/etc/passwd", "ingest:bad_uri"),
            "idna": ("http://a..b/x.mp4", "ingest:bad_uri"),
            "chained_local": (str(root / "sintel_10s_640x360.mp4") + "::memory://x", "ingest:not_found"),
            "ftp": ("ftp://videos.test/a.mp4", "ingest:scheme_not_allowed"),
            "outside": ("/etc/hostname", "ingest:path_not_allowed"),
            "symlink": (str(root / "escape.mp4"), "ingest:path_not_allowed"),
            "hls": (str(root / "playlist.m3u8"), "ingest:unsupported_container"),
            "hls_renamed": (str(root / "playlist_renamed.mp4"), "ingest:unsupported_container"),
            "ffconcat": (str(root / "list.ffconcat"), "ingest:unsupported_container"),
            "hls_download": (f"{base}/playlist.m3u8", "ingest:unsupported_container"),
            "loopback6": (f"http://[::1]:{port}/good.mp4", "ingest:host_not_allowed"),
            "http_404": (f"{creds}/missing.mp4{sig}", "ingest:http_error"),
            "trickle": (f"{base}/trickle.mp4", "ingest:download_timeout"),
            "bomb": (f"{creds}/bomb.mp4{sig}", "ingest:too_large"),
            "text": (str(root / "text.mp4"), "ingest:not_a_video"),
            "queries": (str(root / "sintel_10s_640x360.mp4"), "ingest:too_many_queries"),
        }
        manifest = tmp_path / "m.jsonl"
        lines = []
        for vid, (uri, _) in rows.items():
            row = {"video_id": vid, "uri": uri, "source": HOSTILE_SOURCE, "license": "CC BY 3.0"}
            if vid == "queries":
                row["queries"] = [f"query {i}" for i in range(9)]
            lines.append(json.dumps(row))
        manifest.write_text("\n".join(lines) + "\n")

        out = tmp_path / "out"
        ray_tmp = tempfile.mkdtemp(prefix="pck", dir="/tmp")  # Ray's socket paths must stay short
        env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", RAY_TMPDIR=ray_tmp,
                   OPENAI_API_KEY="sk-peakclips-SECRET", HF_TOKEN="hf_peakclipsSECRET", PYTHONPATH=str(REPO))
        sets = [f"ingest.allowed_roots=[{root}]", "ingest.allow_hosts=[127.0.0.1]", "ingest.download_timeout_s=4",
                "ingest.max_download_bytes=16000000", "ingest.max_manifest_queries=4", "clip.enabled=false",
                "frames.num_candidates=32", f"annotator.reference_dir={refs}", "ray.num_cpus=2"]
        cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(manifest),
               "--output", str(out), *[a for s in sets for a in ("--set", s)]]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
            logs = "\n".join(p.read_text(errors="replace") for p in Path(ray_tmp).rglob("*")
                             if p.is_file() and p.suffix in (".log", ".out", ".err"))
        finally:
            shutil.rmtree(ray_tmp, ignore_errors=True)
    opened = secret_video.opened.is_set()
    secret_video.release()
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert not opened, "a file outside the roots was opened"

    index = pq.read_table(out / "peakclips-000000.parquet").to_pylist()
    got = {r["video_id"]: (r["error"], r["error_detail"]) for r in index}
    assert set(got) == set(rows)
    wrong = {vid: got[vid] for vid, (_, want) in rows.items() if got[vid][0] != want}
    assert not wrong, wrong
    assert {r["video_id"] for r in index if r["status"] == "ok"} == {"tears", "sintel", "remote", "remote_colons"}

    verify = subprocess.run([sys.executable, "-m", "peakclips.cli", "verify", str(out)], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=300)
    assert verify.returncode == 0, verify.stdout[-2000:]
    upload = subprocess.run([sys.executable, "-m", "peakclips.cli", "upload", str(out), "--repo-id", "t/hostile",
                             "--dry-run"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert upload.returncode == 0, upload.stderr[-2000:]
    card = (out / "README.md").read_text()
    table = card.split("## Sources")[1].split("\n\n")[1].strip().splitlines()
    assert len(table) == 3 and len(re.split(r"(?<!\\)\|", table[2])) == 5, table
    assert "<script>" not in card

    published = [p for p in out.rglob("*") if p.is_file()]
    texts = {str(p): p.read_bytes().decode("latin-1") for p in published}
    texts |= {"run stdout": proc.stdout, "run stderr": proc.stderr, "ray logs": logs, "verify": verify.stdout,
              "upload": upload.stdout + upload.stderr}
    leaks = {where: s for where, text in texts.items() for s in SECRETS if s in text}
    assert not leaks, leaks
    assert str(tmp_path) not in json.dumps([r["error_detail"] for r in index if r["video_id"] in
                                            ("trickle", "bomb", "hls_download", "http_404")])
