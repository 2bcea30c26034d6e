"""`peakclips scenes VIDEO`: stages 1-3 on one local file, for looking at what the pipeline sees.

It calls the same functions as the pipeline (`check_video` of the ingest stage, `preprocess` of
the scenes stage) with the same config, prints the probe and the scenes, and with
`--frames-dir` writes the T candidate frames and the m frames per scene as JPEGs named by
index and timestamp. A video the pipeline would reject raises VideoError with its row error
code (`ingest:no_video_stream`): for this command that is the finding (exit 1), not a crash.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from peakclips.config import RunConfig
from peakclips.errors import VideoError
from peakclips.redact import redact_uri


def scenes_report(video: str, cfg: RunConfig):
    """Probe + one decode pass: (a dict for JSON, the `Preprocessed` result with the frames).
    Raises VideoError with a stage-prefixed code."""
    from peakclips.stages.ingest import check_video
    from peakclips.stages.scenes import preprocess

    started = time.perf_counter()
    try:
        info = check_video(video, cfg.ingest)
    except VideoError as e:
        raise VideoError(f"ingest:{e.code}", e.detail) from None
    try:
        out = preprocess(video, info.duration_s, info.fps, info.width, info.height, cfg.scenes, cfg.frames)
    except VideoError as e:
        raise VideoError(f"scenes:{e.code}", e.detail) from None
    report = {
        "video": redact_uri(video),
        "probe": asdict(info),
        "detector": cfg.scenes.detector,
        "duration_s": round(out.duration_s, 4),
        "decoded_frames": out.decoded_frames,
        "truncated": out.truncated,
        "cut_times_s": [round(c, 4) for c in out.cut_times_s],
        "scenes": out.scenes,
        "candidate_times_s": out.frame_times_s,
        "scene_frame_times_s": out.scene_frame_times,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return report, out


def write_frames(out, folder: str) -> int:
    """Candidates as candidates/NNN_SECONDS.jpg, scene frames as scenes/SSSS_K_SECONDS.jpg."""
    from peakclips.video import decode_mp4, encode_jpeg

    root = Path(folder)
    (root / "candidates").mkdir(parents=True, exist_ok=True)
    (root / "scenes").mkdir(parents=True, exist_ok=True)
    written = 0
    for i, (img, t) in enumerate(zip(decode_mp4(out.candidates_mp4), out.frame_times_s)):
        (root / "candidates" / f"{i:03d}_{t:09.3f}s.jpg").write_bytes(encode_jpeg(img))
        written += 1
    for s, (jpegs, times) in enumerate(zip(out.scene_frames, out.scene_frame_times)):
        for k, (data, t) in enumerate(zip(jpegs, times)):
            (root / "scenes" / f"{s:04d}_{k}_{t:09.3f}s.jpg").write_bytes(data)
            written += 1
    return written


def format_report(report: dict) -> str:
    p = report["probe"]
    lines = [
        f"{report['video']}: {p['codec']} {p['width']}x{p['height']} {p['fps']:.3f} fps, "
        f"{report['duration_s']:.3f} s, {report['decoded_frames']} frames decoded"
        + (" (TRUNCATED: decodes to less than its header says)" if report["truncated"] else ""),
        f"{len(report['scenes'])} scenes ({report['detector']} detector, {len(report['cut_times_s'])} cuts) "
        f"in {report['seconds']:.2f} s",
    ]
    for s in report["scenes"]:
        lines.append(f"  {s['scene_id']:4d}  {s['start_s']:9.3f} - {s['end_s']:9.3f} s  "
                     f"frames {s['start_frame']} - {s['end_frame']}")
    return "\n".join(lines)
