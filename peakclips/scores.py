"""The score fusion of SPEC section 2.1: a CLIP similarity as a 1-5 relevance, the fused final
score, and its priority. The highlights stage applies it; the QVHighlights export reads it back
(saliency scores) from the numbers a sample stores. docs/scores.md explains the constants.
"""

from __future__ import annotations

from peakclips.config import HighlightsConfig


def clip_to_relevance(s: float, alpha: float, beta: float) -> float:
    """Map a CLIP similarity to [1, 5].

    >>> clip_to_relevance(0.2, 0.0, 0.4)
    3.0
    """
    return 1.0 + 4.0 * min(1.0, max(0.0, (s - alpha) / (beta - alpha)))


def fuse(llm: list[int], clip: list[float] | None, cfg: HighlightsConfig, alpha: float, beta: float) -> list[float]:
    if not clip:
        return [float(r) for r in llm]
    return [round(cfg.w1 * r + cfg.w2 * clip_to_relevance(s, alpha, beta), 6) for r, s in zip(llm, clip)]


def priority(final: float, cfg: HighlightsConfig) -> str | None:
    if final >= cfg.p1_threshold:
        return "P1"
    if final >= cfg.p2_threshold:
        return "P2"
    return None
