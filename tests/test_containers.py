"""Only single-file media are decoded (SPEC section 7): FFmpeg's playlist and concat demuxers
follow references, so an HLS playlist or an ffconcat list inside the allowed roots (or
downloaded from an allowed host) could make the pipeline decode a file outside them. Every
place that opens media refuses them (`video.open_media`): ingest's probe, the decode pass,
`peakclips scenes`, `frames --video`, the shard readers.

The file "outside the roots" is a FIFO: opening it for reading is what the refusal must prevent,
and a FIFO tells whether anyone did.
"""

import json
import os
import subprocess
import sys
import threading

import pytest

from peakclips.config import IngestConfig
from peakclips.errors import VideoError
from peakclips.stages.ingest import Ingest
from peakclips.video import decode_mp4, iter_frames, open_media, probe
from tests.conftest import REPO
from tests.loopback import send, serve

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"


class Outside:
    """A FIFO outside the roots, fed the bytes of a real clip by a thread once someone opens it."""

    def __init__(self, path):
        self.path = path
        os.mkfifo(path)
        self.opened = threading.Event()
        self.thread = threading.Thread(target=self._feed, daemon=True)
        self.thread.start()

    def _feed(self):
        try:
            with open(self.path, "wb") as f:  # blocks until a reader opens the FIFO
                self.opened.set()
                f.write(CLIP.read_bytes())
        except (BrokenPipeError, OSError):
            pass

    def release(self):
        if not self.opened.is_set():  # let the feeder thread end: open (and close) the FIFO ourselves
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
        self.thread.join(5)


@pytest.fixture
def layout(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    secret = Outside(str(outside / "secret.mp4"))
    (root / "inside.mp4").write_bytes(CLIP.read_bytes())
    yield root, outside / "secret.mp4", secret
    was_opened = secret.opened.is_set()
    secret.release()
    assert not was_opened, "a file outside the roots was opened"


def hls(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXTINF:10.0,\n{target}\n#EXT-X-ENDLIST\n"


def playlists(root, secret):
    """name -> text of every referencing container tried (written under `root`)."""
    return {
        "file_url.m3u8": hls(f"file://{secret}"),
        "absolute.m3u8": hls(str(secret)),
        "sub/dotdot.m3u8": hls(os.path.relpath(secret, root / "sub")),
        "renamed_playlist.mp4": hls(f"file://{secret}"),
        "no_extension": hls(str(secret)),
        "list.ffconcat": "ffconcat version 1.0\nfile 'inside.mp4'\n",
        "renamed_list.mp4": "ffconcat version 1.0\nfile 'inside.mp4'\n",
    }


NAMES = ["file_url.m3u8", "absolute.m3u8", "sub/dotdot.m3u8", "renamed_playlist.mp4", "no_extension",
         "list.ffconcat", "renamed_list.mp4"]


@pytest.mark.parametrize("name", NAMES)
def test_ingest_refuses_playlists_and_concat_lists_inside_the_roots(layout, tmp_path, name):
    root, secret, _ = layout
    (root / name).write_text(playlists(root, secret)[name])
    row = {"uri": str(root / name), "shard_id": 0, "key": "k", "error": None}
    out = Ingest(IngestConfig(allowed_roots=[str(root)]), str(tmp_path / "scratch"))(row)
    assert out["error"] == "ingest:unsupported_container", (out["error"], out["error_detail"])
    assert str(tmp_path) not in out["error_detail"]


@pytest.mark.parametrize("path", ["/video.m3u8", "/video.mp4", "/video"])
def test_a_playlist_downloaded_from_an_allowed_host_is_refused(layout, tmp_path, path):
    root, secret, _ = layout
    with serve(lambda h: send(h, hls(f"file://{secret}").encode())) as (base, _):
        row = {"uri": base + path, "shard_id": 0, "key": "k", "error": None}
        out = Ingest(IngestConfig(allow_hosts=["127.0.0.1"]), str(tmp_path / "scratch"))(row)
    assert out["error"] == "ingest:unsupported_container", (out["error"], out["error_detail"])


@pytest.mark.parametrize("opener", ["probe", "iter_frames", "open_media_bytes", "decode_mp4"])
def test_every_opener_refuses_a_playlist(layout, opener):
    root, secret, _ = layout
    path = root / "p.m3u8"
    path.write_text(hls(f"file://{secret}"))
    with pytest.raises(VideoError) as e:
        if opener == "probe":
            probe(str(path))
        elif opener == "iter_frames":
            list(iter_frames(str(path)))
        elif opener == "open_media_bytes":
            with open_media(path.read_bytes()):
                pass
        else:
            decode_mp4(path.read_bytes())
    assert e.value.code in ("unsupported_container", "not_a_video")


def test_the_scenes_tool_refuses_a_playlist(layout):
    root, secret, _ = layout
    path = root / "p.m3u8"
    path.write_text(hls(f"file://{secret}"))
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "scenes", str(path), "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 1 and json.loads(proc.stdout)["error"] == "ingest:unsupported_container"


def test_real_single_file_containers_still_open(tmp_path):
    from tests import media

    for name, maker in [("a.mp4", lambda p: media.make_cuts_clip(p, (10,), 24)),
                        ("b.webm", lambda p: media.make_codec_clip(p, "vp9")),
                        ("c.avi", lambda p: media.make_codec_clip(p, "mpeg4"))]:
        info = maker(tmp_path / name)
        assert probe(info.path).n_frames == info.n_frames
