"""Readers of the published annotation formats, on small hand-made files in each format (nothing
downloaded): Video-MME (the lmms-lab parquet, and the repo's nested JSON), MLVU dev (per-task
JSON, generation tasks left out), LongVideoBench (lvb_val.json), and make-needle's jsonl."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from peakclips.eval.benchmarks import BenchmarkError, read_benchmark

VIDEOMME_ROWS = [
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-1",
     "task_type": "Counting Problem", "question": "When demonstrating the Germany modern Christmas tree is "
     "initially decorated with apples, candles and berries, which kind of the decoration has the largest number?",
     "options": ["A. Apples.", "B. Candles.", "C. Berries.", "D. The three kinds are of the same number."],
     "answer": "C"},
    {"video_id": "001", "duration": "short", "domain": "Knowledge", "sub_category": "Humanity & History",
     "url": "https://www.youtube.com/watch?v=fFjv93ACGo8", "videoID": "fFjv93ACGo8", "question_id": "001-2",
     "task_type": "Information Synopsis", "question": "What is the genre of this video?",
     "options": ["A. It is a news report.", "B. It is a documentary.", "C. It is a vlog.", "D. It is a cartoon."],
     "answer": "B"},
]


def test_videomme_parquet_as_lmms_lab_publishes_it(tmp_path):
    (tmp_path / "videomme").mkdir()
    pq.write_table(pa.Table.from_pylist(VIDEOMME_ROWS), tmp_path / "videomme" / "test-00000-of-00001.parquet")
    items = read_benchmark(tmp_path / "videomme" / "test-00000-of-00001.parquet", "videomme")
    assert [i.id for i in items] == ["001-1", "001-2"]
    assert items[0].options == ("Apples.", "Candles.", "Berries.", "The three kinds are of the same number.")
    assert (items[0].answer, items[1].answer) == (2, 1) and items[0].task == "short"
    assert items[0].video == str(tmp_path / "data" / "fFjv93ACGo8.mp4") and items[0].windows_s is None


def test_videomme_nested_json(tmp_path):
    nested = [{"video_id": "001", "duration": "short", "videoID": "fFjv93ACGo8",
               "questions": [{k: r[k] for k in ("question_id", "task_type", "question", "options", "answer")}
                             for r in VIDEOMME_ROWS]}]
    (tmp_path / "videomme.json").write_text(json.dumps(nested))
    items = read_benchmark(tmp_path / "videomme.json", "videomme", videos=tmp_path / "v")
    assert [(i.id, i.answer, i.video) for i in items] == [("001-1", 2, str(tmp_path / "v/fFjv93ACGo8.mp4")),
                                                          ("001-2", 1, str(tmp_path / "v/fFjv93ACGo8.mp4"))]


def test_mlvu_dev_folder(tmp_path):
    json_dir = tmp_path / "MLVU" / "json"
    json_dir.mkdir(parents=True)
    (json_dir / "2_needle.json").write_text(json.dumps([
        {"video": "needle_32.mp4", "duration": 467.98, "question": "What does the hand coming out of the computer do?",
         "candidates": ["Delivers a product", "Shakes the woman's hand", "Takes the woman's credit card",
                        "Points at something on the screen"], "answer": "Delivers a product",
         "question_type": "findNeedle"}]))
    (json_dir / "4_count.json").write_text(json.dumps([
        {"video": "count_126.mp4", "duration": 572.86, "question": "Throughout this video, what is the total count "
         "of occurrences for the 'sneezing' action?", "candidates": ["3", "1", "5", "2"], "answer": "2",
         "question_type": "count"}]))
    (json_dir / "9_summary.json").write_text(json.dumps([
        {"video": "summary_1.mp4", "duration": 700.0, "question": "Please summarize this video.",
         "answer": "A man ...", "question_type": "summary"}]))
    items = read_benchmark(json_dir, "mlvu")
    assert [(i.id, i.answer, i.task) for i in items] == [("2_needle/0", 0, "findNeedle"), ("4_count/0", 3, "count")]
    assert items[0].video == str(tmp_path / "MLVU" / "video" / "2_needle" / "needle_32.mp4")
    assert len(read_benchmark(json_dir / "4_count.json", "mlvu")) == 1


def test_longvideobench_val(tmp_path):
    (tmp_path / "lvb_val.json").write_text(json.dumps([
        {"video_id": "86CxyhFV9MI", "question": "In the video, which subtitles appear at the same time as the man "
         "with black hair, dressed in grey clothes with black sleeves, on stage?",
         "question_wo_referring_query": "Which subtitles appear at the same time?",
         "candidates": ["promisc has come to an end", "some things are already planted", "I was just scared",
                        "the lights went out"], "correct_choice": 1, "position": [3540], "topic_category": "NP-News-Programs",
         "question_category": "TOS", "level": "L2-Relation", "id": "86CxyhFV9MI_0", "video_path": "86CxyhFV9MI.mp4",
         "subtitle_path": "86CxyhFV9MI_en.json", "duration_group": 600, "starting_timestamp_for_subtitles": 0,
         "duration": 527.0, "view_count": 23}]))
    (item,) = read_benchmark(tmp_path / "lvb_val.json", "longvideobench")
    assert (item.id, item.answer, item.task, len(item.options)) == ("86CxyhFV9MI_0", 1, "TOS", 4)
    assert item.video == str(tmp_path / "videos" / "86CxyhFV9MI.mp4")


def test_needle_jsonl_paths_are_relative_to_the_file(needle_set):
    out, raw = needle_set
    items = read_benchmark(out / "benchmark.jsonl", "needle")
    assert [i.windows_s for i in items] == [tuple(tuple(w) for w in x["windows_s"]) for x in raw]
    assert items[0].video == str(out / raw[0]["video"])


@pytest.mark.parametrize("fmt, text, message", [
    ("longvideobench", [{"id": "a", "video_path": "a.mp4", "question": "q", "candidates": ["x", "y"],
                         "correct_choice": 2}], "entry 1: answer 2 is not an index into 2 options"),
    ("longvideobench", [{"id": "a", "question": "q", "candidates": ["x", "y"]}], "entry 1: missing 'video_path'"),
    ("mlvu", [{"video": "a.mp4", "question": "q", "candidates": ["x", "y"], "answer": "z"}],
     "entry 1: answer 'z' is not one of the candidates"),
    ("videomme", [{"videoID": "v", "question_id": "1", "question": "q", "options": ["A. x"], "answer": "A"}],
     "entry 1: expected 2-10 options, got 1"),
    ("needle", [{"id": "a", "video": "a.mp4", "question": "q", "options": ["x", "y"], "answer": 0},
                {"id": "a", "video": "b.mp4", "question": "q", "options": ["x", "y"], "answer": 1}],
     "question id 'a' appears twice"),
])
def test_malformed_files_name_the_file_and_entry(tmp_path, fmt, text, message):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(text))
    with pytest.raises(BenchmarkError, match=message):
        read_benchmark(path, fmt)
