"""`peakclips report DIR`: one self-contained HTML file about a built dataset.

Aggregate PNG plots (peakclips/report/plots.py) from the stats, the Parquet indexes and every
sample's JSON: the funnel, drops by reason, video durations, scene lengths, score
distributions, highlight length against video length. Then, for the first `max_videos` samples,
a timeline: chapters and scenes (captions on hover), one relevance heat-strip per query (the
fused score of every scene; scores and reasons on hover) with its P1/P2 highlight clips under
it, and thumbnails of the candidate frames. Images are embedded as data URIs and the page has
no script and no external resource, so it opens anywhere offline. The PNGs are also written
next to the HTML. Reads finished shards only.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from peakclips import __version__, storage
from peakclips.dataset import iter_samples, load_index
from peakclips.report import plots
from peakclips.shards import complete_shards
from peakclips.stats import dataset_stats

THUMBNAILS = 16


def _pct(t: float, duration: float) -> float:
    return round(100.0 * max(0.0, min(t, duration)) / duration, 3) if duration > 0 else 0.0


def _span(start: float, end: float, duration: float) -> dict:
    left = _pct(start, duration)
    return {"left": left, "width": max(0.15, round(_pct(end, duration) - left, 3))}


def heat_color(final: float) -> str:
    """A fused 1-5 score as a colour (matplotlib's YlOrRd: pale = 1, dark red = 5)."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    return to_hex(colormaps["YlOrRd"](0.05 + 0.9 * (min(max(final, 1.0), 5.0) - 1.0) / 4.0))


def thumbnails(mp4: bytes, times: list[float], n: int = THUMBNAILS, width: int = 128) -> list[dict]:
    """n candidate frames spread over the video as small JPEG data URIs, decoded one by one."""
    from PIL import Image

    from peakclips.video import shard_frames

    wanted = sorted({round(i * (len(times) - 1) / max(1, n - 1)) for i in range(n)}) if times else []
    out = []
    for i, frame in enumerate(shard_frames(mp4)):
        if i in wanted:
            img = frame.to_image()
            img.thumbnail((width, width), Image.BILINEAR)
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=70)
            out.append({"src": "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode(),
                        "t": times[i] if i < len(times) else None})
        if len(out) == len(wanted):
            break
    return out


def timeline(sample: dict) -> dict:
    """Everything the template draws for one video, positions in % of its duration."""
    d = sample["duration_s"]
    scenes = [dict(_span(s["start_s"], s["end_s"], d), id=s["scene_id"], caption=s["caption"],
                   label=f"scene {s['scene_id']}: {s['start_s']:.1f}-{s['end_s']:.1f} s") for s in sample["scenes"]]
    chapters = [dict(_span(c["start_s"], c["end_s"], d), caption=c["caption"]) for c in sample["chapters"]]
    queries = []
    for q in sample["queries"]:
        cells = []
        for s, sc in zip(sample["scenes"], q["scene_scores"]):
            clip = f", CLIP {sc['clip']:.3f}" if sc["clip"] is not None else ""
            cells.append(dict(_span(s["start_s"], s["end_s"], d), color=heat_color(sc["final"]),
                              title=f"scene {s['scene_id']}: LLM {sc['llm']}{clip}, final {sc['final']:.2f} - {sc['reason']}"))
        highlights = [dict(_span(h["start_s"], h["end_s"], d), priority=h["priority"],
                           title=f"{h['priority']} {h['start_s']:.1f}-{h['end_s']:.1f} s: {h['reason']}")
                      for h in q["highlights"]]
        queries.append({"query": q["query"], "origin": q["origin"], "cells": cells, "highlights": highlights})
    return {"key": sample["key"], "video_id": sample["video_id"], "duration": d, "source": sample["source"],
            "license": sample["license"], "summary": sample["summary"], "scenes": scenes, "chapters": chapters,
            "queries": queries}


def gather(output: str) -> dict:
    """The numbers behind the plots, from the stats, the indexes and every sample's JSON."""
    stats = dataset_stats(output)
    rows = load_index(output, complete_shards(output))
    scene_lengths, points = [], []
    for _, sample, _ in iter_samples(output):
        scene_lengths += [s["end_s"] - s["start_s"] for s in sample["scenes"]]
        points += [(sample["duration_s"], h["end_s"] - h["start_s"], h["priority"])
                   for q in sample["queries"] for h in q["highlights"]]
    reasons = {**stats["video_drop_reasons"], **{f"query:{k}": n for k, n in stats["query_drop_reasons"].items()},
               **{f"error {k}": n for k, n in stats["errors"].items()}}
    return {
        "stats": stats, "reasons": reasons, "scene_lengths": scene_lengths, "points": points,
        "durations": list({r["video_id"]: r["duration_s"] for r in rows if r["duration_s"]}.values()),
        "llm": [s for r in rows for s in (r["llm_scores"] or [])],
        "final": [s for r in rows for s in (r["final_scores"] or [])],
        "clip": [s for r in rows for s in (r["clip_sims"] or []) if s is not None],
    }


def render_plots(data: dict) -> dict[str, bytes]:
    return {
        "funnel.png": plots.funnel(data["stats"]),
        "drops.png": plots.drops(data["reasons"]),
        "durations.png": plots.histogram(data["durations"], "Video durations", "seconds"),
        "scene_lengths.png": plots.histogram(data["scene_lengths"], "Scene lengths (kept videos)", "seconds",
                                             color="#72b7b2"),
        "scores.png": plots.scores(data["llm"], data["final"], data["clip"]),
        "highlights.png": plots.highlight_vs_video(data["points"]),
    }


def render_html(output: str, stats: dict, pngs: dict[str, bytes], videos: list[dict]) -> str:
    """The page (autoescaped: captions, queries and reasons are model output, never markup)."""
    import jinja2

    from peakclips.stats import format_stats

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.jinja").render(
        title=f"PeakClips report: {Path(output.rstrip('/')).name}", output=output, version=__version__,
        summary=format_stats(stats), stats=stats, videos=videos, total_videos=stats["videos"].get("ok", 0),
        plots={name: "data:image/png;base64," + base64.b64encode(png).decode() for name, png in pngs.items()},
    )


def default_out_dir(output: str) -> str:
    """DIR/report for a dataset in a local folder; for one on object storage, a folder on this
    machine where a browser can open the page: `./<dataset folder's name>-report`.

    >>> default_out_dir("out/sample"), default_out_dir("s3://bucket/runs/peakclips/")
    ('out/sample/report', 'peakclips-report')
    """
    if storage.protocol(output) in ("", "file"):
        return storage.join(output, "report")
    return f"{output.rstrip('/').rsplit('/', 1)[-1]}-report"


def build_report(output: str, out_dir: str | None = None, max_videos: int = 20) -> str:
    """Write `index.html` (and the PNGs) to out_dir (default: `default_out_dir`); returns its path."""
    out_dir = out_dir or default_out_dir(output)
    data = gather(output)
    pngs = render_plots(data)
    for name, png in pngs.items():
        storage.write_atomic(storage.join(out_dir, name), png)
    videos = [dict(timeline(sample), thumbs=thumbnails(mp4, sample["frame_times_s"]))
              for _, sample, mp4 in iter_samples(output, frames=True, limit=max_videos)]
    html = render_html(output, data["stats"], pngs, videos)
    path = storage.join(out_dir, "index.html")
    storage.write_atomic(path, html.encode())
    return path
