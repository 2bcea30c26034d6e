"""`peakclips select VIDEO --query "..." --k K --checkpoint DIR`: a trained selector on one video.

The video's candidate frames are taken as in the dataset (evenly over the video, as many as the
model was trained with), the selector answers in the clips format with the prompt it was trained
with (both recorded in the checkpoint's peakclips_train.json), the answer is parsed leniently, and
clip2frame turns the clips into k timestamps. An answer that cannot be parsed falls back to
uniform frames, and says so on stderr and in the result (`fallback`), never silently.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from peakclips.train.clip2frame import clip2frame

CANDIDATE_SIZE = 448  # longest side of a candidate frame, as the pipeline stores them


def candidate_frames(video: str, n: int) -> tuple[np.ndarray, list[float], float]:
    """n frames nearest to n evenly spaced times (sub-interval midpoints), one decoding pass."""
    from peakclips.video import fit_size, iter_frames, probe, to_rgb

    info = probe(video)
    targets = [(i + 0.5) * info.duration_s / n for i in range(n)]
    w, h = fit_size(info.width, info.height, CANDIDATE_SIZE)
    picked: list = [None] * n
    j, prev = 0, None
    for f in iter_frames(video):
        while j < n and f.time_s >= targets[j]:
            near = prev if prev is not None and targets[j] - prev.time_s < f.time_s - targets[j] else f
            picked[j] = near
            j += 1
        prev = f
    for k in range(j, n):
        picked[k] = prev
    return (np.stack([to_rgb(p.frame, w, h) for p in picked]), [round(p.time_s, 3) for p in picked],
            info.duration_s)


def select(video: str, query: str, k: int, checkpoint: str, mode: str = "auto",
           max_new_tokens: int = 512) -> dict:
    """k timestamps for `query` on `video`, with the clips they came from and how."""
    import torch

    from peakclips.prompts import Prompt
    from peakclips.redact import redact_uri
    from peakclips.train import model as models
    from peakclips.train.batch import encode, to_device
    from peakclips.train.tasks import parse_clips, selector_prompt

    meta = models.read_meta(checkpoint)
    model, processor = models.load(checkpoint, False, max_pixels=meta.get("max_pixels", 448 * 252),
                                   min_pixels=meta.get("min_pixels", 28 * 28))
    if torch.cuda.is_available():
        model.to("cuda")
    frames, times, duration = candidate_frames(video, meta.get("num_frames", 256))
    trained = meta.get("prompts", {}).get("selector")  # the template the model was trained with
    prompt = selector_prompt(query, times, duration, Prompt(trained["id"], trained["text"]) if trained else None)
    batch = to_device(encode(processor, [{"prompt": prompt, "frames": frames, "times": times,
                                          "duration": duration}], padding_side="left"), model.device)
    with torch.no_grad():
        out = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                             pad_token_id=processor.tokenizer.pad_token_id)
    answer = processor.tokenizer.decode(out[0, batch["input_ids"].size(1):], skip_special_tokens=True)
    clips, error = parse_clips(answer, duration)
    return {"video": redact_uri(video), "query": query, "k": k, "duration_s": duration,
            "timestamps": clip2frame(clips, duration, k, mode), "clips": clips,
            "fallback": error is not None, "fallback_reason": error, "answer": answer}


def select_cli(video: str, query: str, k: int, checkpoint: str, mode: str) -> int:
    """The `peakclips select` command: prints the result as JSON; exit 0 also on fallback."""
    from peakclips.errors import VideoError
    from peakclips.train.model import ModelUnavailable

    if not Path(checkpoint).is_dir():
        print(f"peakclips select: error: --checkpoint {checkpoint} is not a folder", file=sys.stderr)
        return 2
    try:
        result = select(video, query, k, checkpoint, mode)
    except (VideoError, ModelUnavailable) as e:
        print(f"peakclips select: error: {e}", file=sys.stderr)
        return 2
    if result["fallback"]:
        print(f"peakclips select: WARNING: the selector's answer could not be parsed "
              f"({result['fallback_reason']}); falling back to {k} uniform frames", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0
