"""Query-frame similarity curves for the CLIP-based selectors (clip-topk, bolt, aks).

A video's candidate frames are taken as `peakclips select` takes them (the frames shown at the
midpoints of T equal slices of the video, T = `--candidates`, 256 by default as in K-frames; BOLT
and AKS sample 1 frame per second instead, which for videos shorter than 256 s is denser). Each
is embedded once with the project's open_clip model and encoders (peakclips/clipmodel.py), and the
question's text embedding is compared with all of them by cosine. Frame embeddings are cached on
disk per video file and CLIP setting (OUTPUT/cache/clip/), so a re-run or another budget costs no
decoding; a video shorter than T frames keeps each distinct frame once.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from peakclips.config import ClipConfig
from peakclips.errors import VideoError
from peakclips.eval.benchmarks import Item


class Similarity:
    def __init__(self, cfg: ClipConfig, candidates: int, cache_dir: Path):
        self.cfg, self.candidates, self.cache_dir = cfg, candidates, cache_dir
        self._model = None
        self._videos: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def model(self):
        """The open_clip model, loaded once (peakclips/clipmodel.py, as the clipscore stage loads it)."""
        if self._model is None:
            from peakclips.clipmodel import ClipModel

            self._model = ClipModel(self.cfg)
        return self._model

    def curve(self, item: Item, frames_needed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(candidate times in seconds, cosine similarity of each to the question); the same
        curve serves every selector and budget of the item. VideoError when the video has fewer
        distinct candidate frames than `frames_needed`."""
        if item.id not in self._curves:
            times, frames = self.embeddings(item.video)
            text = self.model().embed_texts([item.question])[0]
            self._curves = {item.id: (times, frames.astype(np.float32) @ text)}  # items come one at a time
        times, sims = self._curves[item.id]
        if len(times) < frames_needed:
            raise VideoError("too_few_frames", f"{len(times)} distinct candidate frames, fewer than k={frames_needed}")
        return times, sims

    def embeddings(self, video: str) -> tuple[np.ndarray, np.ndarray]:
        """(times, L2-normalised frame embeddings) of a video's distinct candidate frames."""
        if video in self._videos:
            return self._videos[video]
        path = self.cache_dir / f"{self._key(video)}.npz"
        if path.exists():
            with np.load(path) as z:
                found = z["times"], z["embeddings"]
        else:
            from peakclips.commands.select import candidate_frames

            frames, times, _ = candidate_frames(video, self.candidates)
            keep = [i for i in range(len(times)) if i == 0 or times[i] != times[i - 1]]
            found = np.asarray(times)[keep], self.model().embed_images(list(frames[keep])).astype(np.float16)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, times=found[0], embeddings=found[1])
            os.replace(tmp, path)  # a killed run never leaves half a cache file
        self._videos = {video: found}  # one video at a time in memory; items come grouped by video
        return found

    def _key(self, video: str) -> str:
        st = os.stat(video)
        blob = [os.path.abspath(video), st.st_size, st.st_mtime_ns, self.cfg.model, self.cfg.pretrained,
                self.candidates]
        return hashlib.sha256(json.dumps(blob).encode()).hexdigest()[:24]
