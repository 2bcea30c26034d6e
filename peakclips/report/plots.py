"""The report's aggregate plots, as PNG bytes (matplotlib, Agg backend: no display needed).

Each function takes plain numbers gathered by peakclips/report/__init__.py and returns one PNG.
"""

from __future__ import annotations

import io

P1_COLOR, P2_COLOR = "#d62728", "#ff9f1c"


def _figure(width: float = 6.4, height: float = 3.6, ncols: int = 1):
    """(figure, axes) with one axis, or a list of `ncols` axes side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width, height), dpi=100, squeeze=False)
    for ax in axes[0]:
        ax.spines[["top", "right"]].set_visible(False)
    return fig, (axes[0][0] if ncols == 1 else list(axes[0]))


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.tight_layout()
    # Fixed metadata: the same dataset gives the same PNG bytes.
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def funnel(stats: dict) -> bytes:
    """Videos and queries in, kept, dropped, failed; highlights by priority."""
    v, q = stats["videos"], stats["queries"]
    rows = [("videos in", v.get("total", 0), "#4c78a8"), ("videos kept", v.get("ok", 0), "#54a24b"),
            ("videos dropped", v.get("dropped", 0), "#b279a2"), ("videos failed", v.get("error", 0), "#e45756"),
            ("queries in", q.get("ok", 0) + q.get("dropped", 0), "#4c78a8"), ("queries kept", q.get("ok", 0), "#54a24b"),
            ("queries dropped", q.get("dropped", 0), "#b279a2"),
            ("P1 highlights", stats.get("highlights_p1", 0), P1_COLOR), ("P2 highlights", stats.get("highlights_p2", 0), P2_COLOR)]
    fig, ax = _figure(6.4, 3.8)
    labels = [r[0] for r in rows][::-1]
    values = [r[1] for r in rows][::-1]
    bars = ax.barh(labels, values, color=[r[2] for r in rows][::-1])
    ax.bar_label(bars, padding=3)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("count")
    ax.set_title("Funnel")
    ax.margins(x=0.12)
    return _png(fig)


def drops(reasons: dict[str, int]) -> bytes:
    fig, ax = _figure(6.4, max(1.8, 0.45 * len(reasons) + 1))
    if reasons:
        items = sorted(reasons.items(), key=lambda kv: kv[1])
        bars = ax.barh([k for k, _ in items], [n for _, n in items], color="#b279a2")
        ax.bar_label(bars, padding=3)
        ax.margins(x=0.12)
        ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        ax.text(0.5, 0.5, "nothing dropped", ha="center", va="center", transform=ax.transAxes)
    ax.set_title("Drops and failures by reason")
    ax.set_xlabel("count")
    return _png(fig)


def histogram(values: list[float], title: str, xlabel: str, bins: int = 30, color: str = "#4c78a8") -> bytes:
    fig, ax = _figure()
    if values:
        ax.hist(values, bins=bins, color=color, edgecolor="white")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(f"{title} (n={len(values)})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")
    return _png(fig)


def scores(llm: list[int], final: list[float], clip: list[float]) -> bytes:
    """LLM relevance and fused final scores per (query, scene); CLIP similarity when present."""
    import numpy as np

    panels = 3 if clip else 2
    fig, axes = _figure(12.8, 3.4, ncols=panels)  # as wide as two plots side by side
    edges = np.arange(0.5, 6.0, 1.0)
    axes[0].hist(llm, bins=edges, color="#4c78a8", edgecolor="white")
    axes[0].set_title(f"LLM relevance (n={len(llm)})")
    axes[0].set_xticks(range(1, 6))
    axes[1].hist(final, bins=np.linspace(1, 5, 33), color="#f58518", edgecolor="white")
    axes[1].set_title("fused final score")
    if clip:
        axes[2].hist(clip, bins=30, color="#54a24b", edgecolor="white")
        axes[2].set_title("CLIP similarity")
    axes[0].set_ylabel("(query, scene) pairs")
    return _png(fig)


def highlight_vs_video(points: list[tuple[float, float, str]]) -> bytes:
    """Each highlight clip: (video length, clip length, priority)."""
    fig, ax = _figure()
    for prio, color in (("P1", P1_COLOR), ("P2", P2_COLOR)):
        xs = [x for x, _, p in points if p == prio]
        ys = [y for _, y, p in points if p == prio]
        if xs:
            ax.scatter(xs, ys, s=18, alpha=0.7, color=color, label=f"{prio} ({len(xs)})")
    if points:
        top = max(x for x, _, _ in points)
        ax.plot([0, top], [0, top], color="#999", lw=0.8, ls="--", label="whole video")
        ax.legend(frameon=False)
    else:
        ax.text(0.5, 0.5, "no highlights", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("video length (s)")
    ax.set_ylabel("highlight length (s)")
    ax.set_title("Highlight length vs video length")
    return _png(fig)
