"""End to end: videos/min of the sample run with 1 vs 2 CPUs and 1 vs 2 local Ray nodes, and
peak memory for 10 vs 100 videos (SPEC section 8, last two bullets).

Every run is what a user types, `python -m peakclips.cli run pipelines/sample.yaml --manifest M
--output DIR --force --set clip.enabled=false --set shard_size=10`, as a child process; its wall
time runs from the start of the command to its exit (imports, Ray start and shutdown included);
the pipeline's own `done in X s` is recorded beside it (it includes starting a local Ray
instance, not the imports before nor Ray's shutdown after). The manifests repeat the six bundled
CC-BY clips under distinct video_ids (`<clip>-<copy>`), with the reference annotations copied
under the same ids. CLIP is off: its actor reserves a whole CPU for the whole run
(clip.num_cpus), the only CPU of the 1-CPU configurations, and its speed has its own benchmark
(bench_clip). shard_size=10 so that longer runs finalize shards while later videos are still
being processed, as a large run does.

* Throughput, interleaved round by round: a local Ray instance with `--set ray.num_cpus=1` and
  `=2`; then a cluster of tests/ray_cluster.py, as tests/test_cluster.py uses (`ray start --block` in its own
  process group, token auth, own temp dirs and agent ports, 127.0.0.1; never `ray stop`): a head
  with `--num-cpus 1` alone, then with a worker node of `--num-cpus 1` joined, driven through
  RAY_ADDRESS. The cluster is started and stopped each round, outside the timed runs.
* Memory: the local 2-CPU run over 10 and over 100 videos. The process tree of the command is
  sampled with psutil every 0.2 s: the driver's RSS, and the sums over the Ray worker processes
  (`ray::...`) of RSS and of PSS (RSS counts the shared object-store pages once per process that
  touched them; PSS splits them, so its sum is what the workers really hold together). Ray's own
  daemons (raylet, GCS, agents) are summed separately.

PEAKCLIPS_BENCH_QUICK=1 shrinks it to a smoke test of a few minutes (3 videos, 1 round, memory
for 2 vs 6 videos); PEAKCLIPS_BENCH_ROUNDS=N sets the number of throughput rounds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

from benchmarks.common import REPO, median
from tests.ray_cluster import LocalCluster

QUICK = os.environ.get("PEAKCLIPS_BENCH_QUICK") == "1"
ROUNDS = int(os.environ.get("PEAKCLIPS_BENCH_ROUNDS", 1 if QUICK else 3))
THROUGHPUT_VIDEOS = 3 if QUICK else 12
MEMORY_VIDEOS = (2, 6) if QUICK else (10, 100)
SAMPLE_CONFIG = REPO / "pipelines/sample.yaml"
SAMPLE_MANIFEST = REPO / "manifests/sample.jsonl"
CONFIGS = ("1 CPU", "2 CPUs", "1 node", "2 nodes")


def write_inputs(folder: Path, sizes: list[int]) -> tuple[dict[int, Path], Path]:
    """Manifests of `n` videos (the sample clips in turn, ids `<clip>-<copy>`) and a reference
    folder with an annotation for every id."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in SAMPLE_MANIFEST.read_text().splitlines() if line.strip()]
    refs = folder / "reference"
    shutil.rmtree(refs, ignore_errors=True)
    refs.mkdir()
    originals = {r["video_id"]: yaml.safe_load((REPO / "manifests/reference" / f"{r['video_id']}.yaml").read_text())
                 for r in rows}
    manifests = {}
    for n in sizes:
        lines = []
        for i in range(n):
            row = rows[i % len(rows)]
            vid = f"{row['video_id']}-{i // len(rows):03d}"
            lines.append(json.dumps({**row, "video_id": vid, "uri": str(SAMPLE_MANIFEST.parent / row["uri"])}))
            if not (refs / f"{vid}.yaml").exists():
                (refs / f"{vid}.yaml").write_text(yaml.safe_dump({**originals[row["video_id"]], "video_id": vid}))
        manifests[n] = folder / f"manifest_{n}.jsonl"
        manifests[n].write_text("\n".join(lines) + "\n")
    return manifests, refs


# ----------------------------------------------------------------------------- one run

class TreeSampler(threading.Thread):
    """Peak memory of a process tree, sampled every `period` seconds until `stop()`."""

    def __init__(self, pid: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.period, self.halt = pid, period, threading.Event()
        self.peak = {"driver_rss": 0, "workers_rss": 0, "workers_pss": 0, "daemons_rss": 0, "workers": 0}
        self.series: list[tuple] = []
        self.by_title: dict[str, float] = {}  # peak summed RSS of the workers with one process title

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        started = time.perf_counter()
        while not self.halt.wait(self.period):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            now = {"driver_rss": 0, "workers_rss": 0, "workers_pss": 0, "daemons_rss": 0, "workers": 0}
            titles: dict[str, int] = {}
            for p in procs:
                try:
                    if p.pid == self.pid:
                        now["driver_rss"] = p.memory_info().rss
                    elif (title := (p.cmdline() or [""])[0]).startswith("ray::"):
                        mem = p.memory_full_info()
                        titles[title] = titles.get(title, 0) + mem.rss
                        now["workers_rss"] += mem.rss
                        now["workers_pss"] += mem.pss
                        now["workers"] += 1
                    else:
                        now["daemons_rss"] += p.memory_info().rss
                except psutil.Error:  # exited between listing and reading
                    continue
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
            for title, rss in titles.items():
                self.by_title[title] = max(self.by_title.get(title, 0), rss / 2**20)
            self.series.append((round(time.perf_counter() - started, 1),
                                *(round(now[k] / 2**20) for k in ("driver_rss", "workers_rss", "workers_pss"))))

    def stop(self) -> dict:
        self.halt.set()
        self.join()
        return {k: (v / 2**20 if k != "workers" else v) for k, v in self.peak.items()}


def run_pipeline(manifest: Path, refs: Path, output: Path, env: dict, overrides: list[str] = (),
                 sample_memory: bool = False) -> dict:
    """`peakclips run` as a child process; wall time, the pipeline's own time, and what it built."""
    shutil.rmtree(output, ignore_errors=True)
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(manifest),
           "--output", str(output), "--force", "--set", "clip.enabled=false", "--set", "shard_size=10",
           "--set", f"annotator.reference_dir={refs}"]
    for o in overrides:
        cmd += ["--set", o]
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid) if sample_memory else None
        if sampler:
            sampler.start()
        proc.wait()
        wall = time.perf_counter() - started
        memory = sampler.stop() if sampler else None
        log.seek(0)
        text = log.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"peakclips run exited {proc.returncode}:\n{text[-3000:]}")
    stats = [json.loads(p.read_text()) for p in sorted(output.glob("*_stats.json"))]
    videos = sum(s["videos"]["total"] for s in stats)
    errors = sum(s["videos"]["error"] for s in stats)
    if errors or videos != sum(1 for line in manifest.read_text().splitlines() if line.strip()):
        raise RuntimeError(f"{manifest.name}: {videos} videos in the shards, {errors} errors: "
                           f"{[s['errors'] for s in stats]}")
    nodes: dict[str, int] = {}
    for s in stats:
        for node, n in s["nodes"].items():
            nodes[node] = nodes.get(node, 0) + n
    found = re.search(r"done in ([0-9.]+) s", text)
    return {"wall_s": wall, "pipeline_wall_s": float(found.group(1)) if found else None, "videos": videos,
            "videos_per_node": sorted(nodes.values(), reverse=True), "memory": memory,
            "memory_series": sampler.series if sampler else None,
            "memory_by_title": sampler.by_title if sampler else None}


def local_env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0")
    env.pop("RAY_ADDRESS", None)
    return env


# ----------------------------------------------------------------------------- the benchmark

def main(out_dir) -> str:
    out_dir = Path(out_dir).resolve() / "e2e"
    manifests, refs = write_inputs(out_dir / "inputs", [THROUGHPUT_VIDEOS, *MEMORY_VIDEOS])
    runs = out_dir / "runs"
    speed: dict[str, list[dict]] = {c: [] for c in CONFIGS}
    load = []
    manifest = manifests[THROUGHPUT_VIDEOS]
    for _ in range(ROUNDS):
        load.append(os.getloadavg()[0])
        for cpus in (1, 2):
            speed[f"{cpus} CPU" + ("s" if cpus > 1 else "")].append(
                run_pipeline(manifest, refs, runs / "local", local_env(), [f"ray.num_cpus={cpus}"]))
        cluster = LocalCluster(local_env())
        try:
            env = dict(cluster.env, RAY_ADDRESS=cluster.address)
            speed["1 node"].append(run_pipeline(manifest, refs, runs / "cluster", env))
            cluster.add_worker()
            speed["2 nodes"].append(run_pipeline(manifest, refs, runs / "cluster", env))
        finally:
            cluster.stop()
    memory = {}
    for n in MEMORY_VIDEOS:
        load.append(os.getloadavg()[0])
        memory[n] = run_pipeline(manifests[n], refs, runs / f"memory_{n}", local_env(), ["ray.num_cpus=2"],
                                 sample_memory=True)
    shutil.rmtree(runs, ignore_errors=True)
    (out_dir.parent / "e2e.json").write_text(json.dumps(
        {"rounds": ROUNDS, "throughput_videos": THROUGHPUT_VIDEOS, "speed": speed, "memory": memory,
         "load_1min": load}, indent=1))
    return report(speed, memory, load)


def report(speed: dict, memory: dict, load: list[float]) -> str:
    def med(config, key):
        return median([r[key] for r in speed[config]])

    def vpm(config, key="wall_s"):
        return THROUGHPUT_VIDEOS * 60 / med(config, key)

    lines = [f"`peakclips run` of {THROUGHPUT_VIDEOS} videos (the sample clips in turn), CLIP off; median of "
             f"{ROUNDS} interleaved round(s). *Command*: start of the command to its exit; *pipeline*: "
             f"its own `done in` time (interpreter start, imports and Ray's shutdown left out; starting a local "
             f"Ray instance is in it, a cluster is already up). 1-min load average at "
             f"the start of each round: {', '.join(f'{x:.1f}' for x in load[:ROUNDS])}; of the memory runs: "
             f"{', '.join(f'{x:.1f}' for x in load[ROUNDS:])}.", "",
             "| configuration | command wall | videos/min (command) | videos/min (pipeline) "
             "| videos each node worked on |",
             "|---|---|---|---|---|"]
    for c in CONFIGS:
        lines.append(f"| {c} | {med(c, 'wall_s'):.1f} s | {vpm(c):.1f} | {vpm(c, 'pipeline_wall_s'):.1f} "
                     f"| {' + '.join(map(str, speed[c][-1]['videos_per_node']))} |")
    lines += ["", f"**2 CPUs / 1 CPU: {vpm('2 CPUs') / vpm('1 CPU'):.2f}x** videos/min "
                  f"({vpm('2 CPUs', 'pipeline_wall_s') / vpm('1 CPU', 'pipeline_wall_s'):.2f}x pipeline only); "
                  f"**2 nodes / 1 node: {vpm('2 nodes') / vpm('1 node'):.2f}x** "
                  f"({vpm('2 nodes', 'pipeline_wall_s') / vpm('1 node', 'pipeline_wall_s'):.2f}x).", "",
              "Peak memory, local Ray with 2 CPUs (process tree sampled every 0.2 s; PSS shares the "
              "object store's pages out between the workers that map them):", "",
              "| videos | command wall | driver RSS | Ray workers RSS (sum) | Ray workers PSS (sum) "
              "| Ray daemons RSS | worker processes |", "|---|---|---|---|---|---|---|"]
    small, large = (memory[n]["memory"] for n in MEMORY_VIDEOS)
    for n in MEMORY_VIDEOS:
        m = memory[n]["memory"]
        lines.append(f"| {n} | {memory[n]['wall_s']:.0f} s | {m['driver_rss']:.0f} MiB | {m['workers_rss']:.0f} MiB "
                     f"| {m['workers_pss']:.0f} MiB | {m['daemons_rss']:.0f} MiB | {m['workers']} |")

    def growth(key):
        return f"{(large[key] / small[key] - 1) * 100:+.1f} %"

    lines.append(f"| **{MEMORY_VIDEOS[1]} vs {MEMORY_VIDEOS[0]}** | | **{growth('driver_rss')}** "
                 f"| **{growth('workers_rss')}** | **{growth('workers_pss')}** | {growth('daemons_rss')} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path("bench-out")))
