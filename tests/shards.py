"""Helpers for the shard tests: a small several-shard manifest of the bundled clips, the
`peakclips run` command line for it, and a sample-by-sample snapshot of a finished output."""

from __future__ import annotations

import io
import json
import sys
import tarfile
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from tests.conftest import REPO, SAMPLE_CONFIG

SHORT_CLIPS = ["tears_of_steel_10s", "sintel_10s", "caminandes1_10s"]


def small_manifest(folder: Path) -> tuple[Path, list[str]]:
    """Seven rows, four shards of two (shard_size=2): each 10-s sample clip under two ids (their
    reference annotations copied under the new ids) and one missing file (a row error)."""
    refs = folder / "reference"
    refs.mkdir(parents=True, exist_ok=True)
    sample = {json.loads(line)["video_id"]: json.loads(line) for line in open(REPO / "manifests/sample.jsonl")}
    rows = []
    for clip in SHORT_CLIPS:
        for copy in "ab":
            ref = yaml.safe_load((REPO / "manifests/reference" / f"{clip}.yaml").read_text())
            ref["video_id"] = f"{clip}_{copy}"
            (refs / f"{clip}_{copy}.yaml").write_text(yaml.safe_dump(ref))
            rows.append(dict(sample[clip], video_id=f"{clip}_{copy}", uri=str(REPO / "manifests" / sample[clip]["uri"])))
    rows.insert(3, {"video_id": "missing_file", "uri": str(folder / "missing.mp4")})
    manifest = folder / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overrides = ["shard_size=2", "frames.num_candidates=32", "clip.enabled=false", f"annotator.reference_dir={refs}",
                 f"ingest.allowed_roots=[{REPO / 'manifests/videos'},{folder}]", "ray.num_cpus=2"]
    return manifest, overrides


def run_command(manifest: Path, output: Path, overrides: list[str], *extra: str) -> list[str]:
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(manifest),
           "--output", str(output), *extra]
    for o in overrides:
        cmd += ["--set", o]
    return cmd


def snapshot(output: Path) -> dict:
    """Everything a finished output holds, timings and node ids aside:
    {shard: {"samples": [(member name, bytes), ...], "index": rows, "stats": dict}}."""
    shards = {}
    for tar_path in sorted(output.glob("peakclips-*.tar")):
        name = tar_path.name.removesuffix(".tar")
        with tarfile.open(tar_path) as tar:
            members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
        stats = json.loads((output / f"{name}_stats.json").read_text())
        for volatile in ("stage_seconds", "nodes"):
            stats.pop(volatile)
        index = pq.read_table(io.BytesIO((output / f"{name}.parquet").read_bytes())).to_pylist()
        shards[name] = {"samples": members, "index": index, "stats": stats}
    return shards


def leftovers(output: Path) -> list[str]:
    """Anything in an output folder that is not a finished shard file."""
    finished = (".tar", ".parquet", "_stats.json")
    return sorted(str(p.relative_to(output)) for p in output.rglob("*")
                  if not (p.parent == output and p.name.startswith("peakclips-") and p.name.endswith(finished)
                          and ".tmp-" not in p.name))


def one_sample_dataset(folder: Path, doc: dict, mp4: bytes, members=None) -> Path:
    """A dataset folder of one shard holding one synthetic sample (tests/train/shards.py): its
    tar (or, with `members`, a tar of those (TarInfo, bytes) instead), its index and `{}` stats."""
    from peakclips.stages.shard import index_table
    from tests.train.shards import write_shard

    folder.mkdir(parents=True, exist_ok=True)
    write_shard(folder / "peakclips-000000.tar", [(doc, mp4)])
    if members is not None:
        with tarfile.open(folder / "peakclips-000000.tar", "w", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data))
    rows = [{"video_id": doc["video_id"], "key": doc["key"], "shard_id": 0, "status": "ok", "query_id": 0,
             "query": doc["queries"][0]["query"], "highlights_json": json.dumps(doc["queries"][0]["highlights"])}]
    pq.write_table(index_table(rows), folder / "peakclips-000000.parquet")
    return folder
