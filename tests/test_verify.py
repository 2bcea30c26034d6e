"""`peakclips verify` names every kind of damage to a finished dataset; `peakclips stats`
reports its funnel. Each case damages a copy of the sample run in one way."""

import io
import json
import shutil
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from peakclips.cli import main
from peakclips.verify import verify

pytestmark = pytest.mark.slow  # they read the session's sample run
SHARD = "peakclips-000000"


@pytest.fixture
def dataset(sample_output, tmp_path):
    out, _ = sample_output
    copy = tmp_path / "d"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("_hub", "report", "README.md"))
    return copy


def rewrite_tar(folder, edit):
    """Rebuild the shard's tar from edit(list of (TarInfo, bytes)) -> list of (TarInfo, bytes)."""
    path = folder / f"{SHARD}.tar"
    with tarfile.open(path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in edit(members):
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())


def edit_first_json(change):
    def edit(members):
        out, done = [], False
        for info, data in members:
            if info.name.endswith(".json") and not done:
                doc = json.loads(data)
                change(doc)
                data, done = json.dumps(doc).encode(), True
            out.append((info, data))
        return out
    return edit


def test_the_sample_verifies_clean(dataset, capsys):
    assert main(["verify", str(dataset)]) == 0
    assert "verified 1 shard(s)" in capsys.readouterr().out


@pytest.mark.parametrize("damage, expected", [
    (lambda d: rewrite_tar(d, edit_first_json(lambda j: j.update(schema_version="0.9"))), "schema_version 0.9"),
    (lambda d: rewrite_tar(d, edit_first_json(lambda j: j.update(config_hash="0" * 16))), "config hash"),
    (lambda d: rewrite_tar(d, edit_first_json(lambda j: j["queries"][0]["highlights"][0].update(end_s=999.0))),
     "highlight outside the video"),
    (lambda d: rewrite_tar(d, edit_first_json(lambda j: j["queries"][0]["scene_scores"].pop())), "scores 3 of 4 scenes"),
    (lambda d: rewrite_tar(d, lambda ms: [m for m in ms if m[0].name != "sintel_10s.mp4"]), "sample sintel_10s has members ['json']"),
    (lambda d: rewrite_tar(d, lambda ms: ms[2:4] + ms[:2] + ms[4:]), "disagree with the tar's samples"),
    (lambda d: rewrite_tar(d, lambda ms: [(m, b) for m, b in ms if not setattr(m, "mtime", 12345)]), "has mtime 12345"),
    (lambda d: rewrite_tar(d, lambda ms: ms + [ms[0]]), "not adjacent"),
    (lambda d: (d / f"{SHARD}.tar.tmp-1a2b3c4d").write_bytes(b"x"), "temporary file"),
    (lambda d: (d / "_staging" / "000000").mkdir(parents=True), "staging left for complete shard 000000"),
    (lambda d: (d / f"{SHARD}_stats.json").unlink(), "shard incomplete"),
])
def test_damage_is_named(dataset, damage, expected):
    damage(dataset)
    checked, defects = verify(str(dataset), decode_frames=False)
    assert any(expected in d for d in defects), defects


def test_stats_that_disagree_with_the_index_are_named(dataset):
    stats_path = dataset / f"{SHARD}_stats.json"
    stats = json.loads(stats_path.read_text())
    stats["videos"]["ok"] += 1
    stats["highlights"] -= 1
    stats["errors"] = {"ingest:not_found": 1}
    stats_path.write_text(json.dumps(stats))
    defects = verify(str(dataset), decode_frames=False)[1]
    for what in ("stats videos", "stats say 13 highlights", "stats errors"):
        assert any(what in d for d in defects), (what, defects)


def test_index_that_disagrees_with_the_json_is_named(dataset):
    path = dataset / f"{SHARD}.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    rows[0]["highlights_json"] = "[]"
    pq.write_table(pa.Table.from_pylist(rows, schema=table.schema), path)
    assert any("index and JSON disagree" in d for d in verify(str(dataset), decode_frames=False)[1])


def test_stats_prints_the_funnel(dataset, capsys):
    assert main(["stats", str(dataset)]) == 0
    text = capsys.readouterr().out
    assert "videos: 6 in, 5 ok, 1 dropped, 0 error" in text
    assert "queries: 18 in, 13 ok, 5 dropped; highlights: 14" in text
    assert "drops: query:no_highlight=2, too_few_scenes=1" in text
    assert "LLM: 0 calls" in text and "durations:" in text and "14 P1, 0 P2" in text
    assert main(["stats", str(dataset), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["videos"] == {"total": 6, "ok": 5, "dropped": 1, "error": 0}
    assert data["duration_s"]["n"] == 6 and data["duration_s"]["max"] == 60.0
