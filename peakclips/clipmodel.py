"""The CLIP model (open_clip): loading it without waiting on an unreachable hub, and embedding
frames and texts. Shared by the clipscore stage, the driver's preflight (`clip_status`) and
`peakclips calibrate-clip`.

Whether weights can be loaded is decided once, on the driver, before any work (`clip_status`):
with `clip.required` the run stops in seconds; without, it runs on without CLIP and says so in
the stats and in every sample. Loading never waits on a hub it cannot reach: cached or local
files are tried first with the hub switched off; the hub is asked only when that fails and
HF_HUB_OFFLINE is not set, with timeouts of a few seconds.

`ClipModel` embeds on CUDA with fp16 when there is a GPU, else on CPU. JPEG decoding and
preprocessing of the next batch run in a thread while the model works on the current one, so
embedding runs at the model's speed (benchmarks/bench_clip.py). A scene's similarity to a text is
the max (or mean) over its frames of the embeddings' cosine (`reduce_sims`).
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from peakclips.config import ClipConfig
from peakclips.errors import VideoError

HUB_TIMEOUT_S = 2  # per request; a reachable hub answers a HEAD far faster
RANDOM_INIT_SEED = 0  # pretrained=None: every actor (and every run) builds the same random model


@contextmanager
def hub_settings(offline: bool):
    """Switch the Hugging Face hub off (or on with short timeouts) for the code inside.

    huggingface_hub reads HF_HUB_OFFLINE and its timeouts into module constants at import, so
    setting environment variables here would do nothing; the constants are what it consults.
    """
    from huggingface_hub import constants

    names = ("HF_HUB_OFFLINE", "HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")
    saved = {n: getattr(constants, n) for n in names}
    constants.HF_HUB_OFFLINE = offline or saved["HF_HUB_OFFLINE"]
    constants.HF_HUB_ETAG_TIMEOUT = min(saved["HF_HUB_ETAG_TIMEOUT"], HUB_TIMEOUT_S)
    constants.HF_HUB_DOWNLOAD_TIMEOUT = min(saved["HF_HUB_DOWNLOAD_TIMEOUT"], 10)
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(constants, n, v)


def pick_device(cfg: ClipConfig) -> str:
    import torch

    if cfg.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return cfg.device


def _looks_like_path(pretrained: str) -> bool:
    return pretrained.startswith((".", "/", "~")) or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def load_clip(cfg: ClipConfig, device: str = "cpu"):
    """(model, preprocess, tokenizer) for cfg; raises when weights or tokenizer cannot load.

    `cfg.model` may also be open_clip's `local-dir:/path` (config, weights and tokenizer in one
    folder: the way to run SigLIP on machines that never see the hub).
    """
    import open_clip
    import torch

    if cfg.pretrained and _looks_like_path(cfg.pretrained) and not os.path.isfile(os.path.expanduser(cfg.pretrained)):
        raise FileNotFoundError(f"no checkpoint file at {cfg.pretrained}")

    def build():
        with torch.random.fork_rng(devices=[]), _without_open_clip_download_log():
            torch.manual_seed(RANDOM_INIT_SEED)
            model, _, preprocess = open_clip.create_model_and_transforms(
                cfg.model, pretrained=cfg.pretrained, device=device,
                precision="fp16" if device == "cuda" else "fp32",
            )
        return model.eval(), preprocess, open_clip.get_tokenizer(cfg.model)

    try:
        with hub_settings(offline=True):  # cache, local files or bundled tokenizers only
            return build()
    except Exception as e:
        from huggingface_hub import constants

        local = cfg.model.startswith("local-dir:") or (cfg.pretrained and _looks_like_path(cfg.pretrained))
        if constants.HF_HUB_OFFLINE or local:
            raise  # nothing the hub could add (weights, or a tokenizer: SigLIP's come from the hub)
        problem = hub_unreachable()
        if problem:  # huggingface_hub would retry each file for ~25 s; one probe decides instead
            raise ConnectionError(f"not in the local cache, and the hub at {constants.ENDPOINT} "
                                  f"is not reachable ({problem})") from e
    with hub_settings(offline=False):
        return build()


class _DropDownloadFailure(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Failed to download weights")


@contextmanager
def _without_open_clip_download_log():
    """open_clip logs "Failed to download weights ..." on the root logger and then raises the
    same text; callers report the exception (`load_failure`: one sentence that says what to
    set), so the log line would only say it twice, the first time without the advice."""
    root, drop = logging.getLogger(), _DropDownloadFailure()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def hub_unreachable() -> str | None:
    """None when the hub answers one HEAD request within HUB_TIMEOUT_S; else what went wrong.

    Goes through huggingface_hub's own HTTP session, so HF_ENDPOINT and proxies apply.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:
        get_session().head(constants.ENDPOINT, timeout=HUB_TIMEOUT_S)
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"; we say which
        return f"{type(e).__name__}: {str(e)[:120]}"
    return None


def clip_status(cfg: ClipConfig) -> str | None:
    """None when CLIP can run; else one sentence saying why not (and what to set)."""
    if not cfg.enabled:
        return "clip.enabled is false"
    try:
        load_clip(cfg, "cpu")
    except Exception as e:  # noqa: BLE001 - open_clip/hub raise many types; we report, not hide
        return load_failure(cfg, e)
    return None


def load_failure(cfg: ClipConfig, e: Exception) -> str:
    """The one sentence a user gets when the model cannot be loaded."""
    where = cfg.pretrained or "random init"
    return (f"open_clip model {cfg.model} ({where}) could not be loaded: {type(e).__name__}: "
            f"{failure_text(e)}; set clip.pretrained to a local checkpoint path or a cached tag, "
            f"or clip.required=false to run without CLIP")


def failure_text(e: Exception, limit: int = 300) -> str:
    """The first line of a loader's error, shortened to whole sentences (the hub's errors run to
    several sentences on one line; a cut mid-word reads like a bug)."""
    first = (str(e).strip().splitlines() or [""])[0]
    if len(first) <= limit:
        return first
    end = first.rfind(". ", 0, limit)
    return first[:end + 1] if end > 0 else first[:limit].rsplit(" ", 1)[0] + " ..."


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


class ClipModel:
    """An open_clip model loaded once (per Ray actor, or per command), with its preprocessing."""

    def __init__(self, cfg: ClipConfig):
        # CPU threads: Ray sets OMP_NUM_THREADS to the CPUs the actor reserves
        # (clip.num_cpus), which torch follows; in process, torch's own default applies.
        self.cfg = cfg
        self.device = pick_device(cfg)
        self.model, self.preprocess, self.tokenizer = load_clip(cfg, self.device)
        self.dtype = next(self.model.parameters()).dtype
        self.loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clip-preprocess")

    def _prepare(self, images: list):
        """Decode and preprocess one batch of JPEG bytes or RGB arrays (runs in the loader thread)."""
        import torch
        from PIL import Image, UnidentifiedImageError

        def pil(x):
            return Image.fromarray(x) if isinstance(x, np.ndarray) else Image.open(io.BytesIO(x)).convert("RGB")

        try:
            batch = torch.stack([self.preprocess(pil(x)) for x in images])
        except (UnidentifiedImageError, OSError) as e:
            raise VideoError("bad_frame", f"a scene frame does not decode: {e}") from None
        return batch.pin_memory() if self.device == "cuda" else batch

    def batches(self, jpegs: list) -> Iterator:
        """Preprocessed batches, the next one prepared while the caller works on this one."""
        size = self.cfg.batch_size
        chunks = [jpegs[lo:lo + size] for lo in range(0, len(jpegs), size)]
        ahead = self.loader.submit(self._prepare, chunks[0]) if chunks else None
        for i in range(len(chunks)):
            batch = ahead.result()
            ahead = self.loader.submit(self._prepare, chunks[i + 1]) if i + 1 < len(chunks) else None
            yield batch

    def embed_images(self, jpegs: list) -> np.ndarray:
        """L2-normalised embeddings of JPEG bytes (or RGB arrays), [n, dim]."""
        import torch

        feats = []
        with torch.inference_mode():
            for batch in self.batches(jpegs):
                f = self.model.encode_image(batch.to(self.device, dtype=self.dtype, non_blocking=True))
                feats.append(torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy())
        return np.concatenate(feats)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            f = self.model.encode_text(self.tokenizer(texts).to(self.device))
        return torch.nn.functional.normalize(f.float(), dim=-1).cpu().numpy()
