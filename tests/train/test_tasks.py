"""Tasks: the clips format both ways, the task mix, the examples of each stage, the prompts."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from peakclips.schema import Sample
from peakclips.train import tasks
from tests.train.shards import colour_samples, make_sample

TIMES = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]


def _sample() -> Sample:
    return Sample.model_validate(colour_samples(1)[0][0])


def test_clips_format_round_trips():
    hl = [{"start_s": 4.04, "end_s": 6.0, "priority": "P2", "reason": "b"},
          {"start_s": 0.0, "end_s": 2.0, "priority": "P1", "reason": "a"}]
    text = tasks.format_clips(hl)
    assert text == ('{"clips": [{"start_s": 0.0, "end_s": 2.0, "priority": "P1", "reason": "a"}, '
                    '{"start_s": 4.0, "end_s": 6.0, "priority": "P2", "reason": "b"}]}')
    clips, error = tasks.parse_clips(text, 8.0)
    assert error is None and [(c["start_s"], c["end_s"], c["priority"]) for c in clips] == [(0, 2, "P1"), (4, 6, "P2")]
    assert tasks.strict_clips(text, 8.0)


@pytest.mark.parametrize("text, n, why", [
    ('```json\n{"clips": [{"start_s": 1, "end_s": 2, "priority": "P1", "reason": "x"}]}\n```', 1, None),
    ('Here: {"clips": [{"start_s": -3, "end_s": 2, "priority": "P1"}, {"start_s": 9, "end_s": 12, "priority": "P2"}]}',
     1, None),  # clamped into the video; the clip wholly outside is dropped
    ('{"clips": [{"start_s": 5, "end_s": 2, "priority": "P1"}]}', 0, "no valid clip inside the video"),
    ('{"clips": [{"start_s": 1, "end_s": 2, "priority": "P3"}]}', 0, "no valid clip inside the video"),
    ('{"clips": "none"}', 0, 'no "clips" list'),
    ('[1, 2]', 0, 'no "clips" list'),
    ("the bird falls at 3 s", 0, "not JSON: Expecting value at char 0"),
    ("", 0, "not JSON: Expecting value at char 0"),
])
def test_parse_clips_is_lenient_but_never_invents(text, n, why):
    clips, error = tasks.parse_clips(text, 8.0)
    assert len(clips) == n and error == why
    assert all(0 <= c["start_s"] < c["end_s"] <= 8.0 for c in clips)


def test_strict_format_rejects_what_parse_forgives():
    ok = '{"clips": [{"start_s": 1.0, "end_s": 2.0, "priority": "P1", "reason": "x"}]}'
    assert tasks.strict_clips(ok, 8.0)
    assert not tasks.strict_clips("Sure! " + ok, 8.0)
    assert not tasks.strict_clips(ok.replace(', "reason": "x"', ""), 8.0)
    assert not tasks.strict_clips(ok.replace("2.0", "9.0"), 8.0)
    assert not tasks.strict_clips('{"clips": []}', 8.0)


def test_sft1_mixes_tasks_by_weight():
    sample, rng = _sample(), random.Random(0)
    only = tasks.sft1_examples(sample, TIMES, rng, weights={"ground": 1.0, "describe": 0.0, "rate": 0.0}, per_video=20)
    assert {ex["task"] for ex in only} == {"ground"}
    mixed = tasks.sft1_examples(sample, TIMES, rng, weights={"ground": 1.0, "describe": 1.0, "rate": 2.0},
                                per_video=2000)
    share = Counter(ex["task"] for ex in mixed)
    assert abs(share["rate"] / 2000 - 0.5) < 0.05 and abs(share["ground"] / 2000 - 0.25) < 0.05


def test_sft1_targets_come_from_the_annotations():
    sample = _sample()
    exs = tasks.sft1_examples(sample, TIMES, random.Random(1), weights={"ground": 1, "describe": 1, "rate": 1},
                              per_video=30)
    captions = {s.caption for s in sample.scenes}
    for ex in exs:
        if ex["task"] == "describe":
            assert ex["target"] in captions
        elif ex["task"] == "ground":
            assert ex["target"].startswith('{"start_s": ') and "Description: <data>" in ex["prompt"]
        else:
            assert ex["target"].startswith('{"score": ') and "Query: <data>" in ex["prompt"]


def test_sft2_and_rl_examples():
    sample = _sample()
    sft2 = tasks.sft2_examples(sample, TIMES, random.Random(0))
    assert [tasks.parse_clips(ex["target"], 8.0)[0][0]["start_s"] for ex in sft2] == [0.0, 4.0]
    rl = tasks.rl_examples(sample, TIMES, random.Random(0))
    assert len(rl) == 1 and rl[0]["target"] is None and rl[0]["qa"]["answer"] == 0
    assert rl[0]["highlights"] == [h.model_dump() for h in sample.queries[0].highlights]  # question == query 0
    other = Sample.model_validate(make_sample("v", [(0.0, 4.0, "red"), (4.0, 8.0, "blue")], {},
                                              qa=[{"question": "why?", "options": ["a", "b"], "answer": 1}])[0])
    assert tasks.rl_examples(other, TIMES, random.Random(0))[0]["highlights"] is None


def test_selector_prompt_golden():
    assert tasks.selector_prompt("the red screen", [0.5, 2.25, 7.75], 8.0) == (
        "The video lasts 8.0 s and is shown as 3 frames taken at these times (seconds): 0.5, 2.2, 7.8.\n"
        "Query: <data>the red screen</data>\n\n"
        "Find the clips of the video that matter for the query. For each clip give its start and end in seconds, "
        "a priority (P1: shows directly what the query asks for; P2: supporting context) and a one-sentence "
        "reason. Reply with JSON only, in this form:\n"
        '{"clips": [{"start_s": 1.5, "end_s": 4.0, "priority": "P1", "reason": "..."}]}\n')


def test_answerer_prompt_golden():
    assert tasks.answerer_prompt("What colour?", ["red", "blue"], [1.0, 2.5]) == (
        "These frames of a video were taken at these times (seconds): 1.0, 2.5.\n"
        "Question: <data>What colour?</data>\nA. red\nB. blue\n"
        "Answer with the option's letter from the given choices directly.\n")
