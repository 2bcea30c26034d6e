"""`bolt` / `bolt:POWER`: inverse-transform sampling over the query-frame similarity curve.

BOLT (Liu, Zhao, Xu, Ghanem, "BOLT: Boost Large Vision-Language Model Without Training for
Long-form Video Understanding", CVPR 2025, arXiv 2503.21483) scores every candidate frame by its
CLIP similarity to the question, min-max normalises the scores to [0, 1], sharpens them with a
power (3 for Video-MME and MLVU, 2.5 for LongVideoBench in its scripts), treats the result as a
probability distribution over time and draws k frames by inverse-transform sampling: k evenly
spaced quantiles of the cumulative distribution, each mapped back to a time. Frames then crowd
where the question matches, and every part of the video keeps a chance in proportion to it.

Written from that description. Two choices of ours: the curve is a density over *time* (each
candidate's score holds for the slice of the video nearest to it), so quantiles that fall in the
same slice give distinct times inside it instead of one repeated frame; and the quantiles are the
midpoints (i + 0.5) / k, so a flat curve gives exactly the `uniform` selector's frames.
"""

from __future__ import annotations

import numpy as np

from peakclips.eval.benchmarks import Item
from peakclips.eval.selectors import Context, Selection, Selector

DEFAULT_POWER = 3.0


def inverse_transform(times: np.ndarray, scores: np.ndarray, duration_s: float, k: int,
                      power: float = DEFAULT_POWER) -> list[float]:
    """k times by inverse-transform sampling of the density `scores` (one per candidate time).

    >>> inverse_transform(np.array([1.0, 3.0]), np.array([0.5, 0.5]), 4.0, 2)
    [1.0, 3.0]
    >>> inverse_transform(np.array([1.0, 3.0]), np.array([0.1, 0.9]), 4.0, 2)
    [2.5, 3.5]
    """
    times, s = np.asarray(times, float), np.asarray(scores, float)
    s = s - s.min()
    s = (s / s.max()) ** power if s.max() > 0 else np.ones_like(s)
    edges = np.concatenate([[0.0], (times[1:] + times[:-1]) / 2, [duration_s]])
    mass = s * np.diff(edges)  # the density holds over each candidate's slice of the video
    cdf = np.concatenate([[0.0], np.cumsum(mass)]) / mass.sum()
    q = (np.arange(k) + 0.5) / k
    i = np.searchsorted(cdf, q, side="right") - 1  # cdf[i] <= q < cdf[i + 1]: a slice with mass
    frac = (q - cdf[i]) / (cdf[i + 1] - cdf[i])
    return (edges[i] + frac * (edges[i + 1] - edges[i])).tolist()


class Bolt(Selector):
    uses_clip = True

    def __init__(self, ctx: Context, power: float | None = None):
        if power is not None and not power > 0:
            raise ValueError(f"bolt:POWER needs a positive power, got {power}")
        self.ctx, self.power = ctx, power or DEFAULT_POWER
        self.name = "bolt" if power is None else f"bolt:{power:g}"

    def settings(self) -> dict:
        return self.ctx.clip_settings()

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        times, sims = self.ctx.similarity.curve(item)
        return Selection(inverse_transform(times, sims, duration_s, k, self.power))
