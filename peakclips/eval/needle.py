"""`peakclips make-needle OUT --videos N --duration-s D --seed S`: a needle-in-a-haystack benchmark,
generated offline and deterministically (the same arguments give byte-identical files).

Each video is a haystack of textured shots (peakclips/synthetic.py: camera wobble, a moving disc,
grain) joined by hard cuts every 2.5-5 s, with one needle clip of `needle_s` seconds at a known
window: a card with a checkered magenta-and-green border around a square of one colour,
drifting over a shot of its own. Hard cuts open and close the needle, so it is a scene.

The question asks for the square's colour, with four colour options. The correct option's place
rotates across the videos (video i has it at letter i mod 4), so a model that always answers "A",
or one that guesses, scores 25 %.

The needle is unambiguous in pixels (`find_needle`): haystack hues keep away from magenta and
green, and so do their complements (the disc takes the complementary hue), so no haystack frame
holds both colours of the border. A test server that "sees" tells needle frames from the rest
with it (tests/vlm_server.py), and `make_needle` checks its own videos the same way.

Writes:
    OUT/videos/needle-NNN.mp4   H.264 at `fps`, `size`
    OUT/manifest.jsonl          a PeakClips manifest: the needle as a query, the question as `qa`
    OUT/benchmark.jsonl         the items `peakclips eval --format needle` reads (with windows_s)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from peakclips.eval import EvalError
from peakclips.synthetic import Shot, triangle

QUESTION = "What colour is the square inside the checkered magenta-and-green frame?"
QUERY = "a card with a checkered magenta-and-green frame around a coloured square"
COLOURS = {"red": (215, 35, 35), "blue": (35, 75, 225), "yellow": (240, 215, 35),
           "white": (240, 240, 240), "orange": (245, 135, 20), "cyan": (30, 200, 225)}
MAGENTA, GREEN = (255, 0, 255), (0, 230, 0)
# Hue bands the haystack shots use: away from magenta (~0.83) and green (~0.33); the disc takes
# the complementary hue (+0.5), which lands in the same bands.
HAYSTACK_HUES = ((0.0, 0.22), (0.48, 0.72), (0.97, 1.0))
SHOT_S = (2.5, 5.0)  # haystack shot lengths
MIN_SHOT_S = 1.0  # no haystack shot next to the needle is shorter (shot detectors merge tiny shots)
MIN_SHARE = 0.01  # find_needle: each border colour covers at least this share of the frame
OPTIONS = 4


@dataclass(frozen=True)
class NeedlePlan:
    """What one video holds: frame counts, hard cuts (first frames of shots) and the needle."""

    index: int
    n_frames: int
    cuts: tuple[int, ...]
    needle: tuple[int, int]  # first frame, end frame (exclusive)
    colour: str
    options: tuple[str, ...]
    answer: int


def plan_video(index: int, seed: int, n_frames: int, needle_frames: int, fps: int) -> NeedlePlan:
    rng = np.random.default_rng([seed, index, 0])
    min_shot = round(MIN_SHOT_S * fps)
    lo, hi = max(min_shot, round(0.1 * n_frames)), round(0.9 * n_frames) - needle_frames
    start = int(rng.integers(lo, max(lo, hi) + 1))
    end = start + needle_frames
    cuts, t = [start, end], 0
    while True:
        t += round(rng.uniform(*SHOT_S) * fps)
        if t >= n_frames - min_shot:
            break
        if not start - min_shot < t < end + min_shot:
            cuts.append(t)
    names = list(COLOURS)
    picks = [names[i] for i in rng.permutation(len(names))[:OPTIONS]]
    colour, answer = picks[0], index % OPTIONS
    others = picks[1:]
    options = others[:answer] + [colour] + others[answer:]
    return NeedlePlan(index, n_frames, tuple(sorted(set(cuts))), (start, end), colour, tuple(options), answer)


def haystack_hue(rng: np.random.Generator) -> float:
    """A hue drawn evenly from HAYSTACK_HUES."""
    u = rng.uniform(0, sum(b - a for a, b in HAYSTACK_HUES))
    for a, b in HAYSTACK_HUES:
        if u < b - a:
            return a + u
        u -= b - a
    return HAYSTACK_HUES[-1][1] - 1e-9


class Card:
    """The needle: a checkered magenta-and-green border around a square of one colour, drifting
    about 1.5 px/frame and bouncing off the frame's edges."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], colour: str):
        w, h = size
        ch = max(12, round(0.6 * h) // 6 * 6)
        cw, b = round(1.3 * ch), ch // 6
        yy, xx = np.mgrid[0:ch, 0:cw]
        inner = (yy >= b) & (yy < ch - b) & (xx >= b) & (xx < cw - b)
        self.image = np.where(((yy // b + xx // b) % 2 == 0)[..., None], MAGENTA, GREEN).astype(np.uint8)
        self.image[inner] = COLOURS[colour]
        self.free = (max(1, w - cw), max(1, h - ch))
        self.phase = rng.uniform(0, 1, 2)
        self.speed = 1.5 / (2 * np.array(self.free, float))  # triangle-wave periods per frame

    def draw(self, img: np.ndarray, t: int) -> np.ndarray:
        x, y = (round(f * triangle(p + s * t)) for f, p, s in zip(self.free, self.phase, self.speed))
        ch, cw = self.image.shape[:2]
        img[y:y + ch, x:x + cw] = self.image[: img.shape[0] - y, : img.shape[1] - x]
        return img


def render(plan: NeedlePlan, seed: int, size: tuple[int, int]) -> Iterator[np.ndarray]:
    """The video's RGB frames, one shot in memory at a time."""
    bounds = [0, *plan.cuts, plan.n_frames]
    for j, (a, b) in enumerate(zip(bounds, bounds[1:])):
        rng = np.random.default_rng([seed, plan.index, j + 1])
        shot = Shot(rng, size, haystack_hue(rng))
        card = Card(rng, size, plan.colour) if (a, b) == plan.needle else None
        for t in range(b - a):
            img = shot.frame(t)
            yield card.draw(img, t) if card else img


def find_needle(rgb: np.ndarray) -> str | None:
    """The colour of the needle's square when the frame shows the needle, else None.

    The needle shows when both border colours cover MIN_SHARE of the frame; the square's colour
    is the palette colour nearest to the median of the middle of their bounding box. Works on
    JPEGs downscaled to a few dozen pixels.
    """
    rgb = np.asarray(rgb, np.int16)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    magenta = (r > 170) & (g < 100) & (b > 170)
    green = (g > 170) & (r < 100) & (b < 100)
    if magenta.mean() < MIN_SHARE or green.mean() < MIN_SHARE:
        return None
    ys, xs = np.nonzero(magenta | green)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    dy, dx = (y1 - y0) * 3 // 8, (x1 - x0) * 3 // 8
    middle = rgb[y0 + dy:y1 - dy, x0 + dx:x1 - dx].reshape(-1, 3)
    if not len(middle):
        return None
    centre = np.median(middle, axis=0)
    return min(COLOURS, key=lambda c: float(((centre - COLOURS[c]) ** 2).sum()))


def make_needle(out: str | Path, videos: int, duration_s: float, seed: int = 0, fps: int = 24,
                size: tuple[int, int] = (320, 180), needle_s: float = 2.0, log=print) -> list[dict]:
    """Write the benchmark into `out`; returns its items (as in benchmark.jsonl)."""
    from peakclips.video import Mp4Writer

    if videos < 1 or fps < 1 or min(size) < 16 or size[0] % 2 or size[1] % 2:
        raise EvalError("make-needle needs --videos >= 1, --fps >= 1 and an even --size of at least 16x16")
    if not (needle_s > 0 and duration_s >= max(4 * needle_s, needle_s + 4 * MIN_SHOT_S)):
        raise EvalError(f"--duration-s must be at least 4x the needle ({needle_s} s) and "
                         f"{needle_s + 4 * MIN_SHOT_S} s")
    out = Path(out)
    (out / "videos").mkdir(parents=True, exist_ok=True)
    n_frames, needle_frames = round(duration_s * fps), max(1, round(needle_s * fps))
    items, rows = [], []
    for i in range(videos):
        plan = plan_video(i, seed, n_frames, needle_frames, fps)
        video_id, rel = f"needle-{i:03d}", f"videos/needle-{i:03d}.mp4"
        writer = Mp4Writer(size[0], size[1], crf=23, fps=fps)
        for t, img in enumerate(render(plan, seed, size)):
            seen = find_needle(img)  # the benchmark's promise, checked on every frame written
            if (seen == plan.colour) != (plan.needle[0] <= t < plan.needle[1]):
                raise AssertionError(f"{video_id} frame {t}: find_needle says {seen!r}")
            writer.add(img)
        (out / rel).write_bytes(writer.finish())
        qa = {"question": QUESTION, "options": list(plan.options), "answer": plan.answer}
        window = [plan.needle[0] / fps, plan.needle[1] / fps]
        items.append({"id": video_id, "video": rel, **qa, "windows_s": [window], "duration_s": n_frames / fps})
        rows.append({"video_id": video_id, "uri": rel, "source": "peakclips make-needle",
                     "license": "CC0-1.0", "queries": [QUERY], "qa": [qa]})
        log(f"{rel}: {n_frames / fps:.1f} s, {len(plan.cuts) + 1} shots, needle {window[0]:.2f}-{window[1]:.2f} s "
            f"({plan.colour}, answer {'ABCD'[plan.answer]})")
    (out / "benchmark.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    (out / "manifest.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))
    return items


def parse_size(text: str) -> tuple[int, int]:
    """'320x180' -> (320, 180)."""
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise EvalError(f"--size expects WIDTHxHEIGHT, e.g. 320x180, got {text!r}") from None
    return w, h
