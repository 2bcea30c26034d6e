"""Per-video preprocessing (scenes + T candidates + m frames per scene) against the naive
sequence a user would write and against the decode floor; where the time goes; peak memory
for a 10- and a 60-minute video.

Methods, each run as a child process and measured with its own `wait4` rusage (wall, CPU of
all threads), interleaved round by round so machine load hits all of them alike:

* floor: `ffmpeg -i V -an -vf scale=256:-2 -f null -`, one decode at the analysis width;
* ours: `preprocess()` of the scenes stage with the default config (one decode pass). The
  child imports everything first and times the call alone: a Ray worker pays the imports once,
  not per video. Its peak RSS (VmHWM, read by the child itself) includes the imports;
* naive: `scenedetect -i V detect-content list-scenes`, then one ffmpeg run writing the T
  candidates (same size, same x264 settings as ours), then one ffmpeg call per scene frame
  (input seeking, `-frames:v 1`). Wall and CPU are summed over its processes, RSS is the max.

Videos: the 720p Big Buck Bunny clip (VP8), the 60 s mix (H.264 640x360), and a synthetic
video (tests/media.py: hard cuts every ~4 s, moving textures, grain; H.264 640x360) made as a
2-minute clip and looped without re-encoding to 10 and 60 minutes.

`python -m benchmarks.bench_preprocess --child VIDEO [--breakdown]` is the child.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import REPO, cached_media, measure, median, tool

ROUNDS = 3
FAST_PRESET = "ultrafast"  # the speed end of the candidate-storage trade-off, shown beside the default
VIDEOS = {
    "bbb_720p_30s": REPO / "manifests/videos/big_buck_bunny_0-30s_1280x720.webm",
    "mix_60s": REPO / "manifests/videos/blender_mix_60s_640x360.mp4",
}


def long_videos(folder: Path) -> dict[str, Path]:
    from tests import media

    base = Path(cached_media(folder / "synthetic_2min.mp4",
                             lambda p: media.make_long_clip(p, minutes=2, size=(640, 360)))["path"])
    out = {}
    for minutes in (10, 60):
        path = folder / f"synthetic_{minutes}min.mp4"
        if not path.exists():
            subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-stream_loop", str(minutes // 2 - 1), "-i", str(base),
                            "-c", "copy", str(path)], check=True)
        out[f"synthetic_{minutes}min"] = path
    return out


def run_floor(video: Path) -> dict:
    return measure(["ffmpeg", "-v", "error", "-nostdin", "-i", str(video), "-an", "-vf", "scale=256:-2",
                    "-f", "null", "-"])


def run_ours(video: Path, breakdown: bool = False, preset: str | None = None) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.bench_preprocess", "--child", str(video)]
    cmd += (["--breakdown"] if breakdown else []) + (["--preset", preset] if preset else [])
    m = measure(cmd, cwd=REPO)
    child = json.loads(m["stdout"])
    return {**child, "process_wall_s": m["wall_s"]}


def run_naive(video: Path) -> dict:
    """The naive sequence; returns summed wall/CPU and max RSS over its processes."""
    from peakclips.config import FramesConfig
    from peakclips.spans import midpoints
    from peakclips.video import fit_size, probe, x264_params

    cfg, info = FramesConfig(), probe(str(video))
    cw, ch = fit_size(info.width, info.height, cfg.candidate_size)
    sw, sh = fit_size(info.width, info.height, cfg.scene_frame_size)
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        runs.append(measure([tool("scenedetect"), "-i", str(video), "-o", tmp, "detect-content", "list-scenes", "-q",
                             "-f", "scenes.csv", "-s"], cwd=tmp))
        with open(Path(tmp) / "scenes.csv") as f:
            scenes = [(float(r["Start Time (seconds)"]), float(r["End Time (seconds)"])) for r in csv.DictReader(f)]
        rate = f"{cfg.num_candidates}/{info.duration_s}"
        runs.append(measure(["ffmpeg", "-v", "error", "-nostdin", "-i", str(video), "-an",
                             "-vf", f"fps={rate},scale={cw}:{ch}", "-frames:v", str(cfg.num_candidates),
                             "-c:v", "libx264", "-preset", cfg.candidate_preset, "-crf", str(cfg.candidate_crf),
                             "-x264-params", x264_params(cfg.candidate_x264_params),
                             "-threads", "1", str(Path(tmp) / "candidates.mp4")]))
        for i, (a, b) in enumerate(scenes):
            for k, t in enumerate(midpoints(a, b, cfg.per_scene)):
                runs.append(measure(["ffmpeg", "-v", "error", "-nostdin", "-ss", f"{t:.3f}", "-i", str(video),
                                     "-frames:v", "1", "-vf", f"scale={sw}:{sh}", "-q:v", "3",
                                     str(Path(tmp) / f"s{i}_{k}.jpg")]))
    return {"wall_s": sum(r["wall_s"] for r in runs), "cpu_s": sum(r["cpu_s"] for r in runs),
            "rss_mib": max(r["rss_mib"] for r in runs), "processes": len(runs), "scenes": len(scenes)}


def main(out_dir) -> str:
    out_dir = Path(out_dir).resolve()  # children run in other folders
    videos = {**VIDEOS, **long_videos(out_dir / "media")}
    speed = ["bbb_720p_30s", "mix_60s", "synthetic_10min"]
    results: dict[str, dict[str, list[dict]]] = {v: {"floor": [], "ours": [], "fast": [], "naive": []} for v in speed}
    for r in range(ROUNDS):
        for name in speed:
            results[name]["floor"].append(run_floor(videos[name]))
            results[name]["ours"].append(run_ours(videos[name]))
            results[name]["fast"].append(run_ours(videos[name], preset=FAST_PRESET))
            if r == 0:  # minutes of process starts; the ratio it is checked against is 2x
                results[name]["naive"].append(run_naive(videos[name]))
    memory = {m: run_ours(videos[f"synthetic_{m}min"]) for m in (10, 60)}
    breakdown = {n: run_ours(videos[n], breakdown=True)["breakdown"] for n in ("mix_60s", "synthetic_10min")}
    (out_dir / "preprocess.json").write_text(json.dumps(
        {"speed": results, "memory": memory, "breakdown": breakdown}, indent=1, default=str))
    return report(results, memory, breakdown)


def report(results: dict, memory: dict, breakdown: dict) -> str:
    def med(runs, key):
        return median([x[key] for x in runs])

    lines = [f"Wall and CPU seconds: median of {ROUNDS} interleaved rounds (naive: 1 round). Ratios are "
             f"ours / floor and naive / ours; *{FAST_PRESET}*: ours with frames.candidate_preset={FAST_PRESET}.", "",
             "| video | floor wall | ours wall | naive wall | **ours / floor** wall (CPU) "
             f"| {FAST_PRESET} / floor wall (CPU) | **naive / ours** wall | naive processes | ours peak RSS |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        fw, ow, nw = med(r["floor"], "wall_s"), med(r["ours"], "wall_s"), med(r["naive"], "wall_s")
        fc, oc = med(r["floor"], "cpu_s"), med(r["ours"], "cpu_s")
        qw, qc = med(r["fast"], "wall_s"), med(r["fast"], "cpu_s")
        lines.append(f"| {name} | {fw:.2f} s | {ow:.2f} s | {nw:.1f} s | **{ow / fw:.2f}x** ({oc / fc:.2f}x) "
                     f"| {qw / fw:.2f}x ({qc / fc:.2f}x) | **{nw / ow:.1f}x** | {r['naive'][0]['processes']} "
                     f"| {med(r['ours'], 'rss_mib'):.0f} MiB |")
    m10, m60 = memory[10], memory[60]
    lines += ["", "Peak memory of one preprocessing run (child process RSS, imports included):", "",
              "| video | wall | scenes | peak RSS |", "|---|---|---|---|",
              f"| synthetic 10 min | {m10['wall_s']:.1f} s | {m10['scenes']} | {m10['rss_mib']:.0f} MiB |",
              f"| synthetic 60 min | {m60['wall_s']:.1f} s | {m60['scenes']} | {m60['rss_mib']:.0f} MiB "
              f"(**{(m60['rss_mib'] / m10['rss_mib'] - 1) * 100:+.1f} %**) |",
              "", "Where the time goes (CPU seconds of the decode pass, each row adding one part):", "",
              "| part | " + " | ".join(breakdown) + " |", "|---|" + "---|" * len(breakdown)]
    parts = list(next(iter(breakdown.values())))
    for i, part in enumerate(parts):
        cells = []
        for b in breakdown.values():
            added = b[part] - (b[parts[i - 1]] if i else 0.0)
            cells.append(f"{b[part]:.2f} (+{added:.2f})" if i else f"{b[part]:.2f}")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- the child

def _child(video: str, breakdown: bool, preset: str | None) -> dict:
    import resource
    import time

    import peakclips.detect  # noqa: F401  (imports scenedetect and OpenCV, as a warm worker has)
    from peakclips.config import FramesConfig, ScenesConfig
    from peakclips.stages.scenes import preprocess
    from peakclips.video import probe

    info = probe(video)
    if breakdown:
        return {"breakdown": _breakdown(video, info)}
    started, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF)
    frames = FramesConfig(candidate_preset=preset) if preset else FramesConfig()
    out = preprocess(video, info.duration_s, info.fps, info.width, info.height, ScenesConfig(), frames)
    end = resource.getrusage(resource.RUSAGE_SELF)
    return {"wall_s": time.perf_counter() - started,
            "cpu_s": end.ru_utime + end.ru_stime - cpu.ru_utime - cpu.ru_stime,
            "scenes": len(out.scenes), "frames": out.decoded_frames, "rss_mib": peak_rss_mib()}


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM, kept per address space and fresh after exec). Not
    `wait4`'s ru_maxrss: Linux carries the parent's peak into a child across fork and exec, so
    a child of a benchmark runner that holds a 2 GB CLIP model reports 2 GB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _breakdown(video: str, info) -> dict:
    """CPU seconds of the decode loop doing more and more of the real work."""
    import resource

    from scenedetect.common import FrameTimecode, Timecode

    from peakclips.config import FramesConfig, ScenesConfig
    from peakclips.detect import make_detector
    from peakclips.stages.frames import Candidates, SceneFrames
    from peakclips.stages.scenes import preprocess
    from peakclips.video import Scaler, fit_size, iter_frames

    scfg, fcfg = ScenesConfig(), FramesConfig()
    aw = scfg.analysis_width
    ah = round(info.height * aw / info.width / 2) * 2

    def loop(level: int) -> None:
        scaler, det = Scaler(), make_detector(scfg.detector, None, scfg.min_scene_s, info.fps)
        cands = (Candidates(info.duration_s, fit_size(info.width, info.height, fcfg.candidate_size), fcfg, Scaler())
                 if level >= 3 else None)
        shots = SceneFrames(fcfg, scfg.min_scene_s, scfg.max_scene_s, det.event_buffer_length + 1,
                            fit_size(info.width, info.height, fcfg.scene_frame_size), Scaler())
        for d in iter_frames(video):
            if level >= 1:
                img = scaler.array(d.frame, aw, ah)
            if level >= 2:
                tc = FrameTimecode(Timecode(pts=d.pts, time_base=d.time_base), fps=info.fps)
                for cut in det.process_frame(tc, img):
                    shots.cut(cut.seconds)
            if level >= 3:
                cands.push(d.frame, d.time_s)
            if level >= 4:
                shots.push(d.frame, d.time_s)
        if cands:
            cands.finish()
        if level >= 4:
            shots.finish(info.duration_s)

    steps = {"decode": lambda: loop(0), "+ scale to analysis width": lambda: loop(1),
             "+ shot detector": lambda: loop(2), "+ T candidates (scale, x264)": lambda: loop(3),
             "+ per-scene frames (reservoir, JPEG)": lambda: loop(4),
             "preprocess() (all of it)": lambda: preprocess(video, info.duration_s, info.fps, info.width,
                                                            info.height, scfg, fcfg)}
    out = {}
    for name, fn in steps.items():
        before = resource.getrusage(resource.RUSAGE_SELF)
        fn()
        after = resource.getrusage(resource.RUSAGE_SELF)
        out[name] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return out


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--child":
        preset = sys.argv[sys.argv.index("--preset") + 1] if "--preset" in sys.argv else None
        print(json.dumps(_child(sys.argv[2], "--breakdown" in sys.argv, preset)))
    else:
        print(main(Path("bench-out")))
