"""`peakclips verify DIR`: check every shard of a finished dataset; name each defect.

Per shard: the stats file exists (the shard is complete); the tar has exactly one `.json` and
one `.mp4` per key, keys are safe and unique, members are regular files; every JSON validates
against the sample schema; candidate frames decode and their count equals `frame_times_s`;
the Parquet index has the pinned columns and agrees with the tar (the `ok` videos of the index
are exactly the tar's samples). Readers never unpickle anything.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections import defaultdict

from pydantic import ValidationError

from peakclips import storage
from peakclips.schema import INDEX_COLUMNS, Sample

KEY_RE = re.compile(r"^[A-Za-z0-9_-]+$")
MEMBER_SUFFIXES = {"json", "mp4"}


def shard_ids(output: str) -> list[str]:
    names = storage.listdir(output)
    return sorted({n.split(".")[0].removesuffix("_stats") for n in names
                   if re.fullmatch(r"peakclips-\d{6}(\.tar|\.parquet|_stats\.json)", n)})


def verify_shard(output: str, name: str, decode_frames: bool = True) -> list[str]:
    import pyarrow.parquet as pq

    from peakclips.video import decode_mp4

    defects: list[str] = []
    if not storage.exists(storage.join(output, name + "_stats.json")):
        return [f"{name}: no {name}_stats.json (shard incomplete)"]
    for suffix in (".tar", ".parquet"):
        if not storage.exists(storage.join(output, name + suffix)):
            return [f"{name}: {name}{suffix} missing"]
    members: dict[str, dict[str, bytes]] = defaultdict(dict)
    with tarfile.open(fileobj=io.BytesIO(storage.read_bytes(storage.join(output, name + ".tar")))) as tar:
        for m in tar.getmembers():
            if not m.isfile():
                defects.append(f"{name}: member {m.name} is not a regular file")
                continue
            key, _, suffix = m.name.partition(".")
            if not KEY_RE.match(key) or suffix not in MEMBER_SUFFIXES:
                defects.append(f"{name}: bad member name {m.name!r}")
                continue
            if suffix in members[key]:
                defects.append(f"{name}: duplicate member {m.name}")
            members[key][suffix] = tar.extractfile(m).read()
    for key, parts in members.items():
        missing = MEMBER_SUFFIXES - set(parts)
        if missing:
            defects.append(f"{name}: sample {key} lacks {sorted(missing)}")
            continue
        try:
            sample = Sample.model_validate_json(parts["json"])
        except ValidationError as e:
            defects.append(f"{name}: {key}.json fails the schema: {e.errors()[0]['loc']}: {e.errors()[0]['msg']}")
            continue
        if sample.key != key:
            defects.append(f"{name}: {key}.json says key {sample.key}")
        if decode_frames:
            try:
                n = len(decode_mp4(parts["mp4"]))
            except Exception as e:  # noqa: BLE001 - any decoder failure is the defect we report
                defects.append(f"{name}: {key}.mp4 does not decode: {e}")
                continue
            if n != len(sample.frame_times_s):
                defects.append(f"{name}: {key}.mp4 has {n} frames, frame_times_s has {len(sample.frame_times_s)}")
    table = pq.read_table(io.BytesIO(storage.read_bytes(storage.join(output, name + ".parquet"))))
    if table.column_names != list(INDEX_COLUMNS):
        defects.append(f"{name}: index columns differ from the schema")
        return defects
    rows = table.to_pylist()
    ok_keys = {r["key"] for r in rows if r["status"] == "ok"}
    if ok_keys != set(members):
        defects.append(f"{name}: index ok videos {sorted(ok_keys ^ set(members))[:5]} disagree with the tar")
    stats = json.loads(storage.read_bytes(storage.join(output, name + "_stats.json")))
    if stats["videos"]["ok"] != len(members):
        defects.append(f"{name}: stats say {stats['videos']['ok']} ok videos, tar has {len(members)}")
    return defects


def verify(output: str, decode_frames: bool = True) -> tuple[int, list[str]]:
    """Returns (number of shards checked, defects)."""
    names = shard_ids(output)
    if not names:
        return 0, [f"{output}: no shards found"]
    defects = []
    for name in names:
        defects += verify_shard(output, name, decode_frames)
    return len(names), defects
