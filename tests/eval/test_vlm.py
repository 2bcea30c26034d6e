"""The answering VLM's request (the frames in time order, each after its time, then lmms-eval's
question block) and its failures: a request the server keeps failing is that item's error for
the run, recorded in results.json, and the next run asks it again."""

from __future__ import annotations

import base64

from peakclips.config import AnnotatorConfig
from peakclips.eval.benchmarks import Item
from peakclips.eval.harness import EvalSettings, evaluate
from peakclips.eval.vlm import Answerer
from tests.vlm_server import SeeingServer


def test_the_request_reads_like_lmms_eval(tmp_path):
    cfg = AnnotatorConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="m", cache=str(tmp_path / "c.sqlite"))
    item = Item("q1", "v.mp4", "What colour is the car?", ("red", "blue", "green"), 1)
    tiny_jpeg = base64.b64decode(
        "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5"
        "PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==")
    (message,) = Answerer(cfg).messages(item, 61.04, [1.25, 30.0], [tiny_jpeg, tiny_jpeg])
    parts = message["content"]
    assert [p["type"] for p in parts] == ["text", "text", "image_url", "text", "image_url", "text"]
    assert parts[0]["text"] == ("These are 2 frames of a video of 61.0 s, in time order; each follows its time "
                                "in seconds.\n")
    assert (parts[1]["text"], parts[3]["text"]) == ("1.2 s", "30.0 s")
    assert parts[-1]["text"] == ("Question: What colour is the car?\nA. red\nB. blue\nC. green\n"
                                 "Answer with the option's letter from the given choices directly.\n")


def test_a_failing_request_is_an_error_now_and_asked_again_later(needle_set, tmp_path):
    out, _ = needle_set

    def run(srv):
        vlm = AnnotatorConfig(backend="openai", base_url=srv.base_url, model="seeing-vlm",
                              cache=str(tmp_path / "vlm.sqlite"), max_retries=0)
        return evaluate(EvalSettings(benchmark=str(out / "benchmark.jsonl"), format="needle", selectors=["oracle"],
                                     ks=[2], output=str(tmp_path / "e"), limit=3, vlm=vlm), log=lambda *_: None)

    with SeeingServer(script=["500"]) as srv:
        (first,) = run(srv)["runs"]
    assert (first["answered"], first["errors"]) == (2, 1)
    (failed,) = [e for e in first["items"] if "error" in e]
    assert failed["error"].startswith("llm_server_error") and "correct" not in failed
    assert first["accuracy"] == 1.0  # over the answered ones; the table says how many were not
    with SeeingServer() as srv:
        (second,) = run(srv)["runs"]
        assert srv.count(path="/chat/completions") == 1
    assert (second["answered"], second["errors"], second["accuracy"]) == (3, 0, 1.0)
