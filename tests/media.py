"""Synthetic test videos with exactly known content (PyAV + numpy; nothing downloaded).

Every generator writes one file and returns a :class:`MediaInfo` describing what is in
it: path, fps, frame count, duration, size, codec, the ground-truth cuts and the
expected pipeline outcome (``kind``).  Tests and benchmarks compare what the
pipeline finds against these records.

Ground-truth conventions
------------------------
* ``cut_frames`` are the indices of the first frame of each new shot (0 excluded);
  ``cut_times_s`` are those frames' presentation times (``frame / fps`` for
  constant-frame-rate clips, the exact pts for the VFR clip).
* A *shot* is a smooth, coloured noise field plus a brightness gradient (hue chosen
  by a golden-ratio step, so consecutive shots always differ by ~137 degrees of
  hue), a slow "camera wobble" (the crop window drifts by <= 1 px/frame), a disc
  moving ~3 px/frame and mild film grain.  Inside a shot the mean absolute
  difference (MAD) between consecutive frames is a few grey levels; across a hard
  cut it is tens of grey levels, so detectors behave as on real footage.
* Fade (``make_fade_clip``): shot A fades out to black, stays black, shot B fades
  in.  It is ONE transition; its cut is the middle of the black run:
  ``cut = black_start + black_len // 2``.
* Dissolve (``make_dissolve_clip``): frames ``d0 .. d0+N-1`` are
  ``(1-a)*A + a*B`` with ``a = (i+1)/(N+1)``; the cut is the first frame with
  ``a >= 0.5``, i.e. ``d0 + N // 2``.
* Similar colours (``make_similar_colours_clip``): shot B's background is shot
  A's background with its tiles shuffled (a derangement), so the colour
  histogram is nearly identical but the structure differs: one true cut that a
  histogram detector tends to miss.
* Fast motion (``make_fast_motion_clip``) and flash (``make_flash_clip``): zero
  true cuts; they exist to produce false positives.

Real-world variants
-------------------
* Codecs: h264 (libx264, .mp4), vp8 / vp9 (libvpx, .webm), av1 (libsvtav1 or
  libaom-av1 if PyAV has one, else :class:`EncoderUnavailable`), mpeg4 part 2
  (.avi or .mp4).
* Odd sizes (e.g. 321x241): libx264 cannot encode 4:2:0 with odd dimensions, so
  h264 uses ``yuv444p`` (High 4:4:4 profile) when a dimension is odd; VP8, VP9,
  AV1 and MPEG-4 encode odd sizes in ``yuv420p`` directly.  ``pix_fmt`` records
  what was used.  No padding: the stored size is exactly the requested one.
* Rotation (``make_rotated_clip``): coded frames are stored sideways and the
  stream carries a display matrix (``VideoFrame.rotation == 90``, counter-
  clockwise).  Upright = ``np.rot90(decoded, rotation // 90)``; upright frames
  have a white band across the top and a red block in the top-left corner.
  ``width``/``height`` are the CODED size; ``extra["display_size"]`` the upright.
* VFR (``make_vfr_clip``): mp4, time_base 1/90000, segments at different rates
  (default 30, 10, 30 fps); ``extra["frame_pts"]`` lists every frame's pts.
* Truncated (``make_truncated_clip``): an mp4 with the moov atom first
  (faststart) cut in the middle of a packet; the header still claims
  ``n_frames`` (= ``extra["claimed_frames"]``) but only
  ``extra["decodable_frames"]`` decode, after which FFmpeg raises
  InvalidDataError (no B-frames, so the count is exact).
* Huge resolution: a real 8192x8192 H.264 stream of flat grey (~200 KB).
* Corrupt (``make_corrupt_clip``): a valid container whose video packets are
  random bytes; it probes, but no frame decodes.
* Not videos: audio-only (AAC/Opus sine), zero bytes, text named .mp4, random
  bytes.

``kind`` (expected outcome, descriptive; the pipeline maps it to its own codes):
``ok`` | ``empty_file`` | ``not_a_video`` | ``no_video_stream`` |
``decode_failed`` | ``too_large`` | ``missing_file``.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

# The shot renderer lives in the package: peakclips make-needle draws its haystacks with it.
from peakclips.synthetic import Shot as _Shot
from peakclips.synthetic import make_shot as _make_shot
from peakclips.synthetic import shot_hue as _shot_hue
from peakclips.synthetic import textured_canvas as _canvas

KINDS = ("ok", "empty_file", "not_a_video", "no_video_stream", "decode_failed",
         "too_large", "missing_file")

# short codec name -> candidate encoders (first available wins)
ENCODERS = {
    "h264": ("libx264",),
    "vp8": ("libvpx",),
    "vp9": ("libvpx-vp9",),
    "av1": ("libsvtav1", "libaom-av1", "librav1e"),
    "mpeg4": ("mpeg4",),
}
DEFAULT_EXT = {"h264": ".mp4", "vp8": ".webm", "vp9": ".webm", "av1": ".mp4",
               "mpeg4": ".avi"}
_CODEC_OF_ENCODER = {enc: name for name, encs in ENCODERS.items() for enc in encs}
# encoders that accept odd width/height in yuv420p (checked with PyAV 18.1)
_ODD_420_OK = {"libvpx", "libvpx-vp9", "mpeg4", "libsvtav1", "libaom-av1"}


class EncoderUnavailable(RuntimeError):
    """No encoder for the requested codec in this PyAV build."""


@dataclasses.dataclass
class MediaInfo:
    """What a generated file contains (the ground truth)."""

    path: str
    kind: str = "ok"
    fps: float = 0.0
    n_frames: int = 0
    duration_s: float = 0.0
    width: int = 0
    height: int = 0
    codec: str | None = None
    encoder: str | None = None
    pix_fmt: str | None = None
    rotation: int = 0
    cut_frames: list[int] = dataclasses.field(default_factory=list)
    cut_times_s: list[float] = dataclasses.field(default_factory=list)
    notes: str = ""
    extra: dict = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- writing

def _resolve_encoder(codec: str) -> tuple[str, str]:
    """'h264' or 'libx264' -> ('h264', 'libx264'); raises EncoderUnavailable."""
    if codec in ENCODERS:
        for enc in ENCODERS[codec]:
            if enc in av.codecs_available:
                return codec, enc
        raise EncoderUnavailable(
            f"no {codec} encoder in this PyAV build (tried {', '.join(ENCODERS[codec])})")
    if codec in _CODEC_OF_ENCODER:
        if codec not in av.codecs_available:
            raise EncoderUnavailable(f"encoder {codec} is not in this PyAV build")
        return _CODEC_OF_ENCODER[codec], codec
    raise ValueError(f"unknown codec {codec!r}; use one of {sorted(ENCODERS)}")


def available_codecs() -> dict[str, str | None]:
    """Short codec name -> encoder that will be used, or None if none is available."""
    return {name: next((e for e in encs if e in av.codecs_available), None)
            for name, encs in ENCODERS.items()}


def _pix_fmt(encoder: str, width: int, height: int) -> str:
    if width % 2 == 0 and height % 2 == 0 or encoder in _ODD_420_OK:
        return "yuv420p"
    if encoder == "libx264":
        return "yuv444p"
    raise ValueError(f"{encoder} cannot encode odd size {width}x{height}")


def _encoder_options(encoder: str, fast: bool) -> tuple[dict, int | None]:
    """(codec options, bit_rate) giving good quality at small sizes, quickly."""
    if encoder == "libx264":
        return {"preset": "ultrafast" if fast else "veryfast", "crf": "20"}, None
    if encoder in ("libvpx", "libvpx-vp9"):
        opts = {"deadline": "realtime", "cpu-used": "8"}
        if encoder == "libvpx-vp9":
            opts["row-mt"] = "1"
        return opts, 1_500_000
    if encoder == "libsvtav1":
        return {"preset": "12"}, None
    if encoder == "libaom-av1":
        return {"cpu-used": "8", "usage": "realtime"}, 1_000_000
    if encoder == "mpeg4":
        return {}, 2_000_000
    return {}, None


def _write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], *, fps,
                 size: tuple[int, int], encoder: str, fast: bool = False,
                 rotation: int = 0, pts: Sequence[int] | None = None,
                 time_base: Fraction | None = None, extra_options: dict | None = None,
                 container_options: dict | None = None) -> str:
    """Encode rgb24 frames one at a time (constant memory). Returns the pix_fmt used."""
    width, height = size
    pix_fmt = _pix_fmt(encoder, width, height)
    options, bit_rate = _encoder_options(encoder, fast)
    options.update(extra_options or {})
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(encoder, rate=Fraction(fps).limit_denominator(1001),
                                      options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if bit_rate:
            stream.bit_rate = bit_rate
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return pix_fmt


def _info(path, *, fps, n_frames, size, codec, encoder, pix_fmt, cut_frames,
          notes, **kw) -> MediaInfo:
    fps_f = float(fps)
    cuts = [int(c) for c in cut_frames]
    return MediaInfo(path=str(path), fps=fps_f, n_frames=n_frames,
                     duration_s=n_frames / fps_f, width=size[0], height=size[1],
                     codec=codec, encoder=encoder, pix_fmt=pix_fmt, cut_frames=cuts,
                     cut_times_s=[c / fps_f for c in cuts], notes=notes, **kw)


def _check_cuts(cut_frames: Sequence[int], n_frames: int) -> list[int]:
    cuts = sorted(int(c) for c in cut_frames)
    if len(set(cuts)) != len(cuts) or (cuts and (cuts[0] <= 0 or cuts[-1] >= n_frames)):
        raise ValueError(f"cut frames must be distinct and in 1..{n_frames - 1}: {cuts}")
    return cuts


def _shots_frames(cuts: Sequence[int], n_frames: int, size, seed: int,
                  **shot_kw) -> Iterable[np.ndarray]:
    """Frames of consecutive shots separated by hard cuts; one shot in memory at a time."""
    bounds = [0, *cuts, n_frames]
    for index, (start, stop) in enumerate(zip(bounds[:-1], bounds[1:], strict=True)):
        shot = _make_shot(seed, index, size, **shot_kw)
        for t in range(stop - start):
            yield shot.frame(t)


# --------------------------------------------------------------------------- hard cuts

def make_cuts_clip(path, cut_frames: Sequence[int] = (24, 60), n_frames: int = 96,
                   fps=24, size: tuple[int, int] = (320, 240), codec: str = "libx264",
                   seed: int = 0) -> MediaInfo:
    """Shots separated by hard cuts exactly at ``cut_frames`` (first frame of each shot)."""
    cuts = _check_cuts(cut_frames, n_frames)
    codec_name, encoder = _resolve_encoder(codec)
    pix_fmt = _write_video(path, _shots_frames(cuts, n_frames, size, seed), fps=fps,
                           size=size, encoder=encoder)
    return _info(path, fps=fps, n_frames=n_frames, size=size, codec=codec_name,
                 encoder=encoder, pix_fmt=pix_fmt, cut_frames=cuts,
                 notes=f"{len(cuts) + 1} shots, hard cuts; textured background, "
                       f"moving disc, wobble, grain")


def make_codec_clip(path, codec: str, cut_frames: Sequence[int] = (20, 44),
                    n_frames: int = 64, fps=24, size: tuple[int, int] = (320, 240),
                    seed: int = 0) -> MediaInfo:
    """A hard-cut clip in another codec: h264, vp8, vp9, av1 or mpeg4 (or an encoder name).

    Raises EncoderUnavailable when this PyAV has no encoder for ``codec`` (AV1 on some
    builds). Container follows the path's extension (see DEFAULT_EXT).
    """
    info = make_cuts_clip(path, cut_frames, n_frames, fps=fps, size=size, codec=codec,
                          seed=seed)
    info.notes += f"; codec {info.codec} via {info.encoder}, pix_fmt {info.pix_fmt}"
    return info


# --------------------------------------------------------------------------- hard cases

def make_fade_clip(path, shot_a: int = 30, fade_len: int = 8, black_len: int = 6,
                   shot_b: int = 30, fps=24, size=(320, 240), seed: int = 0) -> MediaInfo:
    """A fades to black, black, B fades in: one transition, cut = middle of the black."""
    if black_len < 1 or fade_len < 0:
        raise ValueError("need black_len >= 1 and fade_len >= 0")
    a, b = _make_shot(seed, 0, size), _make_shot(seed, 1, size)
    black_start = shot_a + fade_len
    fade_in_start = black_start + black_len
    n = fade_in_start + fade_len + shot_b

    def frames():
        for i in range(n):
            if i < shot_a:
                yield a.frame(i)
            elif i < black_start:
                gain = 1 - (i - shot_a + 1) / (fade_len + 1)
                yield (a.frame(i) * gain).astype(np.uint8)
            elif i < fade_in_start:
                yield np.zeros((size[1], size[0], 3), np.uint8)
            elif i < fade_in_start + fade_len:
                gain = (i - fade_in_start + 1) / (fade_len + 1)
                yield (b.frame(i - fade_in_start) * gain).astype(np.uint8)
            else:
                yield b.frame(i - fade_in_start)

    pix_fmt = _write_video(path, frames(), fps=fps, size=size, encoder="libx264")
    cut = black_start + black_len // 2
    return _info(path, fps=fps, n_frames=n, size=size, codec="h264", encoder="libx264",
                 pix_fmt=pix_fmt, cut_frames=[cut],
                 notes="fade out to black, black, fade in: ONE cut at the middle of "
                       "the black run",
                 extra={"fade_out_start": shot_a, "black_start": black_start,
                        "black_end": fade_in_start, "fade_in_end": fade_in_start + fade_len,
                        "transition": [shot_a, fade_in_start + fade_len]})


def make_dissolve_clip(path, shot_a: int = 30, dissolve_len: int = 12, shot_b: int = 30,
                       fps=24, size=(320, 240), seed: int = 0) -> MediaInfo:
    """Cross-dissolve A -> B over ``dissolve_len`` frames; cut = first frame with B >= 50 %."""
    if dissolve_len < 1:
        raise ValueError("dissolve_len must be >= 1")
    a, b = _make_shot(seed, 0, size), _make_shot(seed, 1, size)
    d0, n = shot_a, shot_a + dissolve_len + shot_b

    def frames():
        for i in range(n):
            if i < d0:
                yield a.frame(i)
            elif i < d0 + dissolve_len:
                alpha = (i - d0 + 1) / (dissolve_len + 1)
                mix = (1 - alpha) * a.frame(i) + alpha * b.frame(i - d0)
                yield np.round(mix).astype(np.uint8)
            else:
                yield b.frame(i - d0)

    pix_fmt = _write_video(path, frames(), fps=fps, size=size, encoder="libx264")
    return _info(path, fps=fps, n_frames=n, size=size, codec="h264", encoder="libx264",
                 pix_fmt=pix_fmt, cut_frames=[d0 + dissolve_len // 2],
                 notes="cross-dissolve; cut = dissolve midpoint (first frame with "
                       "B weight >= 0.5)",
                 extra={"dissolve_start": d0, "dissolve_end": d0 + dissolve_len,
                        "transition": [d0, d0 + dissolve_len]})


def _tile_derangement(img: np.ndarray, tiles: tuple[int, int],
                      rng: np.random.Generator) -> np.ndarray:
    """Shuffle the image's tiles so that no tile stays in place (same pixels, new layout)."""
    ty, tx = tiles
    h, w = img.shape[0] // ty * ty, img.shape[1] // tx * tx
    th, tw = h // ty, w // tx
    blocks = img[:h, :w].reshape(ty, th, tx, tw, 3).swapaxes(1, 2).reshape(ty * tx, th, tw, 3)
    n = ty * tx
    perm = rng.permutation(n)
    while np.any(perm == np.arange(n)):  # a derangement: every tile moves
        perm = rng.permutation(n)
    shuffled = blocks[perm].reshape(ty, tx, th, tw, 3).swapaxes(1, 2).reshape(h, w, 3)
    out = img.copy()
    out[:h, :w] = shuffled
    return out


def make_similar_colours_clip(path, shot_a: int = 36, shot_b: int = 36, fps=24,
                              size=(320, 240), seed: int = 0,
                              tiles: tuple[int, int] = (4, 4)) -> MediaInfo:
    """One cut between two shots with (nearly) the same colour histogram.

    Shot B's background is shot A's with its tiles rearranged; both have the same
    disc colour and no camera wobble, so per-frame histograms differ only by the
    disc position, grain and compression.
    """
    rng = np.random.default_rng([seed, 7])
    w, h = size
    base = _canvas(rng, h, w, _shot_hue(seed, 0), cells=6)
    a = _Shot(np.random.default_rng([seed, 8]), size, _shot_hue(seed, 0), wobble_px=0,
              canvas=base)
    b = _Shot(np.random.default_rng([seed, 8]), size, _shot_hue(seed, 0), wobble_px=0,
              canvas=_tile_derangement(base, tiles, rng))
    n = shot_a + shot_b
    frames = (a.frame(i) if i < shot_a else b.frame(i - shot_a) for i in range(n))
    pix_fmt = _write_video(path, frames, fps=fps, size=size, encoder="libx264")
    return _info(path, fps=fps, n_frames=n, size=size, codec="h264", encoder="libx264",
                 pix_fmt=pix_fmt, cut_frames=[shot_a],
                 notes="cut between shots with near-identical colour histograms "
                       "(tiles of the same background rearranged)")


def make_fast_motion_clip(path, n_frames: int = 72, pan_px: float = 24.0,
                          disc_speed: float = 24.0, hue_span: float = 0.6, fps=24,
                          size=(320, 240), seed: int = 0) -> MediaInfo:
    """One continuous shot, a fast whip pan across a landscape whose hue drifts by
    ``hue_span`` of the colour wheel, and a fast disc: ZERO true cuts."""
    shot = _make_shot(seed, 0, size, pan=(pan_px, 0.0), n_frames=n_frames,
                      cells=round(30 * (1 + pan_px * n_frames / size[0])),
                      disc_speed=disc_speed, hue_span=hue_span)
    frames = (shot.frame(i) for i in range(n_frames))
    pix_fmt = _write_video(path, frames, fps=fps, size=size, encoder="libx264")
    return _info(path, fps=fps, n_frames=n_frames, size=size, codec="h264",
                 encoder="libx264", pix_fmt=pix_fmt, cut_frames=[],
                 notes=f"single shot, camera pans {pan_px} px/frame, disc moves "
                       f"{disc_speed} px/frame; no cut",
                 extra={"pan_px_per_frame": pan_px})


def make_flash_clip(path, n_frames: int = 60, flash_start: int = 30, flash_len: int = 2,
                    strength: float = 0.85, fps=24, size=(320, 240),
                    seed: int = 0) -> MediaInfo:
    """One shot with a 1-2 frame near-white flash (camera flash): ZERO true cuts."""
    if not 0 < flash_start < flash_start + flash_len < n_frames:
        raise ValueError("flash must lie strictly inside the clip")
    shot = _make_shot(seed, 0, size)

    def frames():
        for i in range(n_frames):
            img = shot.frame(i)
            if flash_start <= i < flash_start + flash_len:
                img = (img * (1 - strength) + 255 * strength).astype(np.uint8)
            yield img

    pix_fmt = _write_video(path, frames(), fps=fps, size=size, encoder="libx264")
    flash = list(range(flash_start, flash_start + flash_len))
    return _info(path, fps=fps, n_frames=n_frames, size=size, codec="h264",
                 encoder="libx264", pix_fmt=pix_fmt, cut_frames=[],
                 notes=f"single shot with a white flash on frames {flash}; no cut",
                 extra={"flash_frames": flash})


# --------------------------------------------------------------------------- long

def long_clip_cuts(minutes: float, fps=24, shot_len_s: float = 4.0, jitter: float = 0.5,
                   seed: int = 0) -> tuple[int, list[int]]:
    """(n_frames, cut_frames) of make_long_clip, without writing anything."""
    n = round(minutes * 60 * float(fps))
    rng = np.random.default_rng([seed, 42])
    lo = max(1, round(shot_len_s * (1 - jitter) * float(fps)))
    hi = max(lo, round(shot_len_s * (1 + jitter) * float(fps)))
    cuts, pos = [], 0
    while True:
        pos += int(rng.integers(lo, hi + 1))
        if pos >= n:
            return n, cuts
        cuts.append(pos)


def make_long_clip(path, minutes: float = 10, fps=24, size=(320, 240),
                   shot_len_s: float = 4.0, jitter: float = 0.5, seed: int = 0,
                   codec: str = "libx264") -> MediaInfo:
    """A long video with hard cuts every shot_len_s * U(1-jitter, 1+jitter) seconds.

    Written frame by frame (one shot canvas in memory at a time, so memory does not
    grow with the length) with libx264 ultrafast.
    """
    n, cuts = long_clip_cuts(minutes, fps, shot_len_s, jitter, seed)
    codec_name, encoder = _resolve_encoder(codec)
    pix_fmt = _write_video(path, _shots_frames(cuts, n, size, seed), fps=fps, size=size,
                           encoder=encoder, fast=True)
    return _info(path, fps=fps, n_frames=n, size=size, codec=codec_name, encoder=encoder,
                 pix_fmt=pix_fmt, cut_frames=cuts,
                 notes=f"{minutes} min, {len(cuts) + 1} shots of ~{shot_len_s} s")


# --------------------------------------------------------------------------- odd files

def make_rotated_clip(path, rotation: int = 90, display_size=(240, 320), n_frames: int = 24,
                      fps=24, seed: int = 0) -> MediaInfo:
    """Frames stored sideways plus a display matrix; upright they show a white top band
    and a red top-left block.  ``rotation`` is counter-clockwise degrees (90/180/270)."""
    if rotation % 90:
        raise ValueError("rotation must be a multiple of 90")
    k = (rotation // 90) % 4
    dw, dh = display_size
    coded = (dh, dw) if k % 2 else (dw, dh)
    shot = _make_shot(seed, 0, (dw, dh))
    band = max(2, dh // 8)

    def frames():
        for i in range(n_frames):
            up = (shot.frame(i) * 0.7).astype(np.uint8)
            up[:band] = 255
            up[:band, :max(2, dw // 4)] = (255, 0, 0)
            yield np.rot90(up, -k)  # stored; np.rot90(stored, k) is upright again

    pix_fmt = _write_video(path, frames(), fps=fps, size=coded, encoder="libx264",
                           rotation=rotation)
    return _info(path, fps=fps, n_frames=n_frames, size=coded, codec="h264",
                 encoder="libx264", pix_fmt=pix_fmt, cut_frames=[], rotation=rotation,
                 notes=f"display matrix {rotation} deg CCW; upright = np.rot90(decoded, "
                       f"{k}); white band on top, red block top-left",
                 extra={"display_size": [dw, dh], "band_rows": band})


def make_vfr_clip(path, segments: Sequence[tuple[int, float]] = ((30, 2.0), (10, 2.0),
                                                                  (30, 2.0)),
                  cut_times_s: Sequence[float] = (1.0, 3.0, 5.0), size=(320, 240),
                  seed: int = 0) -> MediaInfo:
    """Variable frame rate mp4: ``segments`` of (fps, seconds), pts in 1/90000 units.

    A cut is placed at the first frame whose time is >= each requested time; the
    returned ``cut_times_s`` are those frames' exact times.
    """
    tb = Fraction(1, 90000)
    pts, tick = [], 0
    for seg_fps, seg_s in segments:
        step = round(90000 / seg_fps)
        for _ in range(round(seg_fps * seg_s)):
            pts.append(tick)
            tick += step
    n = len(pts)
    times = [p * tb for p in pts]
    cuts = []
    for t in cut_times_s:
        after = [i for i, ft in enumerate(times) if ft >= Fraction(t).limit_denominator()]
        if not after:
            raise ValueError(f"cut time {t} s is after the last frame")
        cuts.append(after[0])
    cuts = _check_cuts(cuts, n)
    pix_fmt = _write_video(path, _shots_frames(cuts, n, size, seed), fps=segments[0][0],
                           size=size, encoder="libx264", pts=pts, time_base=tb)
    duration = float(tick * tb)
    return MediaInfo(path=str(path), fps=n / duration, n_frames=n, duration_s=duration,
                     width=size[0], height=size[1], codec="h264", encoder="libx264",
                     pix_fmt=pix_fmt, cut_frames=cuts,
                     cut_times_s=[float(times[c]) for c in cuts],
                     notes="VFR: " + ", ".join(f"{f} fps for {s} s" for f, s in segments)
                           + "; fps field is the average",
                     extra={"time_base": "1/90000", "frame_pts": pts,
                            "segments": [list(s) for s in segments]})


def make_truncated_clip(path, n_frames: int = 48, keep_fraction: float = 0.5, fps=24,
                        size=(320, 240), seed: int = 0) -> MediaInfo:
    """An mp4 (moov first) cut off in the middle of packet ``round(keep_fraction*n)``.

    The header still claims ``n_frames``; only ``extra["decodable_frames"]`` decode,
    then the partial packet makes the decoder raise InvalidDataError.
    """
    path = Path(path)
    full = path.with_name(path.name + ".full.mp4")
    keep = min(n_frames - 1, max(1, round(keep_fraction * n_frames)))
    cuts = [c for c in (n_frames // 4,) if 0 < c < keep]
    _write_video(full, _shots_frames(cuts, n_frames, size, seed), fps=fps, size=size,
                 encoder="libx264", fast=True,  # ultrafast: no B-frames
                 container_options={"movflags": "faststart"})
    with av.open(str(full)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    pos, psize = packets[keep]
    data = full.read_bytes()[:pos + psize // 2]
    full.unlink()
    path.write_bytes(data)
    info = _info(path, fps=fps, n_frames=n_frames, size=size, codec="h264",
                 encoder="libx264", pix_fmt="yuv420p", cut_frames=cuts, kind="decode_failed",
                 notes=f"truncated at byte {len(data)} (mid packet {keep}); header claims "
                       f"{n_frames} frames, {keep} decode",
                 extra={"claimed_frames": n_frames, "decodable_frames": keep,
                        "truncated_at_byte": len(data)})
    return info


def make_one_frame_clip(path, size=(320, 240), fps=24, seed: int = 0) -> MediaInfo:
    """A valid H.264 mp4 with exactly one frame (duration 1/fps)."""
    pix_fmt = _write_video(path, _shots_frames([], 1, size, seed), fps=fps, size=size,
                           encoder="libx264")
    return _info(path, fps=fps, n_frames=1, size=size, codec="h264", encoder="libx264",
                 pix_fmt=pix_fmt, cut_frames=[],
                 notes="one frame; valid but shorter than any sensible min duration")


def make_huge_resolution_clip(path, size=(8192, 8192), n_frames: int = 2,
                              fps=1) -> MediaInfo:
    """A real H.264 stream whose header says ``size`` (flat grey, ~200 KB on disk).

    For testing a resolution limit that is checked from the header before decoding.
    """
    width, height = size
    options, _ = _encoder_options("libx264", fast=True)
    options.update({"crf": "51"})
    pix_fmt = _pix_fmt("libx264", width, height)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        frame = av.VideoFrame(width, height, pix_fmt)
        for plane in frame.planes:
            np.frombuffer(plane, np.uint8)[:] = 128
        for i in range(n_frames):
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return _info(path, fps=fps, n_frames=n_frames, size=size, codec="h264",
                 encoder="libx264", pix_fmt=pix_fmt, cut_frames=[], kind="too_large",
                 notes=f"header claims {width}x{height}; flat grey; reject before decoding")


def make_audio_only(path, duration_s: float = 2.0, freq: float = 440.0,
                    sample_rate: int = 48000, codec: str | None = None) -> MediaInfo:
    """A sine tone and no video stream. AAC for .mp4/.m4a/.mkv, Opus for .ogg/.opus/.webm."""
    suffix = Path(path).suffix.lower()
    codec = codec or ("libopus" if suffix in (".ogg", ".opus", ".webm") else "aac")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=sample_rate, layout="mono")
        frame_size = stream.codec_context.frame_size or 960
        total = round(duration_s * sample_rate)
        for start in range(0, total, frame_size):
            t = np.arange(start, min(total, start + frame_size)) / sample_rate
            samples = (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None, :]
            frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return MediaInfo(path=str(path), kind="no_video_stream", duration_s=duration_s,
                     codec="opus" if codec == "libopus" else codec,
                     notes=f"audio only: {freq} Hz sine, {duration_s} s, {codec}; no video",
                     extra={"sample_rate": sample_rate})


def make_corrupt_clip(path, codec: str = "h264", seed: int = 1) -> MediaInfo:
    """A valid container whose every video packet is overwritten with random bytes (bit rot,
    a bad transcode): the header probes fine, no frame decodes."""
    src = Path(path).with_name(Path(path).name + ".src" + Path(path).suffix)
    make_codec_clip(src, codec)
    with av.open(str(src)) as container:
        packets = [(p.pos, p.size) for p in container.demux(video=0) if p.size]
    data = bytearray(src.read_bytes())
    src.unlink()
    rng = np.random.default_rng(seed)
    for pos, size in packets:
        data[pos:pos + size] = rng.bytes(size)
    Path(path).write_bytes(bytes(data))
    return MediaInfo(path=str(path), kind="decode_failed", codec=codec,
                     notes=f"{codec} container with {len(packets)} packets of random bytes")


def make_zero_byte(path) -> MediaInfo:
    """An empty file."""
    Path(path).write_bytes(b"")
    return MediaInfo(path=str(path), kind="empty_file", notes="0 bytes")


def make_not_a_video(path) -> MediaInfo:
    """A small text file with a video extension."""
    Path(path).write_text("This is a plain text file, not a video.\n" * 20)
    return MediaInfo(path=str(path), kind="not_a_video", notes="ASCII text named like a video")


def make_random_bytes(path, n: int = 100_000, seed: int = 0) -> MediaInfo:
    """``n`` random bytes (FFmpeg 7-9 cannot probe seed 0's bytes as any format)."""
    Path(path).write_bytes(np.random.default_rng(seed).bytes(n))
    return MediaInfo(path=str(path), kind="not_a_video", notes=f"{n} random bytes, seed {seed}")


# --------------------------------------------------------------------------- fault set

def _fault_builders(d: Path) -> list[tuple[str, Callable[[], MediaInfo]]]:
    return [
        ("ok_h264", lambda: make_cuts_clip(d / "ok_h264.mp4", (20, 44), 64)),
        ("ok_vp8", lambda: make_codec_clip(d / "ok_vp8.webm", "vp8")),
        ("ok_vp9", lambda: make_codec_clip(d / "ok_vp9.webm", "vp9")),
        ("ok_av1", lambda: make_codec_clip(d / "ok_av1.mp4", "av1")),
        ("ok_mpeg4_avi", lambda: make_codec_clip(d / "ok_mpeg4.avi", "mpeg4")),
        ("odd_size", lambda: make_cuts_clip(d / "odd_size.mp4", (20,), 40, size=(321, 241))),
        ("rotated", lambda: make_rotated_clip(d / "rotated.mp4")),
        ("vfr", lambda: make_vfr_clip(d / "vfr.mp4")),
        ("one_frame", lambda: make_one_frame_clip(d / "one_frame.mp4")),
        ("truncated", lambda: make_truncated_clip(d / "truncated.mp4")),
        ("corrupt", lambda: make_corrupt_clip(d / "corrupt.mp4")),
        ("huge_resolution", lambda: make_huge_resolution_clip(d / "huge_resolution.mp4")),
        ("audio_only", lambda: make_audio_only(d / "audio_only.mp4")),
        ("zero_byte", lambda: make_zero_byte(d / "zero_byte.mp4")),
        ("not_a_video", lambda: make_not_a_video(d / "not_a_video.mp4")),
        ("random_bytes", lambda: make_random_bytes(d / "random_bytes.mp4")),
    ]


def build_fault_set(dirpath) -> list[dict]:
    """Write one file of each odd/bad kind into ``dirpath``.

    Returns dicts = MediaInfo.as_dict() plus ``name``.  ``kind`` is the expected
    outcome (see KINDS): valid oddities (rotated, VFR, odd size, one frame, other
    codecs) are ``ok`` and must be handled correctly; ``missing`` is a path that is
    deliberately not created (``missing_file``).
    """
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name, build in _fault_builders(d):
        try:
            out.append({"name": name, **build().as_dict()})
        except EncoderUnavailable:  # AV1 on a PyAV build without an AV1 encoder
            continue
    missing = MediaInfo(path=str(d / "missing.mp4"), kind="missing_file",
                        notes="never written")
    out.append({"name": "missing", **missing.as_dict()})
    return out


def candidate_mp4(frames: Sequence[np.ndarray]) -> bytes:
    """Equally sized RGB frames as the pipeline stores candidate frames (video.Mp4Writer)."""
    from peakclips.video import Mp4Writer

    h, w = frames[0].shape[:2]
    writer = Mp4Writer(w, h)
    for img in frames:
        writer.add(img)
    return writer.finish()


def jpeg_rgb(data: bytes) -> np.ndarray:
    """A JPEG's pixels as an RGB array."""
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
