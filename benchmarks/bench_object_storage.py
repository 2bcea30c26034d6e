"""Reading a 500 MB video from object storage: copied to scratch first (what ingest does,
`download.download_object`: one streamed GET within the size and time caps) against read in place
by the decoder (`video.open_media` on the s3:// URI: PyAV reads through an fsspec file, whose
reads become ranged GETs of s3fs's 50 MiB blocks).

Both against moto's S3 server on 127.0.0.1 (tests/s3_server.py), side by side, alternating, in
this process: the time until the video is probed (ingest's part) and until every packet has been
read (the decode pass reads every byte; decoding itself costs the same either way and is left
out), and the GET requests the server answered. The video: 10 s of 1080p testsrc2 at 40 Mbit/s
(x264 ultrafast), looped without re-encoding to 110 s, 518 MB, its index (moov) at the end as
ffmpeg writes it by default.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

REPS = 3


def make_video(out_dir: Path) -> Path:
    big = out_dir / "object_storage_500mb.mp4"
    if big.exists():
        return big
    seg = out_dir / "object_storage_seg.mp4"
    run = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    subprocess.run(run + ["-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30", "-t", "10", "-c:v", "libx264",
                          "-preset", "ultrafast", "-b:v", "40M", "-pix_fmt", "yuv420p", str(seg)], check=True)
    subprocess.run(run + ["-stream_loop", "10", "-i", str(seg), "-c", "copy", str(big)], check=True)
    seg.unlink()
    return big


def read_every_packet(source: str) -> int:
    from peakclips.video import open_media, video_stream

    with open_media(source) as container:
        return sum(p.size for p in container.demux(video_stream(container)))


def main(out_dir: Path) -> str:
    from tests.s3_server import MotoServer

    video = make_video(Path(out_dir))
    size = video.stat().st_size
    results: dict[str, list[dict]] = {"scratch": [], "in place": []}
    with MotoServer() as server:
        os.environ.update(server.env())
        import s3fs

        from peakclips.config import IngestConfig
        from peakclips.download import download_object
        from peakclips.video import probe

        fs = s3fs.S3FileSystem()
        fs.mkdir("bench-object-storage")
        fs.put_file(str(video), "bench-object-storage/video.mp4")
        uri = "s3://bench-object-storage/video.mp4"
        cfg = IngestConfig(allowed_prefixes=["s3://bench-object-storage/"], max_download_bytes=1 << 30)
        for rep in range(REPS):
            for how in (("scratch", "in place") if rep % 2 == 0 else ("in place", "scratch")):
                gets = len([r for r in server.requests("/video.mp4") if r[0] == "GET"])
                with tempfile.TemporaryDirectory() as tmp:
                    started = time.perf_counter()
                    source = uri
                    if how == "scratch":
                        source = os.path.join(tmp, "video.mp4")
                        download_object(uri, source, cfg)
                    probe(source)
                    probed = time.perf_counter() - started
                    read = read_every_packet(source)
                    total = time.perf_counter() - started
                assert read > 0.98 * size  # the packets are nearly all of the file
                results[how].append({"probed_s": probed, "total_s": total,
                                     "gets": len([r for r in server.requests("/video.mp4") if r[0] == "GET"]) - gets})
    (Path(out_dir) / "object_storage.json").write_text(json.dumps(results, indent=2))
    med = {how: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for how, runs in results.items()}
    rows = [f"| {how} | {m['probed_s']:.1f} | {m['total_s']:.1f} | {size / 1e6 / m['total_s']:.0f} | {m['gets']:.0f} |"
            for how, m in med.items()]
    ratio = med["in place"]["total_s"] / med["scratch"]["total_s"]
    return "\n".join([
        f"A {size / 1e6:.0f} MB MP4 (1080p, 110 s, index at the end) on moto's S3 server on 127.0.0.1; median "
        f"of {REPS} alternating runs each.", "",
        "| read | probed after (s) | every packet read after (s) | MB/s | GET requests |", "|---|---|---|---|---|",
        *rows, "", f"In place takes {ratio:.1f}x the time of copying to scratch first."])
