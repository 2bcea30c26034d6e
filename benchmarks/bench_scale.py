"""At scale (SPEC section 8, last bullet; issue 13): the whole pipeline over N generated videos,
beside a plain process pool doing the same work, and a 1,000,000-line manifest planned.

Inputs: N distinct 5-s clips, 320x180, 24 fps, three shots cut at frames that vary per clip
(tests/media.py shots: a textured background of its own hue, a moving disc), made once and
cached under bench-out/scale/videos. Each row has its own video_id, title and two queries, so
no two requests share an entry of the annotator's response cache.

* **Pipeline**: `peakclips run pipelines/peakclips.yaml` as a child process, as a user types it
  (CLIP off, a local Ray instance with RAY_CPUS CPUs), against tests/llm_server.py in a process
  of its own (LATENCY_S per request, no faults), with a fresh response cache. `--progress 1`
  gives videos done over time: videos/min over the first and the second half of the videos.
  The process tree is sampled (benchmarks/common.TreeSampler): the driver's peak RSS, the Ray
  workers' summed PSS, the object store's pages in use.
* **Pool**: `concurrent.futures.ProcessPoolExecutor` with 2 x RAY_CPUS processes (two per
  core, so that one's wait on the annotator overlaps another's decoding, as the pipeline's
  async annotator actors do), each holding the stage objects of `pipeline.stage_specs` and
  running one video through all of them at a time; the parent finalizes each shard when its
  videos are staged, as the driver does. Same inputs, server and cores.
* **Where a video's time goes**: the sum over videos of each stage's own wall time (the
  `stage_seconds` of the shards' stats) in both runs, against the run's wall x cores.
* **Manifest**: a 1,000,000-line manifest (bench-out/scale/manifest_1m.jsonl) planned by
  `manifest.plan_manifest` in a child process, all shards and shards 0-9: wall time and peak
  memory (VmHWM).

N = 500 and 2,000; PEAKCLIPS_BENCH_SCALE_10K=1 adds 10,000 (41 min for the pipeline on 2 cores);
PEAKCLIPS_BENCH_SCALE_SIZES=2000 runs only the N listed, in that order;
PEAKCLIPS_BENCH_SCALE_NO_POOL=10000 leaves out the pool for the N listed; PEAKCLIPS_BENCH_QUICK=1 shrinks it to a
smoke test (N = 20 and 60, a 100,000-line manifest). The manifest is measured first; each part's
numbers are saved to bench-out/scale.json as soon as it ends (a run stopped later keeps them).
"""

from __future__ import annotations

import asyncio
import json
import math
import multiprocessing
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

from benchmarks.common import REPO, TreeSampler

QUICK = os.environ.get("PEAKCLIPS_BENCH_QUICK") == "1"
SIZES = (20, 60) if QUICK else (500, 2000) + ((10_000,) if os.environ.get("PEAKCLIPS_BENCH_SCALE_10K") == "1" else ())
if os.environ.get("PEAKCLIPS_BENCH_SCALE_SIZES"):  # e.g. "2000": only these N (the report merges runs' scale.json)
    SIZES = tuple(int(n) for n in os.environ["PEAKCLIPS_BENCH_SCALE_SIZES"].split(","))
NO_POOL = {int(n) for n in os.environ.get("PEAKCLIPS_BENCH_SCALE_NO_POOL", "").split(",") if n}
"""The N run without the pool (the pool's rate does not depend on N; at 10,000 it would add an hour)."""
MANIFEST_ROWS = 100_000 if QUICK else 1_000_000
RAY_CPUS = 2
LATENCY_S = 0.1
SHARD_SIZE = 100
CONFIG = REPO / "pipelines/peakclips.yaml"
MODEL = "gpt-4.1-mini"  # priced in pipelines/peakclips.yaml, so cost is counted


# ----------------------------------------------------------------------------- inputs

def make_clip(path: Path, seed: int) -> None:
    from tests import media

    if path.exists():
        return
    cuts = [36 + seed % 11, 78 + seed % 7]
    tmp = path.with_suffix(".tmp.mp4")
    frames = media._shots_frames(cuts, 120, (320, 180), seed, grain=0)
    media._write_video(tmp, frames, fps=24, size=(320, 180), encoder="libx264", fast=True)
    tmp.rename(path)


def write_inputs(folder: Path, n: int) -> Path:
    """n distinct clips (cached) and their manifest; returns the manifest's path."""
    videos = folder / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    paths = [videos / f"clip_{i:05d}.mp4" for i in range(n)]
    missing = [(p, i) for i, p in enumerate(paths) if not p.exists()]
    if missing:
        with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
            list(pool.map(make_clip, *zip(*missing), chunksize=16))
    manifest = folder / f"manifest_{n}.jsonl"
    manifest.write_text("".join(json.dumps({
        "video_id": f"scale-{i:05d}", "uri": str(p), "license": "CC0",
        "queries": [f"the moving disc in clip {i}", f"the first cut of clip {i}"],
        "metadata": {"title": f"generated clip {i}"}}) + "\n" for i, p in enumerate(paths)))
    return manifest


class LLMServer:
    """tests/llm_server.py in a process of its own, fixed latency, no faults."""

    def __enter__(self) -> LLMServer:
        # Its stderr is dropped: the pool's processes end with connections open, and the server
        # prints a traceback for each reset.
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.llm_server", "--latency", str(LATENCY_S)], cwd=REPO,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True)
        self.url = self.proc.stdout.readline().strip()
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def overrides(videos: Path, url: str, cache: Path) -> list[str]:
    return ["clip.enabled=false", f"shard_size={SHARD_SIZE}", f"ray.num_cpus={RAY_CPUS}", f"annotator.base_url={url}",
            f"annotator.model={MODEL}", f"annotator.cache={cache}", f"ingest.allowed_roots=[{videos}]"]


def env() -> dict:
    e = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", OPENAI_API_KEY="benchmark")
    e.pop("RAY_ADDRESS", None)
    return e


# ----------------------------------------------------------------------------- the two runs

def run_pipeline(manifest: Path, folder: Path, url: str) -> dict:
    out, cache = folder / "out_pipeline", folder / "cache_pipeline.sqlite"
    shutil.rmtree(out, ignore_errors=True)
    cache.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(CONFIG), "--manifest", str(manifest), "--output",
           str(out), "--progress", "1"]
    for o in overrides(manifest.parent / "videos", url, cache):
        cmd += ["--set", o]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(proc.pid, period=0.5)
    sampler.start()
    done_at: dict[int, float] = {}  # videos done -> seconds since start, from the progress lines
    log: list[str] = []

    def read_progress():
        for line in proc.stderr:
            log.append(line)
            if m := re.match(r"progress: (\d+)/", line):
                done_at.setdefault(int(m.group(1)), time.perf_counter() - started)

    reader = threading.Thread(target=read_progress, daemon=True)
    reader.start()
    stdout = proc.stdout.read()
    proc.wait()
    wall = time.perf_counter() - started
    reader.join()
    memory = sampler.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"peakclips run exited {proc.returncode}:\n{stdout[-2000:]}{''.join(log)[-3000:]}")
    return {"wall_s": wall, "done_at": done_at, "memory": memory, "worker_processes": len(sampler.worker_pids),
            "driver_rss_trace": [(t, rss) for t, rss, *_ in sampler.series[::2]],  # (s, MiB) every second
            **outcome(out, manifest)}


def outcome(out: Path, manifest: Path) -> dict:
    stats = [json.loads(p.read_text()) for p in sorted(out.glob("*_stats.json"))]
    n = sum(1 for line in manifest.read_text().splitlines() if line.strip())
    videos = {k: sum(s["videos"][k] for s in stats) for k in ("total", "ok", "dropped", "error")}
    if videos["total"] != n or videos["error"]:
        raise RuntimeError(f"{manifest.name}: {videos}; errors {[s['errors'] for s in stats if s['errors']]}")
    seconds: dict[str, float] = {}
    for s in stats:
        for stage, t in s["stage_seconds"].items():
            seconds[stage] = seconds.get(stage, 0.0) + t
    return {"videos": videos, "stage_seconds": seconds, "llm_calls": sum(s["llm"]["calls"] for s in stats),
            "cache_hits": sum(s["llm"]["cache_hits"] for s in stats)}


_POOL: dict = {}
"""A pool process's stage objects and event loop, made once by `_pool_start`."""


def _pool_start(cfg_overrides: list[str], output: str, run_json: str) -> None:
    from peakclips.config import load_config
    from peakclips.pipeline import resolve_paths, stage_specs
    from peakclips.schema import RunInfo
    from peakclips.terminal import detach_stdin

    detach_stdin()
    os.environ["TQDM_DISABLE"] = "1"  # the text embedder's loading bar
    cfg = resolve_paths(load_config(CONFIG, cfg_overrides))
    specs = stage_specs(cfg, output, RunInfo.model_validate_json(run_json))
    _POOL.update(stages=[spec.cls(**spec.kwargs) for spec in specs], loop=asyncio.new_event_loop())


def _pool_video(row: dict) -> dict:
    from peakclips.pipeline import run_stages

    return run_stages(_POOL["stages"], row, _POOL["loop"])


def run_pool(manifest: Path, folder: Path, url: str) -> dict:
    """The same stages over the same videos in a plain process pool; the parent finalizes shards."""
    from peakclips.config import load_config
    from peakclips.manifest import plan_manifest
    from peakclips.pipeline import resolve_paths, run_info, video_items
    from peakclips.resume import shard_keys
    from peakclips.stages.shard import finalize_shard

    out, cache = folder / "out_pool", folder / "cache_pool.sqlite"
    shutil.rmtree(out, ignore_errors=True)
    cache.unlink(missing_ok=True)
    os.environ.update(OPENAI_API_KEY="benchmark", HF_HUB_OFFLINE="1")
    cfg_overrides = overrides(manifest.parent / "videos", url, cache)
    started = time.perf_counter()
    cfg = resolve_paths(load_config(CONFIG, cfg_overrides))
    info = run_info(cfg, "clip.enabled is false", str(out / "_scratch"))
    plan = plan_manifest(manifest, cfg.shard_size)
    expected = shard_keys(plan.tasks, info)
    staged: dict[int, int] = {}
    done_at: dict[int, float] = {}
    # Fresh (spawned) processes with OMP_NUM_THREADS=1, as Ray starts its workers for 1-CPU tasks:
    # forked from this process they would keep its thread pools, one per core each.
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        pool = ProcessPoolExecutor(2 * RAY_CPUS, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_pool_start, initargs=(cfg_overrides, str(out), info.model_dump_json()))
    finally:
        os.environ.pop("OMP_NUM_THREADS")
    with pool:
        running = {pool.submit(_pool_video, item) for item in video_items(plan.tasks, info)}
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                row = f.result()
                done_at[len(done_at) + 1] = time.perf_counter() - started
                staged[row["shard_id"]] = staged.get(row["shard_id"], 0) + 1
                if staged[row["shard_id"]] == len(expected[row["shard_id"]]):
                    finalize_shard(str(out), row["shard_id"], expected[row["shard_id"]], info)
    return {"wall_s": time.perf_counter() - started, "done_at": done_at, **outcome(out, manifest)}


# ----------------------------------------------------------------------------- the manifest

def plan_big_manifest(folder: Path) -> dict:
    path = folder / f"manifest_{MANIFEST_ROWS}.jsonl"
    if not path.exists():
        with open(path.with_suffix(".tmp"), "w") as f:
            for i in range(MANIFEST_ROWS):
                f.write(json.dumps({"video_id": f"video-{i:07d}", "uri": f"/data/videos/{i % 1000:03d}/clip_{i:07d}.mp4",
                                    "license": "CC-BY-4.0", "queries": [f"the moving disc in clip {i}"],
                                    "metadata": {"title": f"clip {i}"}}) + "\n")
        path.with_suffix(".tmp").rename(path)
    results = {}
    for shards in ("all", "0-9"):
        code = ("import json, sys, time; from peakclips.manifest import plan_manifest; t = time.perf_counter(); "
                f"plan = plan_manifest({str(path)!r}, {SHARD_SIZE}, {shards!r}); wall = time.perf_counter() - t; "
                "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
                "print(json.dumps({'wall_s': wall, 'peak_mib': int(hwm) / 1024, 'rows': plan.num_rows, "
                "'kept': len(plan.tasks), 'shards': plan.num_shards}))")
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env(), stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, check=True)
        results[shards] = json.loads(proc.stdout)
    return results


# ----------------------------------------------------------------------------- the report

def halves(done_at: dict[int, float], n: int) -> tuple[float, float]:
    """Videos/min over the first half of the videos (from the first one done) and the second;
    NaN for a half that ended within one progress line (too few videos to time)."""
    done_at = {int(k): v for k, v in done_at.items()}
    first = min(c for c in done_at if c >= 1)
    t1, mid, end = done_at[first], _time_of(done_at, n // 2), _time_of(done_at, n)
    return ((n // 2 - first) * 60 / (mid - t1) if mid > t1 else math.nan,
            (n - n // 2) * 60 / (end - mid) if end > mid else math.nan)


def _time_of(done_at: dict[int, float], k: int) -> float:
    return done_at[min(c for c in done_at if c >= k)]


def window_peaks(run: dict, n: int, window: int) -> list[float]:
    """The driver's peak RSS (MiB) while each window of `window` videos was being done: from the
    time the previous window's last video was done (the start for the first) to this one's."""
    done_at = {int(k): v for k, v in run["done_at"].items()}
    trace = run.get("driver_rss_trace") or []
    bounds = [0.0] + [_time_of(done_at, min(k, n)) for k in range(window, n + window, window)]
    return [max((rss for t, rss in trace if start <= t <= end), default=math.nan)
            for start, end in zip(bounds, bounds[1:])]


def window_table(r: dict, measured: list[int], window: int | None = None) -> list[str]:
    """Per window: the driver's growth per video read from one run, at a full window's fill. The
    first window also holds the driver's start-up, so the fit starts at the second."""
    from peakclips.config import RayConfig

    window = window or RayConfig().window
    rows = [(n, window_peaks(r[n]["pipeline"], n, window)) for n in measured if r[n]["pipeline"].get("driver_rss_trace")]
    if not rows:
        return []
    most = max(len(p) for _, p in rows)
    lines = ["", f"Driver peak RSS per window of {window} videos (`ray.window`; MiB):", "",
             "| videos | " + " | ".join(f"w{i + 1}" for i in range(most)) + " | slope from w2 |",
             "|---|" + "---|" * (most + 1)]
    for n, peaks in rows:
        later = [(i * window, p) for i, p in enumerate(peaks) if i >= 1 and not math.isnan(p)]
        slope = "-"
        if len(later) >= 2:
            fit = statistics.linear_regression(*zip(*later)).slope  # MiB per video
            slope = f"{fit * 1024:+.1f} KiB/video"
        lines.append(f"| {n} | " + " | ".join([f"{p:.0f}" for p in peaks] + [""] * (most - len(peaks))) + f" | {slope} |")
    return lines


def main(out_dir) -> str:
    folder = Path(out_dir).resolve() / "scale"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict = {"load_1min": {}, "manifest": plan_big_manifest(folder)}
    save(out_dir, results)
    with LLMServer() as server:
        for n in SIZES:
            manifest = write_inputs(folder, n)
            results["load_1min"][n] = os.getloadavg()[0]
            results[n] = {"started": time.strftime("%H:%M:%S", time.gmtime())}
            runs = [("pipeline", run_pipeline)] + ([] if n in NO_POOL else [("pool", run_pool)])
            for name, run in runs:
                results[n][name] = run(manifest, folder, server.url)
                results[n][name]["load_1min_end"] = os.getloadavg()[0]
                save(out_dir, results)
    return report(results)


def save(out_dir, results: dict) -> None:
    (Path(out_dir) / "scale.json").write_text(json.dumps(results, indent=1, default=str))


def report(r: dict) -> str:
    """The tables, from `main`'s results or a scale.json read back (several runs' merged: the N
    present; a part that did not run is shown as -)."""
    r = {(int(k) if str(k).isdigit() else k): v for k, v in r.items()}
    sizes = sorted(k for k in r if isinstance(k, int))
    load = {int(n): x for n, x in r["load_1min"].items()}
    lines = [f"Local Ray with {RAY_CPUS} CPUs; annotator: tests/llm_server.py, {LATENCY_S * 1000:.0f} ms per request; "
             f"pool: {2 * RAY_CPUS} processes. 1-min load average at the start and end of each part: "
             + "; ".join(f"{n} (from {r[n].get('started', '?')} UTC): {load[n]:.1f}"
                         + "".join(f", {name} end {r[n][name]['load_1min_end']:.1f}" for name in ("pipeline", "pool")
                                   if "load_1min_end" in r[n].get(name, {}))
                         for n in sizes) + ".", "",
             "| videos | pipeline wall | pipeline videos/min | 1st half | 2nd half | 2nd / 1st | pool videos/min "
             "| **pipeline / pool** | driver peak RSS | workers PSS (sum) | object store peak | worker processes |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        p, q = r[n].get("pipeline"), r[n].get("pool")
        if not p:
            continue
        first, second = halves(p["done_at"], n)
        vpm = n * 60 / p["wall_s"]
        pool = f"{n * 60 / q['wall_s']:.1f} | **{vpm / (n * 60 / q['wall_s']):.2f}**" if q else "- | -"
        m = p["memory"]
        lines.append(f"| {n} | {p['wall_s']:.0f} s | {vpm:.1f} | {first:.1f} | {second:.1f} | {second / first:.2f} "
                     f"| {pool} | {m['driver_rss']:.0f} MiB "
                     f"| {m['workers_pss']:.0f} MiB | {m['object_store']:.1f} MiB | {p['worker_processes']} |")
    measured = [n for n in sizes if r[n].get("pipeline")]
    for small, large in zip(measured, measured[1:]):
        slope = ((r[large]["pipeline"]["memory"]["driver_rss"] - r[small]["pipeline"]["memory"]["driver_rss"]) * 1024
                 / (large - small))
        lines += ["", f"Driver slope from {small} to {large} videos: **{slope:+.1f} KiB per video** (peak RSS at "
                      f"{large} minus at {small}, over {large - small} videos)."]
    lines += window_table(r, measured)
    if measured:
        stages = list(r[measured[0]]["pipeline"]["stage_seconds"])
        lines += ["", "Where a video's time goes (seconds per video: each stage's own wall time, summed over the "
                      "videos, / videos; *wall x cores*: what the run had):", "",
                  "| videos | run | " + " | ".join(stages) + " | stages | wall x cores | not in a stage |",
                  "|---|---|" + "---|" * (len(stages) + 3)]
        for n in measured:
            for name in ("pipeline", "pool"):
                if not (run := r[n].get(name)):
                    continue
                per = {k: v / n for k, v in run["stage_seconds"].items()}
                lines.append(f"| {n} | {name} | " + " | ".join(f"{per.get(k, 0):.3f}" for k in stages)
                             + f" | {sum(per.values()):.3f} | {run['wall_s'] * RAY_CPUS / n:.3f} "
                             f"| {run['wall_s'] * RAY_CPUS / n - sum(per.values()):.3f} |")
    m = r["manifest"]
    lines += ["", f"A {m['all']['rows']:,}-line manifest ({m['all']['shards']:,} shards), validated and planned "
                  "(`plan_manifest`, a child process):", "",
              "| shards | videos kept | wall | peak memory (VmHWM) |", "|---|---|---|---|"]
    for shards, x in m.items():
        lines.append(f"| {shards} | {x['kept']:,} | {x['wall_s']:.1f} s | {x['peak_mib']:.0f} MiB |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(main(Path("bench-out")))
