"""How to store the T candidate frames of a sample (SPEC section 3: an H.264 `KEY.mp4` or JPEGs,
whichever is smaller and decodes faster): bytes, quality (PSNR against the scaled source
frames), encoding and decoding time per frame, for JPEG (Pillow) at two qualities and for
H.264 (x264 through PyAV, one thread, CRF 23) at four presets, and veryfast with the default
`frames.candidate_x264_params` (no inter sub-partition search).

Spacing matters: H.264 profits from similar consecutive frames. Three cases: T=256 over the
60 s mix (a frame every 0.23 s: a short clip), T=32 over the mix (every 1.9 s: the spacing of
T=256 over an 8-minute video, real footage), T=256 over the 10-minute synthetic video (every
2.3 s). Decoding is PyAV for H.264 (the pipeline and trainer's reader), Pillow for JPEG.
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np

from benchmarks.common import REPO
from peakclips.config import FramesConfig

CASES = [("mix 60 s, T=256", "mix", 256), ("mix 60 s, T=32", "mix", 32), ("synthetic 10 min, T=256", "long", 256)]
DEFAULT_PARAMS = FramesConfig().candidate_x264_params
# (format or x264 preset, JPEG quality or CRF, x264-params)
FORMATS = [("jpeg", 85, ""), ("jpeg", 90, ""), ("ultrafast", 23, ""), ("superfast", 23, ""), ("veryfast", 23, ""),
           ("veryfast", 23, DEFAULT_PARAMS), ("medium", 23, "")]


def candidates(video: str, t: int) -> list[np.ndarray]:
    """The frames the pipeline would store: T midpoints, scaled to the candidate size."""
    from peakclips.config import FramesConfig
    from peakclips.frametimes import frames_at
    from peakclips.spans import midpoints
    from peakclips.video import Scaler, fit_size, iter_frames, probe

    info = probe(video)
    size, scaler = fit_size(info.width, info.height, FramesConfig().candidate_size), Scaler()
    shown = frames_at(((d.time_s, d.frame) for d in iter_frames(video)), midpoints(0.0, info.duration_s, t),
                      convert=lambda frame: scaler.rgb(frame, *size))
    return [img for _, img in shown]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return 10 * np.log10(255 ** 2 / max(mse, 1e-9))


def encode(frames, fmt: str, q: int, params: str) -> tuple[list[bytes], float]:
    from PIL import Image

    from peakclips.video import Mp4Writer

    started = time.process_time()
    if fmt == "jpeg":
        out = []
        for img in frames:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="JPEG", quality=q)
            out.append(buf.getvalue())
    else:
        writer = Mp4Writer(frames[0].shape[1], frames[0].shape[0], crf=q, preset=fmt, extra_x264_params=params)
        for img in frames:
            writer.add(img)
        out = [writer.finish()]
    return out, time.process_time() - started


def decode(data: list[bytes], fmt: str) -> tuple[list[np.ndarray], float]:
    from PIL import Image

    from peakclips.video import decode_mp4

    started = time.process_time()
    if fmt == "jpeg":
        frames = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in data]
    else:
        frames = decode_mp4(data[0])
    return frames, time.process_time() - started


def main(out_dir) -> str:
    from benchmarks.bench_preprocess import long_videos

    videos = {"mix": str(REPO / "manifests/videos/blender_mix_60s_640x360.mp4"),
              "long": str(long_videos(Path(out_dir).resolve() / "media")["synthetic_10min"])}
    rows = []
    for label, video, t in CASES:
        frames = candidates(videos[video], t)
        for fmt, q, params in FORMATS:
            data, enc = encode(frames, fmt, q, params)
            back, dec = decode(data, fmt)
            name = f"JPEG q{q}" if fmt == "jpeg" else f"H.264 {fmt} crf {q}" + (f" {params}" if params else "")
            rows.append({"case": label, "format": name,
                         "kib_per_frame": sum(map(len, data)) / 1024 / t,
                         "psnr_db": float(np.mean([psnr(a, b) for a, b in zip(frames, back)])),
                         "encode_ms": enc * 1e3 / t, "decode_ms": dec * 1e3 / t})
    (Path(out_dir) / "candidate_storage.json").write_text(json.dumps(rows, indent=1))
    lines = ["| frames | format | KiB / frame | PSNR | encode ms / frame | decode ms / frame |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['format']} | {r['kib_per_frame']:.1f} | {r['psnr_db']:.2f} dB "
              f"| {r['encode_ms']:.2f} | {r['decode_ms']:.2f} |" for r in rows]
    return "\n".join(lines)
