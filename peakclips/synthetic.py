"""Synthetic footage with known content: textured shots with camera motion, a moving disc and grain.

A *shot* is a smooth, coloured noise field plus a brightness gradient, a slow "camera wobble" (the
crop window drifts by <= 1 px/frame) or a linear pan, a disc moving ~3 px/frame and mild film
grain. Inside a shot the mean absolute difference between consecutive frames is a few grey
levels; across a hard cut it is tens of grey levels, so shot detectors behave as on real footage.

Used by `peakclips make-needle` (peakclips/eval/needle.py) for its haystacks and by the tests'
media generators (tests/media.py). Pure numpy; deterministic for a given generator.
"""

from __future__ import annotations

import math

import numpy as np

GOLDEN = 0.6180339887498949
"""Golden-ratio hue step: consecutive shots differ by ~137 degrees of hue."""


def hsv_to_rgb(h, s: float, v: float) -> np.ndarray:
    """HSV (in [0, 1]; h scalar or array) to float RGB in [0, 1], shape h.shape + (3,)."""
    k = (np.array([5.0, 3.0, 1.0]) + np.asarray(h, float)[..., None] * 6.0) % 6.0
    return v - v * s * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """A (h, w) field in [0, 1]: random values on a coarse grid, bilinear upsampled."""
    gh = max(2, round(cells * h / max(h, w)) + 2)
    gw = max(2, round(cells * w / max(h, w)) + 2)
    grid = rng.random((gh, gw))
    ys, xs = np.linspace(0, gh - 1.001, h), np.linspace(0, gw - 1.001, w)
    y0, x0 = ys.astype(int), xs.astype(int)
    wy, wx = (ys - y0)[:, None], (xs - x0)[None, :]
    rows = grid[y0] * (1 - wy) + grid[y0 + 1] * wy  # (h, gw)
    return rows[:, x0] * (1 - wx) + rows[:, x0 + 1] * wx


def textured_canvas(rng: np.random.Generator, h: int, w: int, hue: float, cells: int,
            hue_span: float = 0.0) -> np.ndarray:
    """A textured background: two colours mixed by smooth noise, times a gradient.

    ``hue_span`` > 0 makes the hue drift left to right by that fraction of the wheel
    (a wide landscape for a whip pan)."""
    hues = (hue + hue_span * np.linspace(0, 1, w)) % 1.0
    c1 = hsv_to_rgb(hues, 0.75, 0.95)
    c2 = hsv_to_rgb((hues + 0.08) % 1.0, 0.55, 0.35)
    mix = smooth_noise(rng, h, w, cells)[..., None]
    ang = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w]
    grad = (np.cos(ang) * xx / w + np.sin(ang) * yy / h)
    grad = 0.75 + 0.25 * (grad - grad.min()) / max(1e-9, np.ptp(grad))
    img = (c1 * mix + c2 * (1 - mix)) * grad[..., None]
    return np.clip(img * 235 + 10, 0, 255).astype(np.uint8)


def triangle(x: float) -> float:
    """Triangle wave in [0, 1] with period 1."""
    x = x % 1.0
    return 2 * x if x < 0.5 else 2 - 2 * x


class Shot:
    """One shot: a crop window moving over a textured canvas, a moving disc, grain.

    ``pan=None`` gives a slow wobble (<= ``wobble_px`` px/frame, bounded margin);
    ``pan=(vx, vy)`` a linear pan of vx, vy px/frame lasting ``n_frames`` frames.
    """

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], hue: float, *,
                 pan: tuple[float, float] | None = None, n_frames: int = 0,
                 wobble_px: float = 0.5, cells: int = 5, disc_speed: float = 3.0,
                 grain: float = 1.5, canvas: np.ndarray | None = None,
                 hue_span: float = 0.0):
        w, h = size
        self.w, self.h, self.pan, self.wobble_px = w, h, pan, wobble_px
        if pan is None:
            self.mx = self.my = 12 if wobble_px > 0 else 0
        else:
            self.mx = math.ceil(abs(pan[0]) * n_frames) + 1
            self.my = math.ceil(abs(pan[1]) * n_frames) + 1
        extra = 2 if pan is None else 1  # wobble: margin both sides; pan: one side
        ch, cw = h + extra * self.my, w + extra * self.mx
        self.canvas = canvas if canvas is not None else textured_canvas(rng, ch, cw, hue, cells, hue_span)
        self.disc_rgb = np.clip(hsv_to_rgb((hue + 0.5) % 1.0, 0.9, 1.0) * 255, 0, 255)
        r = max(3, min(w, h) // 8)
        yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
        self.disc = (xx * xx + yy * yy) <= r * r
        self.r = r
        self.disc_start = rng.uniform(0, 1, 2)  # fraction of the free span, x and y
        ang = rng.uniform(0, 2 * math.pi)
        self.disc_vel = disc_speed * np.array([math.cos(ang), math.sin(ang)])
        self.grain = [np.round(rng.normal(0, grain, (h, w, 1))).astype(np.int16)
                      for _ in range(4)] if grain > 0 else None
        self.phase = rng.uniform(0, 1, 2)

    def _offset(self, t: int) -> tuple[int, int]:
        if self.pan is None:
            if self.mx == 0:
                return 0, 0
            period = 4 * self.mx / self.wobble_px  # frames per back-and-forth
            ox = 2 * self.mx * triangle(t / period + self.phase[0])
            oy = 2 * self.my * triangle(t / (1.3 * period) + self.phase[1])
            return round(ox), round(oy)
        vx, vy = self.pan
        ox = t * vx if vx >= 0 else self.mx - 1 + t * vx
        oy = t * vy if vy >= 0 else self.my - 1 + t * vy
        return round(ox), round(oy)

    def _disc_center(self, t: int) -> tuple[int, int]:
        """The disc bounces off the frame edges."""
        out = []
        for u0, v, lim in zip(self.disc_start, self.disc_vel, (self.w, self.h), strict=True):
            span = max(1.0, lim - 2 * self.r - 2)
            u = (u0 * span + v * t) % (2 * span)
            out.append(round(self.r + (u if u <= span else 2 * span - u)))
        return out[0], out[1]

    def frame(self, t: int) -> np.ndarray:
        ox, oy = self._offset(t)
        img = self.canvas[oy:oy + self.h, ox:ox + self.w].copy()
        cx, cy = self._disc_center(t)
        y0, x0 = cy - self.r, cx - self.r
        ys = slice(max(0, y0), min(self.h, y0 + 2 * self.r + 1))
        xs = slice(max(0, x0), min(self.w, x0 + 2 * self.r + 1))
        mask = self.disc[ys.start - y0:ys.stop - y0, xs.start - x0:xs.stop - x0]
        img[ys, xs][mask] = self.disc_rgb
        if self.grain is not None:
            img = np.clip(img.astype(np.int16) + self.grain[t % len(self.grain)], 0, 255)
            img = img.astype(np.uint8)
        return img


def shot_hue(seed: int, index: int) -> float:
    return (seed * 0.1234567 + index * GOLDEN) % 1.0


def make_shot(seed: int, index: int, size: tuple[int, int], **kw) -> Shot:
    rng = np.random.default_rng([seed, index])
    return Shot(rng, size, shot_hue(seed, index), **kw)
