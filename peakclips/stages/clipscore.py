"""Stage 5, clipscore: open_clip similarity between each query and each scene's frames.

Runs in a Ray actor pool (one model per actor; a GPU per actor when present, fp16 there).
Each scene's frames are embedded once and reused for every query; query texts are embedded
once per video; a scene's similarity is the max (or mean) over its frames' cosines.
Whether weights can be loaded is decided once, on the driver, before any work
(`clip_status`): with `clip.required` the run stops in seconds; without, it runs on
without CLIP and says so in the stats and in every sample.
"""

from __future__ import annotations

import os
from contextlib import contextmanager

import numpy as np

from peakclips.config import ClipConfig
from peakclips.stages import Stage


@contextmanager
def _short_hub_timeouts():
    """A hub that cannot be reached must fail in seconds, not after a minute of retries."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")}
    os.environ.update({"HF_HUB_ETAG_TIMEOUT": "5", "HF_HUB_DOWNLOAD_TIMEOUT": "5"})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pick_device(cfg: ClipConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def load_clip(cfg: ClipConfig, device: str = "cpu"):
    """(model, preprocess, tokenizer) for cfg; raises on weights or tokenizer that cannot load."""
    import open_clip
    import torch

    # Random weights (pretrained=None, tests only) come from a fixed seed, so every actor and
    # every run scores with the same model and the samples stay reproducible.
    with _short_hub_timeouts(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(
            cfg.model, pretrained=cfg.pretrained, device=device,
            precision="fp16" if device == "cuda" else "fp32",
        )
        tokenizer = open_clip.get_tokenizer(cfg.model)
    model.eval()
    return model, preprocess, tokenizer


def clip_status(cfg: ClipConfig) -> str | None:
    """None when CLIP can run; else one sentence saying why not (and what to set)."""
    if not cfg.enabled:
        return "clip.enabled is false"
    try:
        load_clip(cfg, "cpu")
    except Exception as e:  # noqa: BLE001 - open_clip/hub raise many types; we report, not hide
        where = cfg.pretrained or "random init"
        return (f"open_clip model {cfg.model} ({where}) could not be loaded: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:200]}; set clip.pretrained to a local checkpoint path "
                f"or a cached tag, or clip.required=false to run without CLIP")
    return None


def reduce_sims(sims: np.ndarray, frames_per_scene: list[int], how: str) -> np.ndarray:
    """[queries, frames] -> [queries, scenes] by max or mean over each scene's frames.

    >>> reduce_sims(np.array([[0.1, 0.3, 0.2]]), [2, 1], "max").tolist()
    [[0.3, 0.2]]
    """
    out, lo = [], 0
    for n in frames_per_scene:
        block = sims[:, lo:lo + n]
        out.append(block.max(axis=1) if how == "max" else block.mean(axis=1))
        lo += n
    return np.stack(out, axis=1)


class ClipScore(Stage):
    name = "clipscore"
    empty = {"clip_sims": []}

    def __init__(self, cfg: ClipConfig, use_clip: bool):
        self.cfg = cfg
        self.model = None
        if use_clip:
            self.device = pick_device(cfg)
            self.model, self.preprocess, self.tokenizer = load_clip(cfg, self.device)

    def embed_images(self, jpegs: list[bytes]) -> np.ndarray:
        import io

        import torch
        from PIL import Image

        feats = []
        for lo in range(0, len(jpegs), self.cfg.batch_size):
            batch = torch.stack([self.preprocess(Image.open(io.BytesIO(j)).convert("RGB"))
                                 for j in jpegs[lo:lo + self.cfg.batch_size]])
            with torch.inference_mode():
                f = self.model.encode_image(batch.to(self.device, dtype=next(self.model.parameters()).dtype))
            feats.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(feats)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            f = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy()

    def process(self, row: dict) -> dict:
        if self.model is None:
            return {"clip_sims": []}
        frames = [[j for j in scene if j] for scene in row["scene_frames"]]
        counts = [len(f) for f in frames]
        images = self.embed_images([j for f in frames for j in f])
        texts = self.embed_texts([q["query"] for q in row["queries"]])
        sims = reduce_sims(texts @ images.T, counts, self.cfg.reduce)
        return {"clip_sims": sims.round(6).tolist()}
