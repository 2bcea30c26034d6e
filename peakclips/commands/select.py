"""`peakclips select VIDEO --query "..." --k K --checkpoint DIR`: a trained selector on one video.

The video's candidate frames are taken as in the dataset: the frames shown at the midpoints of
equal slices of the video (peakclips/frametimes.py), as many as the model was trained with. The
selector answers in the clips format with the prompt it was trained with (both recorded in the
checkpoint's peakclips_train.json), the answer is parsed leniently, and clip2frame turns the clips
into k timestamps. An answer that cannot be parsed falls back to uniform frames, and says so in
the result (`fallback`; the CLI also warns on stderr), never silently.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from peakclips.clip2frame import clip2frame
from peakclips.errors import UserError

CANDIDATE_SIZE = 448  # longest side of a candidate frame, as the pipeline stores them


def candidate_frames(video: str, n: int) -> tuple[np.ndarray, list[float], float]:
    """The frames shown at n evenly spaced times (slice midpoints) and their times rounded as the
    dataset rounds them (0.1 ms), in one decoding pass."""
    from peakclips.frametimes import frames_at
    from peakclips.spans import midpoints
    from peakclips.video import fit_size, iter_frames, probe, to_rgb

    info = probe(video)
    w, h = fit_size(info.width, info.height, CANDIDATE_SIZE)
    shown = frames_at(((f.time_s, f.frame) for f in iter_frames(video)), midpoints(0.0, info.duration_s, n),
                      convert=lambda frame: to_rgb(frame, w, h))
    return np.stack([img for _, img in shown]), [round(t, 4) for t, _ in shown], info.duration_s


class TrainedSelector:
    """A trained checkpoint, loaded once, that predicts clips for any (video, query): what `select`
    runs for one, and `peakclips eval`'s `kframes:CHECKPOINT` for every question of a benchmark."""

    def __init__(self, checkpoint: str):
        if not Path(checkpoint).is_dir():  # before torch is imported: a typo fails in milliseconds
            raise UserError(f"--checkpoint {checkpoint} is not a folder")
        import torch

        from peakclips.train import model as models

        self.meta = models.read_meta(checkpoint)
        self.model, self.processor = models.load(checkpoint, False, max_pixels=self.meta.get("max_pixels", 448 * 252),
                                                 min_pixels=self.meta.get("min_pixels", 28 * 28))
        if torch.cuda.is_available():
            self.model.to("cuda")

    def predict(self, video: str, query: str, max_new_tokens: int = 512) -> dict:
        """The model's answer for `query` on `video`, the clips parsed from it (leniently) and, when
        nothing parses, why (`error`)."""
        import torch

        from peakclips.prompts import Prompt
        from peakclips.train.batch import encode, to_device
        from peakclips.train.tasks import parse_clips, selector_prompt

        frames, times, duration = candidate_frames(video, self.meta.get("num_frames", 256))
        trained = self.meta.get("prompts", {}).get("selector")  # the template the model was trained with
        prompt = selector_prompt(query, times, duration, Prompt(trained["id"], trained["text"]) if trained else None)
        batch = to_device(encode(self.processor, [{"prompt": prompt, "frames": frames, "times": times,
                                                   "duration": duration}], padding_side="left"), self.model.device)
        with torch.no_grad():
            out = self.model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                                      pad_token_id=self.processor.tokenizer.pad_token_id)
        answer = self.processor.tokenizer.decode(out[0, batch["input_ids"].size(1):], skip_special_tokens=True)
        clips, error = parse_clips(answer, duration)
        return {"duration_s": duration, "clips": clips, "error": error, "answer": answer}


def select(video: str, query: str, k: int, checkpoint: str, mode: str = "auto",
           max_new_tokens: int = 512) -> dict:
    """k timestamps for `query` on `video`, with the clips they came from and how. An answer
    that does not parse falls back to uniform frames (`fallback`, `fallback_reason`)."""
    from peakclips.redact import redact_uri

    predicted = TrainedSelector(checkpoint).predict(video, query, max_new_tokens)
    chosen = clip2frame(predicted["clips"], predicted["duration_s"], k, mode)
    return {"video": redact_uri(video), "query": query, "k": k, "duration_s": predicted["duration_s"],
            "mode": chosen.mode, "timestamps": chosen.times_s, "clips": predicted["clips"],
            "fallback": predicted["error"] is not None, "fallback_reason": predicted["error"],
            "answer": predicted["answer"]}
