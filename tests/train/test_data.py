"""The shard stream: where shards come from, what a bad sample costs, seeds, workers, resume."""

from __future__ import annotations

import io
import json
import tarfile

import fsspec
import pytest
import torch

from peakclips.train import data, tasks
from tests.train.shards import colour_samples, write_shard


def _keys(stream, n):
    it = iter(stream)
    return [(ex["key"], ex["target"]) for ex in (next(it) for _ in range(n))]


def _stream(shards, **kw):
    args = dict(num_frames=4, seed=0, shuffle_buffer=3)
    return data.ExampleStream(shards, tasks.sft2_examples, **(args | kw))


def test_expand_folder_brace_glob_list_and_fsspec(colour_shards, tmp_path):
    both = [str(colour_shards / "peakclips-000000.tar"), str(colour_shards / "peakclips-000001.tar")]
    assert data.expand_shards(str(colour_shards)) == both
    assert data.expand_shards(str(colour_shards / "peakclips-{000000..000001}.tar")) == both
    assert data.expand_shards(str(colour_shards / "*-000001.tar")) == both[1:]
    assert data.expand_shards(both) == both
    mem = fsspec.filesystem("memory")
    mem.pipe("/ds/peakclips-000000.tar", (colour_shards / "peakclips-000000.tar").read_bytes())
    mem.pipe("/ds/peakclips-000000_stats.json", (colour_shards / "peakclips-000000_stats.json").read_bytes())
    mem.pipe("/ds/peakclips-000001.tar", b"still being written: no _stats.json yet")
    (uri,) = data.expand_shards("memory://ds")
    assert uri.endswith("/ds/peakclips-000000.tar")
    assert [s.key for s, _ in data.read_samples(uri)] == ["video0", "video1", "video2"]
    assert len(data.expand_shards("memory:///ds/*.tar")) == 2  # an explicit glob takes what it matches
    with pytest.raises(data.DataError, match="no complete shard"):
        data.expand_shards(str(tmp_path / "empty"))


def test_a_bad_sample_is_skipped_and_the_rest_is_read(tmp_path, caplog):
    good = colour_samples(2)
    bad = dict(good[0][0], key="broken", duration_s="long")  # fails the schema
    path = write_shard(tmp_path / "peakclips-000000.tar", good)  # the writer validates: damage it after
    with tarfile.open(path, "a") as tar:  # a sample that fails the schema, and a json without its mp4
        for name, body in (("broken.json", json.dumps(bad).encode()), ("broken.mp4", good[0][1]),
                           ("lonely.json", json.dumps(good[0][0]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    keys = [s.key for s, _ in data.read_samples(str(path))]
    assert keys == ["video0", "video1"]
    assert "broken.json fails the schema" in caplog.text and "lonely lacks" in caplog.text


def test_stream_is_deterministic_per_seed_and_covers_every_example(colour_shards):
    shards = data.expand_shards(str(colour_shards))
    n = 8  # one epoch: 4 videos x 2 queries
    first, again, other = _keys(_stream(shards), n), _keys(_stream(shards), n), _keys(_stream(shards, seed=1), n)
    assert first == again
    assert first != other
    assert sorted(first) == sorted(other) and len(set(first)) == n
    ex = next(iter(_stream(shards)))
    assert ex["frames"].shape == (4, 56, 56, 3) and len(ex["times"]) == 4 and ex["duration"] == 8.0


def test_workers_split_the_shards_without_overlap(colour_shards):
    shards = data.expand_shards(str(colour_shards))
    loader = torch.utils.data.DataLoader(_stream(shards), batch_size=2, num_workers=2, collate_fn=list)
    it = iter(loader)
    batches = [next(it) for _ in range(4)]  # worker 0 (shard 0: 6 examples), worker 1 (shard 1: 2), ...
    keys = [{ex["key"] for ex in b} for b in batches]
    assert keys[0] <= {"video0", "video1", "video2"} and keys[1] == {"video3"}
    assert keys[2] <= {"video0", "video1", "video2"} and keys[3] == {"video3"}


def test_resume_skips_consumed_batches_without_decoding(colour_shards, monkeypatch):
    shards = data.expand_shards(str(colour_shards))
    full = _keys(_stream(shards, batch_size=2), 12)
    decoded = []
    real = data.decode_frames
    monkeypatch.setattr(data, "decode_frames", lambda *a: decoded.append(1) or real(*a))
    resumed = _keys(_stream(shards, batch_size=2, consumed_batches=3), 6)
    assert resumed == full[6:]
    assert len(decoded) == 6  # the 6 skipped examples were never decoded


@pytest.mark.parametrize("consumed, expected", [(0, [0, 0]), (1, [2, 0]), (5, [6, 4])])
def test_worker_share_of_consumed_batches(consumed, expected):
    assert [data.worker_skip(consumed, w, 2, 2) for w in (0, 1)] == expected


def test_a_stage_without_examples_says_so(colour_shards, tmp_path):
    doc, mp4 = colour_samples(1)[0]
    path = write_shard(tmp_path / "peakclips-000000.tar", [(dict(doc, qa=[]), mp4)])
    stream = data.ExampleStream([str(path)], tasks.rl_examples, num_frames=4, seed=0, shuffle_buffer=2)
    with pytest.raises(data.DataError, match="no training examples"):
        next(iter(stream))
