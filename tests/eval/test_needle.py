"""`peakclips make-needle`: deterministic files, a needle exactly where benchmark.jsonl says (and
nowhere else), hard cuts around it, answers rotated over the option letters, a valid manifest."""

from __future__ import annotations

import json
import subprocess
import sys

from peakclips.eval.needle import find_needle, make_needle
from peakclips.manifest import read_manifest
from peakclips.video import iter_frames, probe, to_rgb
from tests.conftest import REPO


def test_the_needle_shows_exactly_in_its_window(needle_set):
    out, items = needle_set
    for item in items:
        (a, b), = item["windows_s"]
        info = probe(str(out / item["video"]))
        assert abs(info.duration_s - item["duration_s"]) < 0.2 and b - a == 2.0
        seen = [(f.time_s, find_needle(to_rgb(f.frame))) for f in iter_frames(str(out / item["video"]))]
        colour = item["options"][item["answer"]]
        assert all((c == colour) == (a <= t < b) for t, c in seen), item["id"]  # decoded H.264, not the raw frames
        assert all(c in (None, colour) for _, c in seen)


def test_answers_rotate_over_the_letters_and_the_manifest_is_valid(needle_set):
    out, items = needle_set
    assert [x["answer"] for x in items] == [i % 4 for i in range(len(items))]
    assert all(len(set(x["options"])) == 4 for x in items)
    rows = read_manifest(out / "manifest.jsonl")
    assert [r.video_id for r in rows] == [x["id"] for x in items]
    for row, item in zip(rows, items):
        assert row.uri == str(out / item["video"]) and row.queries and row.license
        assert (row.qa[0].question, row.qa[0].options, row.qa[0].answer) == (item["question"], item["options"], item["answer"])


def test_same_arguments_same_bytes(tmp_path):
    args = {"videos": 2, "duration_s": 6.0, "seed": 7, "fps": 6, "size": (64, 36), "needle_s": 1.0, "log": lambda *_: None}
    make_needle(tmp_path / "a", **args)
    make_needle(tmp_path / "b", **args)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    assert len(files) == 4
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    other = make_needle(tmp_path / "c", **{**args, "seed": 8})
    assert other != [json.loads(x) for x in (tmp_path / "a" / "benchmark.jsonl").read_text().splitlines()]


def test_bad_arguments_are_one_line_errors(tmp_path):
    cmd = [sys.executable, "-m", "peakclips.cli", "make-needle", str(tmp_path / "o"), "--duration-s", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--duration-s" in proc.stderr
    proc = subprocess.run(cmd[:-2] + ["--size", "big"], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert proc.returncode == 2 and "--size expects WIDTHxHEIGHT" in proc.stderr
