"""Manifest: whole-file validation with line numbers, shard selection, safe unique keys."""

import json

import pytest

from peakclips import manifest
from peakclips.manifest import (
    ManifestError,
    parse_shards,
    plan_manifest,
    plan_tasks,
    read_manifest,
    safe_key,
)
from tests.conftest import SAMPLE_MANIFEST


def write(tmp_path, lines):
    p = tmp_path / "m.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def ok(i):
    return json.dumps({"video_id": f"v{i}", "uri": f"v{i}.mp4"})


@pytest.mark.parametrize("bad, message", [
    ("{not json", "line 2: not valid JSON"),
    ('{"uri": "a.mp4"}', "line 2: video_id"),
    ('{"video_id": "x"}', "line 2: uri"),
    ('{"video_id": "x", "uri": "a", "colour": 1}', "line 2: colour"),
    ('[1, 2]', "line 2: expected a JSON object"),
    ('{"video_id": "x", "uri": "a", "qa": [{"question": "q", "options": ["a", "b"], "answer": 2}]}', "line 2: qa.0.answer"),
])
def test_malformed_line_is_named(tmp_path, bad, message):
    with pytest.raises(ManifestError, match=message):
        read_manifest(write(tmp_path, [ok(1), bad, ok(3)]))


def test_duplicate_id_names_both_lines(tmp_path):
    with pytest.raises(ManifestError, match=r"line 3: duplicate video_id 'v1' \(first on line 1\)"):
        read_manifest(write(tmp_path, [ok(1), ok(2), ok(1)]))


def test_relative_uris_resolve_against_the_manifest_folder(tmp_path):
    rows = read_manifest(write(tmp_path, [ok(1)]))
    assert rows[0].uri == str(tmp_path / "v1.mp4")


def test_sample_manifest_is_valid():
    rows = read_manifest(SAMPLE_MANIFEST)
    assert len(rows) == 6 and all(r.license for r in rows)


@pytest.mark.parametrize("spec, n, expected", [
    (None, 3, [0, 1, 2]), ("all", 2, [0, 1]), ("7", 10, [7]), ("0,3,5", 10, [0, 3, 5]),
    ("0-99", 3, [0, 1, 2]), ("2-4,1", 10, [1, 2, 3, 4]),
])
def test_parse_shards(spec, n, expected):
    assert parse_shards(spec, n) == expected


@pytest.mark.parametrize("spec", ["a", "3-1", "1-", "50"])
def test_bad_shard_selection(spec):
    with pytest.raises(ManifestError):
        parse_shards(spec, 10)


def test_keys_are_safe_and_unique_deterministically(tmp_path):
    ids = ["a.b", "a_b", "a/b", "ok-1", "..", "a b"]
    rows = read_manifest(write(tmp_path, [json.dumps({"video_id": i, "uri": "x.mp4"}) for i in ids]))
    tasks = plan_tasks(rows, shard_size=4)
    keys = [t.key for t in tasks]
    assert len(set(keys)) == len(keys)
    assert all(safe_key(k) == k for k in keys)
    assert [t.shard_id for t in tasks] == [0, 0, 0, 0, 1, 1]
    assert keys == [t.key for t in plan_tasks(rows, shard_size=4)]


def test_a_shard_selection_keeps_only_its_videos_and_still_checks_every_line(tmp_path):
    rows = [ok(i) for i in range(100)]  # 10 shards of 10
    plan = plan_manifest(write(tmp_path, rows), 10, "2,5-6")
    assert (plan.num_rows, plan.num_shards, plan.selected) == (100, 10, [2, 5, 6])
    assert [t.index for t in plan.tasks] == [*range(20, 30), *range(50, 70)]
    assert plan.tasks[0].key == "v20" and plan.tasks[0].row.video_id == "v20"
    # A bad line or a duplicate outside the selected shards still stops the run, named.
    with pytest.raises(ManifestError, match="line 91: not valid JSON"):
        plan_manifest(write(tmp_path, [*rows[:90], "{", *rows[91:]]), 10, "0")
    with pytest.raises(ManifestError, match=r"line 100: duplicate video_id 'v3' \(first on line 4\)"):
        plan_manifest(write(tmp_path, [*rows[:99], ok(3)]), 10, "0")


def test_a_hash_collision_of_two_ids_is_no_duplicate(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "_hash64", lambda text: 7)  # every id collides
    plan = plan_manifest(write(tmp_path, [ok(i) for i in range(5)]), 2)
    assert [t.row.video_id for t in plan.tasks] == [f"v{i}" for i in range(5)]
    with pytest.raises(ManifestError, match=r"line 6: duplicate video_id 'v2' \(first on line 3\)"):
        plan_manifest(write(tmp_path, [*(ok(i) for i in range(5)), ok(2)]), 2)
