"""Synthetic PeakClips shards for the trainer tests: exact annotations, tiny frames, fast to decode.

Each video is a run of solid-colour scenes; the candidate frames are stored as the pipeline
stores them (KEY.json validated against the schema, KEY.mp4 an H.264 stream of the T frames), and
the shards are written by the pipeline's writer (`write_shard`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from peakclips.schema import Sample
from tests.media import candidate_mp4
from tests.shards import video_row, write_dataset

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 60), "blue": (40, 60, 220), "yellow": (230, 220, 40)}


def make_sample(key: str, scenes: list[tuple[float, float, str]], queries: dict[str, list[tuple]],
                qa: list[dict] = (), num_frames: int = 16, size: int = 56, reason: str | None = None) -> tuple[dict, bytes]:
    """(KEY.json dict, KEY.mp4 bytes). scenes: (start, end, colour); queries: text -> [(start, end, priority)]."""
    duration = scenes[-1][1]
    times = [round((i + 0.5) * duration / num_frames, 4) for i in range(num_frames)]
    frames = []
    for t in times:
        colour = next(c for a, b, c in scenes if a <= t < b)
        frames.append(np.full((size, size, 3), COLOURS[colour], dtype=np.uint8))
    scene_rows = [{"scene_id": i, "start_s": a, "end_s": b, "start_frame": i, "end_frame": i + 1,
                   "caption": f"a {c} screen"} for i, (a, b, c) in enumerate(scenes)]
    query_rows = []
    for qid, (text, spans) in enumerate(queries.items()):
        hl = [{"start_s": a, "end_s": b, "priority": p, "scene_ids": [0], "reason": reason or f"it shows {text}."}
              for a, b, p in spans]
        scores = [{"llm": 5 if any(a <= s[0] < b for a, b, _ in spans) else 1, "clip": None,
                   "final": 5.0, "reason": "scripted"} for s in scenes]
        query_rows.append({"query_id": qid, "query": text, "origin": "manifest", "scene_scores": scores,
                           "highlights": hl})
    doc = {"video_id": key, "key": key, "source": "synthetic", "license": "CC0", "duration_s": duration,
           "fps": 24.0, "width": size, "height": size, "frame_times_s": times, "scenes": scene_rows,
           "chapters": [{"start_s": 0.0, "end_s": duration, "scene_ids": list(range(len(scenes))),
                         "caption": "colour screens"}],
           "summary": "solid colour screens", "queries": query_rows, "qa": list(qa),
           "annotator": {"backend": "reference", "model": None, "prompts": []}, "clip_model": None,
           "config_hash": "test", "peakclips_version": "0"}
    return Sample.model_validate(doc).model_dump(mode="json"), candidate_mp4(frames)


def row_from_sample(doc: dict, shard_id: int, index: int) -> dict:
    """The shard stage's input row that `doc` (a KEY.json made by `make_sample`) came from."""
    queries = [{"query": q["query"], "origin": q["origin"], "llm": [sc["llm"] for sc in q["scene_scores"]],
                "reasons": [sc["reason"] for sc in q["scene_scores"]], "final": [sc["final"] for sc in q["scene_scores"]],
                "highlights": q["highlights"]} for q in doc["queries"]]
    return video_row(doc["key"], [s["start_s"] for s in doc["scenes"]], doc["duration_s"], queries,
                     shard_id=shard_id, index=index, frame_times_s=doc["frame_times_s"],
                     captions=[s["caption"] for s in doc["scenes"]], chapters=doc["chapters"], summary=doc["summary"],
                     qa=doc["qa"], source=doc["source"], license=doc["license"], width=doc["width"],
                     height=doc["height"])


def write_shard(path: Path, samples: list[tuple[dict, bytes]]) -> Path:
    """Shard `path` (`.../peakclips-NNNNNN.tar`) holding `samples`, written by the pipeline's own
    writer (tests.shards.write_dataset): tar, index and `_stats.json`, complete."""
    shard_id = int(path.name.removesuffix(".tar").removeprefix("peakclips-"))
    write_dataset(path.parent, [(row_from_sample(doc, shard_id, i), mp4) for i, (doc, mp4) in enumerate(samples)])
    return path


FOUR = [(0.0, 2.0, "red"), (2.0, 4.0, "green"), (4.0, 6.0, "blue"), (6.0, 8.0, "yellow")]


def colour_samples(n: int = 3) -> list[tuple[dict, bytes]]:
    """n four-scene videos, each with one query per colour it highlights and one qa item."""
    out = []
    for i in range(n):
        scenes = FOUR[i % 4:] + FOUR[:i % 4]
        scenes = [(float(2 * j), float(2 * j + 2), c) for j, (_, _, c) in enumerate(scenes)]
        first, third = scenes[0][2], scenes[2][2]
        qa = [{"question": f"the {first} screen", "options": [first, "purple", "white", "black"], "answer": 0}]
        out.append(make_sample(f"video{i}", scenes, {f"the {first} screen": [(0.0, 2.0, "P1")],
                                                       f"the {third} screen": [(4.0, 6.0, "P1"), (6.0, 8.0, "P2")]},
                               qa=qa))
    return out


def _order(*colours: str) -> list[tuple[float, float, str]]:
    return [(2.0 * i, 2.0 * i + 2, c) for i, c in enumerate(colours)]


def overfit_samples() -> list[tuple[dict, bytes]]:
    """Three videos, one query each, distinct answers: the handful the learning test memorises.
    Eight candidates at 0.5, 1.5, ... 7.5 s: the times `peakclips select` takes from an 8 s video
    with 8 frames, so the trained checkpoint sees its training prompt again there."""
    return [
        make_sample("red0", _order("red", "green", "blue", "yellow"), {"the red screen": [(0.0, 2.0, "P1")]},
                    reason="red", num_frames=8),
        make_sample("green1", _order("yellow", "blue", "green", "red"),
                    {"the green screen": [(4.0, 6.0, "P1"), (6.0, 8.0, "P2")]}, reason="green", num_frames=8),
        make_sample("yellow2", _order("blue", "yellow", "red", "green"), {"the yellow screen": [(2.0, 4.0, "P1")]},
                    reason="yellow", num_frames=8),
    ]
