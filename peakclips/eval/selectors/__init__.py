"""Keyframe selectors behind one interface: `select(item, duration_s, k)` -> k sorted, distinct
timestamps (seconds) inside [0, duration_s).

| `--selectors` entry | module | how it picks |
|---|---|---|
| `uniform` | uniform.py | k midpoints of equal slices of the video: the baseline of every paper |
| `clip-topk` | clip_topk.py | the k candidate frames most similar to the question (open_clip) |
| `bolt`, `bolt:POWER` | bolt.py | inverse-transform sampling over the similarity curve (BOLT, CVPR 2025) |
| `aks` | aks.py | relevance plus coverage by recursive splitting (AKS, CVPR 2025) |
| `peakclips` | engine.py | the data engine: the pipeline's highlights for the question, then clip2frame |
| `kframes:CHECKPOINT` | kframes.py | a trained K-frames selector, through `peakclips select`'s code path |
| `oracle` | oracle.py | clip2frame over the ground-truth windows: an upper bound and a check of the harness |

The selectors that turn clips into frames (peakclips, kframes, oracle; uniform is clip2frame
without clips) all go through `peakclips.clip2frame`, as `peakclips frames` and `select` do.

A selector may do work once for all items first (`prepare`: the engine runs the pipeline there).
A failure that belongs to one item (its video does not decode, it has no windows) raises
`VideoError`; the harness records it on the item and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from peakclips.config import ClipConfig
from peakclips.eval import EvalError
from peakclips.eval.benchmarks import Item


@dataclass
class Selection:
    timestamps_s: list[float]
    note: str | None = None
    """Why the selector did not select as it normally does (a fallback), for the results."""


class Selector:
    name: str = ""
    uses_clip: bool = False

    def settings(self) -> dict:
        """What its selections depend on besides the item and k (a re-run with others is refused)."""
        return {}

    def prepare(self, items: list[Item], durations: dict[str, float]) -> None:
        """Work done once for all the items still to select (default: none)."""

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        raise NotImplementedError


class CurveSelector(Selector):
    """A selector that picks k of the candidate frames by their query similarities alone."""

    uses_clip = True

    def __init__(self, ctx: Context):
        self.ctx = ctx

    def settings(self) -> dict:
        return self.ctx.clip_settings()

    def pick(self, sims, k: int) -> list[int]:
        """The indices of the k frames picked from the similarity curve."""
        raise NotImplementedError

    def select(self, item: Item, duration_s: float, k: int) -> Selection:
        times, sims = self.ctx.similarity.curve(item, k)
        return Selection([float(times[i]) for i in self.pick(sims, k)])


@dataclass
class Context:
    """What selectors share: where they may keep files, and the CLIP and pipeline settings."""

    output: Path
    clip: ClipConfig = field(default_factory=ClipConfig)
    candidates: int = 256
    pipeline_config: str | None = None
    pipeline_overrides: list[str] = field(default_factory=list)
    _similarity: object = None

    def clip_settings(self) -> dict:
        return {"clip": f"{self.clip.model}/{self.clip.pretrained}", "candidates": self.candidates}

    @property
    def similarity(self):
        """The shared CLIP similarity curves (the model loads on first use)."""
        from peakclips.eval.similarity import Similarity

        if self._similarity is None:
            self._similarity = Similarity(self.clip, self.candidates, self.output / "cache" / "clip")
        return self._similarity


def build(spec: str, ctx: Context) -> Selector:
    """The selector a `--selectors` entry names; EvalError with the valid names otherwise."""
    name, _, arg = spec.partition(":")
    if name == "uniform" and not arg:
        from peakclips.eval.selectors.uniform import Uniform

        return Uniform()
    if name == "oracle" and not arg:
        from peakclips.eval.selectors.oracle import Oracle

        return Oracle()
    if name == "clip-topk" and not arg:
        from peakclips.eval.selectors.clip_topk import ClipTopK

        return ClipTopK(ctx)
    if name == "bolt":
        from peakclips.eval.selectors.bolt import Bolt

        try:
            return Bolt(ctx, float(arg) if arg else None)
        except ValueError:
            raise EvalError(f"bolt:POWER needs a positive number, got {arg!r}") from None
    if name == "aks" and not arg:
        from peakclips.eval.selectors.aks import AKS

        return AKS(ctx)
    if name == "peakclips" and not arg:
        from peakclips.eval.selectors.engine import Engine

        return Engine(ctx)
    if name == "kframes" and arg:
        from peakclips.eval.selectors.kframes import KFrames

        return KFrames(arg)
    raise EvalError(f"unknown selector {spec!r}; use uniform, clip-topk, bolt, bolt:POWER, aks, peakclips, "
                     "kframes:CHECKPOINT or oracle")
