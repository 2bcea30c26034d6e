"""The metrics of `peakclips eval` and its three outputs.

For every (selector, k), over the items that got a selection:
  - `hit_rate`: the share of items with ground-truth windows where at least one selected
    timestamp t lies in a window [start, end) (start <= t < end); null when no item has windows;
  - `frames_in_window`: the share of the selected timestamps that lie in a window, averaged over
    those items; null likewise;
  - `accuracy`: with a VLM, the share of the answered items with a known answer that it got
    right (an unparsable reply is wrong); null without a VLM. `answered` says how many.

Outputs, rewritten at the end of every run from everything DIR holds for the current settings:
  - DIR/results.json: the items (`id`, `video`, `duration_s`, `windows_s`, `answer`) and, per run,
    `selector`, `k`, `hit_rate`, `frames_in_window`, `accuracy`, counts, and per item `id`,
    `timestamps_s`, `hit`, `prediction`, `correct`, `note`, `error`: every rate can be
    recomputed from it;
  - DIR/results.md: one table, selectors x k, uniform first;
  - DIR/results.png: each metric against k, one line per selector.
"""

from __future__ import annotations

import json
from pathlib import Path


def inside(t: float, windows) -> bool:
    return any(a <= t < b for a, b in windows)


def inside_any(times: list[float], windows) -> bool:
    return any(inside(t, windows) for t in times)


def run_metrics(entries: list[dict], windows: dict[str, list]) -> dict:
    """Rates of one (selector, k) from its per-item entries (see the module docstring)."""
    scored = [e for e in entries if "timestamps_s" in e and windows.get(e["id"])]
    answered = [e for e in entries if e.get("correct") is not None]
    hits = [inside_any(e["timestamps_s"], windows[e["id"]]) for e in scored]
    shares = [sum(inside(t, windows[e["id"]]) for t in e["timestamps_s"]) / len(e["timestamps_s"]) for e in scored]
    return {"hit_rate": sum(hits) / len(hits) if hits else None,
            "frames_in_window": sum(shares) / len(shares) if shares else None,
            "accuracy": sum(e["correct"] for e in answered) / len(answered) if answered else None,
            "selected": sum("timestamps_s" in e for e in entries), "answered": len(answered),
            "errors": sum("error" in e for e in entries)}


def build_results(meta: dict, items: list[dict], runs: dict[tuple[str, int], list[dict]]) -> dict:
    windows = {i["id"]: i["windows_s"] or [] for i in items}
    out = []
    for (selector, k), entries in runs.items():
        for e in entries:
            if "timestamps_s" in e and windows.get(e["id"]):
                e["hit"] = inside_any(e["timestamps_s"], windows[e["id"]])
        out.append({"selector": selector, "k": k, **run_metrics(entries, windows), "items": entries})
    return {**meta, "items": items, "runs": out}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def table(results: dict) -> str:
    """The Markdown table: selectors as rows (uniform first), budgets as columns."""
    runs = {(r["selector"], r["k"]): r for r in results["runs"]}
    ks = sorted({k for _, k in runs})
    selectors = list(dict.fromkeys(s for s, _ in runs))
    selectors.sort(key=lambda s: s != "uniform")
    vlm = results.get("vlm")
    what = "hit rate / accuracy" if vlm else "hit rate"
    lines = [f"| selector ({what}) | " + " | ".join(f"k = {k}" for k in ks) + " |",
             "|---|" + "---|" * len(ks)]
    for s in selectors:
        cells = []
        for k in ks:
            r = runs.get((s, k))
            if r is None:
                cells.append("")
                continue
            cell = _pct(r["hit_rate"]) + (f" / {_pct(r['accuracy'])}" if vlm else "")
            if r["errors"]:  # the rates are over the items that got a selection (and an answer)
                cell += f" ({r['errors']} errors)"
            cells.append(cell)
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown(results: dict) -> str:
    vlm = results.get("vlm")
    head = [f"# peakclips eval: {results['benchmark']} ({results['format']})", "",
            f"{results['num_items']} questions; hit rate = share of questions with at least one selected "
            f"frame inside a ground-truth window (where the benchmark has windows)"
            + (f"; accuracy = {vlm['model']} answering from the selected frames." if vlm else "; no VLM (no accuracy)."),
            "", ""]
    return "\n".join(head) + table(results) + "\n"


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [m for m in ("hit_rate", "accuracy") if any(r[m] is not None for r in results["runs"])]
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(5.5 * max(1, len(metrics)), 4), squeeze=False)
    selectors = list(dict.fromkeys(r["selector"] for r in results["runs"]))
    for ax, metric in zip(axes[0], metrics or ["hit_rate"]):
        for s in selectors:
            pts = sorted((r["k"], r[metric]) for r in results["runs"] if r["selector"] == s and r[metric] is not None)
            if pts:
                ax.plot([k for k, _ in pts], [100 * v for _, v in pts], marker="o", label=s)
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["k"] for r in results["runs"]}), [str(k) for k in sorted({r["k"] for r in results["runs"]})])
        ax.set_xlabel("frames (k)")
        ax.set_ylabel(metric.replace("_", " ") + " (%)")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{Path(results['benchmark']).name} ({results['format']}), {results['num_items']} questions")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(output: Path, results: dict) -> dict[str, Path]:
    paths = {"json": output / "results.json", "md": output / "results.md", "png": output / "results.png"}
    paths["json"].write_text(json.dumps(results, indent=1))
    paths["md"].write_text(markdown(results))
    plot(results, paths["png"])
    return paths
