"""`clip-topk`: the k candidate frames most similar to the question, in time order.

Query-frame similarity top-k is the retrieval baseline the selector papers compare against
(Q-Frame names it the prior art; AKS's scripts have a `use_topk` switch; BOLT studies it beside
inverse-transform sampling). Similarities come from peakclips/eval/similarity.py (open_clip over
the T candidate frames). Ties go to the earlier frame.
"""

from __future__ import annotations

import numpy as np

from peakclips.eval.selectors import CurveSelector


def top_k(sims: np.ndarray, k: int) -> list[int]:
    """Indices of the k largest values, sorted by index (ties: the earlier one).

    >>> top_k(np.array([0.1, 0.9, 0.5, 0.9]), 2)
    [1, 3]
    """
    return sorted(np.argsort(-np.asarray(sims), kind="stable")[:k].tolist())


class ClipTopK(CurveSelector):
    name = "clip-topk"

    def pick(self, sims, k: int) -> list[int]:
        return top_k(sims, k)
