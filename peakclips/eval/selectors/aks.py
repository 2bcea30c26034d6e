"""`aks`: adaptive keyframe sampling, relevance plus temporal coverage by recursive splitting.

AKS (Tang, Qiu, Xie, Tian, Jiao, Ye, "Adaptive Keyframe Sampling for Long Video Understanding",
CVPR 2025, arXiv 2502.21271) scores every candidate frame's relevance to the question (BLIP or
CLIP image-text matching) and picks k frames that maximise relevance plus coverage of the video.
Its solver ("judge and split") works on the min-max normalised scores of a segment, starting with
the whole video and all k frames: when the segment's best frames stand out from the rest (mean
of its top frames minus the segment's mean at least a threshold, 0.8 by default) the segment
takes its top frames; otherwise it is split in two halves that share its budget and are judged
again, down to a maximum depth (5 by default), where each segment takes its top frames.

Written from that description. The budget passes down exactly (a half gets half the frames, the
odd one going to the half with the better frame), so every split keeps all k frames; a segment
with one frame left takes its best frame. Scores come from open_clip (peakclips/eval/similarity.py).
"""

from __future__ import annotations

import numpy as np

from peakclips.eval.selectors import CurveSelector
from peakclips.eval.selectors.clip_topk import top_k

THRESHOLD = 0.8
MAX_DEPTH = 5


def judge_and_split(scores: np.ndarray, k: int, threshold: float = THRESHOLD, max_depth: int = MAX_DEPTH) -> list[int]:
    """Indices of k frames (sorted) chosen by AKS's recursive judge-and-split.

    A flat curve is covered evenly (one frame per segment); a sharp peak is taken whole; a wider
    one keeps some coverage:

    >>> judge_and_split(np.zeros(8), 4)
    [0, 2, 4, 6]
    >>> judge_and_split(np.eye(16)[11] + np.eye(16)[12], 2)
    [11, 12]
    >>> judge_and_split(np.array([0, 0, 0, 0, 0, 1.0, 1.0, 0]), 2)
    [0, 5]
    """
    s = np.asarray(scores, float)
    s = (s - s.min()) / (s.max() - s.min()) if s.max() > s.min() else np.zeros_like(s)

    def visit(lo: int, hi: int, budget: int, depth: int) -> list[int]:
        if budget >= hi - lo:
            return list(range(lo, hi))
        seg = s[lo:hi]
        best = top_k(seg, budget)
        if budget == 1 or depth >= max_depth or seg[best].mean() - seg.mean() >= threshold:
            return [lo + i for i in best]
        mid = (lo + hi) // 2
        left = budget // 2 + (budget % 2 if s[lo:mid].max() >= s[mid:hi].max() else 0)
        return visit(lo, mid, left, depth + 1) + visit(mid, hi, budget - left, depth + 1)

    if k > len(s):
        raise ValueError(f"k={k} is more than the {len(s)} candidate frames")
    return visit(0, len(s), k, 0)


class AKS(CurveSelector):
    name = "aks"

    def pick(self, sims, k: int) -> list[int]:
        return judge_and_split(sims, k)
