"""`peakclips verify DIR`: check every shard of a finished dataset; name each defect.

Per shard:
  - complete: `_stats.json`, `.tar` and `.parquet` all present;
  - tar: regular members named `KEY.<suffix>` with safe, unique keys, each sample's members
    adjacent, the fixed mtime; every sample has the same member set (`datasets` requires it,
    across shards too);
  - samples: JSON validates against the schema and carries this SCHEMA_VERSION and the shard's
    config hash; scenes tile the video; every query scores every scene; highlights lie inside
    the video on real scenes; the candidate frames decode to `len(frame_times_s)` frames;
  - index: the pinned columns; its `ok` videos are the tar's samples in the same (manifest)
    order, with the same queries and highlights;
  - stats: counts per status, queries, highlights and errors agree with the index.
Over the folder: no temporary files (`*.tmp-*`) and no staging left for complete shards.
Readers never unpickle anything.
"""

from __future__ import annotations

import json
import tarfile
from collections import Counter

from pydantic import ValidationError

from peakclips import shards, storage
from peakclips.dataset import MAX_STATS_BYTES, read_index, read_member
from peakclips.errors import InputError
from peakclips.schema import INDEX_COLUMNS, SCHEMA_VERSION, Sample, ShardStats

MEMBER_SUFFIXES = set(shards.MEMBER_SUFFIXES)


def read_tar(f, name: str, defects: list[str]) -> dict[str, dict[str, bytes]]:
    """Samples in tar order: key -> {suffix: bytes}, from the open tar file `f` (never read whole;
    a member is read only within `shards.read_member`'s bounds)."""
    samples: dict[str, dict[str, bytes]] = {}
    last = None
    with tarfile.open(fileobj=f, mode="r:") as tar:
        for m in tar.getmembers():
            key, _, suffix = m.name.partition(".")
            if not shards.is_safe_key(key) or suffix not in MEMBER_SUFFIXES:
                defects.append(f"{name}: bad member name {m.name!r}")
                continue
            try:
                data = read_member(tar, m)
            except InputError as e:
                defects.append(f"{name}: {e}")
                continue
            if key in samples and key != last:
                defects.append(f"{name}: members of {key} are not adjacent")
            if suffix in samples.get(key, {}):
                defects.append(f"{name}: duplicate member {m.name}")
            if m.mtime != shards.TAR_MTIME:
                defects.append(f"{name}: {m.name} has mtime {m.mtime}, not the fixed {shards.TAR_MTIME}")
            samples.setdefault(key, {})[suffix] = data
            last = key
    return samples


def check_sample(name: str, key: str, sample: Sample, stats: ShardStats) -> list[str]:
    """Schema version, config hash and the internal geometry of one sample."""
    where = f"{name}: {key}.json"
    defects = []
    if sample.schema_version != SCHEMA_VERSION:
        defects.append(f"{where} has schema_version {sample.schema_version}, expected {SCHEMA_VERSION}")
    if sample.key != key:
        defects.append(f"{where} says key {sample.key}")
    if sample.config_hash != stats.config_hash:
        defects.append(f"{where} has config hash {sample.config_hash}, the shard {stats.config_hash}")
    scenes = sample.scenes
    bounds = [(s.start_s, s.end_s) for s in scenes]
    if [s.scene_id for s in scenes] != list(range(len(scenes))) or any(
            a[1] != b[0] for a, b in zip(bounds, bounds[1:])) or any(s >= e for s, e in bounds):
        defects.append(f"{where}: scenes do not tile the video in order")
    for q in sample.queries:
        if len(q.scene_scores) != len(scenes):
            defects.append(f"{where}: query {q.query_id} scores {len(q.scene_scores)} of {len(scenes)} scenes")
        for h in q.highlights:
            # times are rounded to 0.1 ms; the probed duration is not
            if not (0 <= h.start_s < h.end_s <= sample.duration_s + 1e-3) or any(
                    not 0 <= i < len(scenes) for i in h.scene_ids):
                defects.append(f"{where}: query {q.query_id} has a highlight outside the video or its scenes")
    return defects


def check_index_and_stats(name: str, rows: list[dict], samples: dict[str, Sample], stats: ShardStats) -> list[str]:
    defects = []
    ok_keys = list(dict.fromkeys(r["key"] for r in rows if r["status"] == "ok"))
    if ok_keys != list(samples):
        defects.append(f"{name}: index ok videos {ok_keys[:5]} disagree with the tar's samples "
                       f"{list(samples)[:5]} (set or order)")
    for key, sample in samples.items():
        index_q = {r["query_id"]: json.loads(r["highlights_json"]) for r in rows if r["key"] == key and r["status"] == "ok"}
        json_q = {q.query_id: [h.model_dump() for h in q.highlights] for q in sample.queries}
        if index_q != json_q:
            defects.append(f"{name}: {key}: index and JSON disagree on its kept queries or highlights")
    status = {}
    for r in rows:  # one status per video: a video's rows share it unless only some queries dropped
        status[r["video_id"]] = "ok" if r["status"] == "ok" or status.get(r["video_id"]) == "ok" else r["status"]
    want = {"total": len(status), **{s: list(status.values()).count(s) for s in ("ok", "dropped", "error")}}
    if stats.videos.model_dump() != want:
        defects.append(f"{name}: stats videos {stats.videos.model_dump()} disagree with the index {want}")
    queries = Counter(r["status"] for r in rows if r["query"] is not None)
    if Counter(stats.queries) != queries:
        defects.append(f"{name}: stats queries {stats.queries} disagree with the index {dict(queries)}")
    highlights = sum(r["num_highlights"] for r in rows if r["status"] == "ok")
    if stats.highlights != highlights:
        defects.append(f"{name}: stats say {stats.highlights} highlights, the index {highlights}")
    errors = Counter(r["error"] for r in {r["video_id"]: r for r in rows}.values() if r["error"])
    if Counter(stats.errors) != errors:
        defects.append(f"{name}: stats errors {stats.errors} disagree with the index {dict(errors)}")
    if stats.shard != name or stats.schema_version != SCHEMA_VERSION:
        defects.append(f"{name}: stats name {stats.shard} or schema version {stats.schema_version} wrong")
    return defects


def verify_shard(output: str, name: str, decode_frames: bool = True) -> tuple[list[str], set[frozenset]]:
    """(defects, the member sets its samples have)."""
    from peakclips.video import count_mp4_frames

    if not shards.is_complete(output, name):
        return [f"{name}: no {name}_stats.json (shard incomplete)"], set()
    for path in (shards.tar_path(output, name), shards.index_path(output, name)):
        if not storage.exists(path):
            return [f"{name}: {path.rsplit('/', 1)[-1]} missing"], set()
    defects: list[str] = []
    try:
        stats = ShardStats.model_validate_json(storage.read_bytes(shards.stats_path(output, name), MAX_STATS_BYTES))
    except ValidationError as e:
        return [f"{name}: {name}_stats.json fails the schema: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}"], set()
    except InputError as e:  # larger than any stats file we write
        return [f"{name}: {e}"], set()
    try:
        table = read_index(output, name)
    except (InputError, ValueError) as e:  # too large, not Parquet
        return [f"{name}: {e}"], set()
    fs, path = storage.fs_and_path(shards.tar_path(output, name))
    try:
        with fs.open(path, "rb") as f:
            members = read_tar(f, name, defects)
    except tarfile.TarError as e:
        return defects + [f"{name}: {name}.tar is not a readable tar ({e})"], set()
    samples: dict[str, Sample] = {}
    for key, parts in members.items():
        if set(parts) != MEMBER_SUFFIXES:
            defects.append(f"{name}: sample {key} has members {sorted(parts)}, expected {sorted(MEMBER_SUFFIXES)}")
            continue
        try:
            samples[key] = sample = Sample.model_validate_json(parts["json"])
        except ValidationError as e:
            defects.append(f"{name}: {key}.json fails the schema: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}")
            continue
        defects += check_sample(name, key, sample, stats)
        if decode_frames:
            try:
                n = count_mp4_frames(parts["mp4"])
            except Exception as e:  # noqa: BLE001 - any decoder failure is the defect we report
                defects.append(f"{name}: {key}.mp4 does not decode: {e}")
                continue
            if n != len(sample.frame_times_s):
                defects.append(f"{name}: {key}.mp4 has {n} frames, frame_times_s has {len(sample.frame_times_s)}")
    if table.column_names != list(INDEX_COLUMNS):
        return defects + [f"{name}: index columns differ from the schema"], set()
    if len(samples) == len(members):  # cross-checks only make sense on readable samples
        defects += check_index_and_stats(name, table.to_pylist(), samples, stats)
    return defects, {frozenset(p) for p in members.values()}


def verify(output: str, decode_frames: bool = True) -> tuple[int, list[str]]:
    """Returns (number of shards checked, defects)."""
    names = shards.shard_names(output)
    if not names:
        return 0, [f"{output}: no shards found"]
    defects, member_sets = [], set()
    for name in names:
        found, sets = verify_shard(output, name, decode_frames)
        defects += found
        member_sets |= sets
    if len(member_sets) > 1:
        defects.append(f"{output}: samples have different member sets: {sorted(sorted(s) for s in member_sets)}")
    defects += [f"{output}: temporary file {n} left" for n in shards.temporaries(output)]
    defects += [f"{output}: staging left for complete shard {s:06d}" for s in shards.staged_shards(output)
                if shards.is_complete(output, s)]
    return len(names), defects
