"""Benchmark annotation files -> normalized items, one reader per published format.

An `Item` is one multiple-choice question about one local video: `id`, `video` (a path), the
`question`, the `options` (their texts, without letters), `answer` (index into the options; None
where the split publishes no answers), `windows_s` (ground-truth spans in seconds, only where
the benchmark has them: the generated needle set) and `task` (the benchmark's category).

| format | annotation file | videos (`--videos`; default) |
|---|---|---|
| `needle` | `benchmark.jsonl` of `peakclips make-needle`: `id`, `video`, `question`, `options`, `answer`, `windows_s` | paths relative to the file |
| `videomme` | lmms-lab/Video-MME `videomme/test-00000-of-00001.parquet` (or the same rows as JSON / JSON lines, flat or nested under `questions`): `videoID`, `question_id`, `question`, `options` `["A. ...", ...]`, `answer` `"A"`, `duration` | `VIDEOS/<videoID>.mp4`; default `../data` beside the parquet's folder |
| `mlvu` | MLVU dev `MLVU/json/<N_task>.json`, one file or the folder: `video`, `question`, `candidates`, `answer` (the option's text), `question_type` | `VIDEOS/<N_task>/<video>`; default `MLVU/video` |
| `longvideobench` | `lvb_val.json`: `id`, `video_path`, `question`, `candidates`, `correct_choice` (index), `question_category` | `VIDEOS/<video_path>`; default `videos/` beside the file |

MLVU's generation tasks (sub-scene captioning, summary) have no `candidates` and are left out.
Videos are not checked here: a missing or unreadable one becomes that item's error in the run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from peakclips.eval import EvalError

FORMATS = ("needle", "videomme", "mlvu", "longvideobench")
LETTERS = "ABCDEFGHIJ"


class BenchmarkError(EvalError):
    """An annotation file that cannot be read as its format; the message names the file and entry."""


@dataclass(frozen=True)
class Item:
    id: str
    video: str
    question: str
    options: tuple[str, ...]
    answer: int | None
    windows_s: tuple[tuple[float, float], ...] | None = None
    task: str | None = None

    def as_dict(self) -> dict:
        return {"id": self.id, "video": self.video, "question": self.question, "options": list(self.options),
                "answer": self.answer, "windows_s": [list(w) for w in self.windows_s] if self.windows_s else None,
                "task": self.task}


def read_benchmark(path: str | Path, fmt: str, videos: str | Path | None = None) -> list[Item]:
    """Every item of the annotation file(s) at `path`, in file order; ids are unique."""
    path = Path(path)
    if fmt not in FORMATS:
        raise BenchmarkError(f"unknown benchmark format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not path.exists():
        raise BenchmarkError(f"benchmark annotations not found: {path}")
    reader = {"needle": read_needle, "videomme": read_videomme, "mlvu": read_mlvu,
              "longvideobench": read_longvideobench}[fmt]
    items = [replace(i, video=os.path.abspath(i.video)) for i in reader(path, Path(videos) if videos else None)]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise BenchmarkError(f"{path}: question id {item.id!r} appears twice")
        seen.add(item.id)
    if not items:
        raise BenchmarkError(f"{path}: no multiple-choice question found")
    return items


def read_needle(path: Path, videos: Path | None) -> list[Item]:
    base = videos or path.parent
    out = []
    for n, row in enumerate(_records(path), start=1):
        where = f"{path} entry {n}"
        windows = tuple((float(a), float(b)) for a, b in row.get("windows_s") or [])
        out.append(Item(str(_get(row, "id", where)), str(base / _get(row, "video", where)),
                        _get(row, "question", where), _options(_get(row, "options", where), where),
                        _index(row.get("answer"), row["options"], where), windows or None, row.get("task")))
    return out


def read_videomme(path: Path, videos: Path | None) -> list[Item]:
    base = videos or path.parent.parent / "data"
    out = []
    for n, row in enumerate(_records(path), start=1):
        rows = [dict(row, **q) for q in row["questions"]] if "questions" in row else [row]
        for r in rows:
            where = f"{path} entry {n}"
            video = r.get("videoID") or _get(r, "video_id", where)
            options = _options(_get(r, "options", where), where)
            letter = r.get("answer")
            answer = LETTERS.index(letter.strip().upper()) if isinstance(letter, str) and letter.strip() else None
            if answer is not None and answer >= len(options):
                raise BenchmarkError(f"{where}: answer {letter!r} is not one of {len(options)} options")
            out.append(Item(str(_get(r, "question_id", where)), str(base / f"{video}.mp4"), _get(r, "question", where),
                            options, answer, task=r.get("duration")))
    return out


def read_mlvu(path: Path, videos: Path | None) -> list[Item]:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    base = videos or files[0].parent.parent / "video"
    out = []
    for f in files:
        for n, row in enumerate(_records(f), start=1):
            where = f"{f} entry {n}"
            if "candidates" not in row:  # a generation task
                continue
            options = _options(row["candidates"], where)
            answer = row.get("answer")
            if answer is not None and answer not in options:
                raise BenchmarkError(f"{where}: answer {answer!r} is not one of the candidates")
            out.append(Item(f"{f.stem}/{n - 1}", str(base / f.stem / _get(row, "video", where)),
                            _get(row, "question", where), options,
                            options.index(answer) if answer is not None else None, task=row.get("question_type")))
    return out


def read_longvideobench(path: Path, videos: Path | None) -> list[Item]:
    base = videos or path.parent / "videos"
    out = []
    for n, row in enumerate(_records(path), start=1):
        where = f"{path} entry {n}"
        options = _options(_get(row, "candidates", where), where)
        out.append(Item(str(_get(row, "id", where)), str(base / _get(row, "video_path", where)),
                        _get(row, "question", where), options, _index(row.get("correct_choice"), options, where),
                        task=row.get("question_category")))
    return out


def _records(path: Path) -> list[dict]:
    """Rows of a Parquet file, a JSON list, or JSON lines."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise BenchmarkError(f"{path}: neither JSON nor JSON lines ({e})") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise BenchmarkError(f"{path}: expected a list of objects")
    return data


def _get(row: dict, key: str, where: str):
    if row.get(key) is None:
        raise BenchmarkError(f"{where}: missing {key!r}")
    return row[key]


_LETTER_PREFIX = re.compile(r"^\s*\(?([A-J])\s*[.):]\s*")


def _options(options, where: str) -> tuple[str, ...]:
    """Option texts; 'A. text' / '(A) text' prefixes dropped when the letters run A, B, C, ..."""
    options = [str(o) for o in (options or [])]
    if len(options) < 2 or len(options) > len(LETTERS):
        raise BenchmarkError(f"{where}: expected 2-{len(LETTERS)} options, got {len(options)}")
    matches = [_LETTER_PREFIX.match(o) for o in options]
    if all(m and m.group(1) == LETTERS[i] for i, m in enumerate(matches)):
        options = [o[m.end():] for o, m in zip(options, matches)]
    return tuple(options)


def _index(answer, options, where: str) -> int | None:
    if answer is None:
        return None
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(options):
        raise BenchmarkError(f"{where}: answer {answer!r} is not an index into {len(options)} options")
    return answer
