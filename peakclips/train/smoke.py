"""`make train-smoke`: sft1 -> sft2 -> rl for a few steps each, then `peakclips select`, offline on CPU.

Runs the real stage configs (pipelines/train/*.yaml) with overrides that make them small: the
tiny random Qwen2.5-VL (real tokenizer), 16 candidate frames of 56 x 28 pixels, a tiny answerer,
a handful of steps. The data are the bundled sample clips with the multiple-choice items of
manifests/train-sample.jsonl, built into out/train-sample by the pipeline (`peakclips run`, in a
subprocess: the trainer never imports the pipeline) when they are not there yet; `peakclips
select` runs in a subprocess too. A second run
finds each stage's last checkpoint and resumes from it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from peakclips.shards import is_complete

SHARDS = Path("out/train-sample")
RUN = Path("runs/smoke")
COMMON = [f"run.output_dir={RUN}", f"data.shards={SHARDS}", "model.tiny=true", "data.num_frames=16",
          "data.max_pixels=1568", "data.min_pixels=784", "data.num_workers=1", "data.shuffle_buffer=8",
          "optim.batch_size=2", "optim.grad_accum=1", "optim.save_steps=2", "optim.logging_steps=1"]
STAGES = {
    "sft1": ["optim.max_steps=4", "optim.lr=1e-4"],
    "sft2": ["optim.max_steps=4", "optim.lr=1e-4"],
    "rl": ["optim.max_steps=3", "optim.lr=1e-5", "optim.batch_size=1", "rl.num_generations=2",
           "rl.max_completion_tokens=32", "rl.answerer.tiny=true", "rl.answerer.max_pixels=1568", "rl.k=4"],
}
SELECT_VIDEO = "manifests/videos/sintel_10s_640x360.mp4"


def ensure_shards() -> None:
    if is_complete(str(SHARDS), 0):
        return
    print(f"train-smoke: building {SHARDS} from manifests/train-sample.jsonl (the pipeline, ~3 min)", flush=True)
    cmd = [sys.executable, "-m", "peakclips.cli", "run", "pipelines/sample.yaml",
           "--manifest", "manifests/train-sample.jsonl", "--output", str(SHARDS)]
    subprocess.run(cmd, check=True, stdin=subprocess.DEVNULL, env=dict(os.environ, HF_HUB_OFFLINE="1"))


def summary(stage: str) -> str:
    rows = [json.loads(line) for line in (RUN / stage / "metrics.jsonl").read_text().splitlines()]
    key = "loss" if stage != "rl" else "reward"
    values = [r[key] for r in rows if key in r]
    return f"{key} {values[0]:.3f} -> {values[-1]:.3f} over {len(values)} logged steps" if values else "no steps"


def main() -> int:
    from peakclips.train.cli import main as train

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    ensure_shards()
    for stage, extra in STAGES.items():
        started = time.time()
        code = train([stage, "--config", f"pipelines/train/{stage}.yaml", *(a for o in COMMON + extra for a in ("--set", o))])
        if code:
            return code
        print(f"train-smoke: {stage} took {time.time() - started:.0f} s; {summary(stage)}", flush=True)
    select = [sys.executable, "-m", "peakclips.cli", "select", SELECT_VIDEO, "--query",
              "the girl is knocked down and rolls in the snow", "--k", "8", "--checkpoint", str(RUN / "rl" / "final")]
    return subprocess.run(select).returncode


if __name__ == "__main__":
    sys.exit(main())
