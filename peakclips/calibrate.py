"""`peakclips calibrate-clip`: alpha and beta of the CLIP-to-relevance map for one CLIP model.

The fusion (SPEC section 2.1, docs/scores.md) maps a raw similarity s to [1, 5] by
f(s) = 1 + 4 clamp((s - alpha) / (beta - alpha), 0, 1), so alpha should be where "unrelated"
lies for this model and beta where "clearly the same thing" lies. Both are properties of the
model (SigLIP and CLIP similarities live on very different scales), so they are measured:

  - matching pairs: each scene's caption against that scene's own frames;
  - non-matching pairs: each caption against the scenes of every *other* video;
  - a pair's similarity is computed exactly as the clipscore stage does (cosine of the
    embeddings, reduced over the scene's frames with `clip.reduce`);
  - alpha = the `--alpha-pct` percentile (default 50) of the non-matching similarities,
    beta = the `--beta-pct` percentile (default 90) of the matching ones;
  - the values are offered only when alpha < beta and the two sets separate (ROC AUC >= MIN_AUC).

The frames are the shard's candidate frames nearest to the times of the scene frames the
pipeline scored, so a dataset built without CLIP (or with other constants) can be used.
Reads finished shards only.
"""

from __future__ import annotations

import numpy as np

from peakclips.config import ClipConfig
from peakclips.errors import DatasetError, UserError

MIN_AUC = 0.7
"""Below this the model separates matching from non-matching pairs too poorly for alpha and beta
to mean anything; real CLIP/SigLIP weights on captions of their own scenes sit far above it."""


def scene_candidates(sample: dict) -> list[list[int]]:
    """Per scene, the candidate frames nearest to the scene's scored frame times (deduplicated)."""
    from peakclips.frametimes import nearest

    out = []
    for scene in sample["scenes"]:
        times = scene.get("frame_times_s") or [(scene["start_s"] + scene["end_s"]) / 2]
        out.append(sorted({nearest(sample["frame_times_s"], t) for t in times}))
    return out


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a matching pair scores above a non-matching one), ties counted half (ROC AUC).

    >>> auc(np.array([0.3, 0.4]), np.array([0.1, 0.3]))
    0.875
    """
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    return float((below + 0.5 * ties).sum() / (len(pos) * len(neg)))


def calibrate(matched: np.ndarray, unmatched: np.ndarray, alpha_pct: float = 50, beta_pct: float = 90) -> dict:
    """alpha, beta and the distributions they come from."""
    pcts = [5, 25, 50, 75, 95]
    return {
        "matching": {"n": len(matched), **{f"p{p}": round(float(np.percentile(matched, p)), 4) for p in pcts}},
        "non_matching": {"n": len(unmatched), **{f"p{p}": round(float(np.percentile(unmatched, p)), 4) for p in pcts}},
        "auc": round(auc(matched, unmatched), 4),
        "alpha_pct": alpha_pct, "beta_pct": beta_pct,
        "alpha": round(float(np.percentile(unmatched, alpha_pct)), 4),
        "beta": round(float(np.percentile(matched, beta_pct)), 4),
    }


def similarities(output: str, clip, max_videos: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(matching, non-matching similarities, videos used) over the kept videos of a dataset,
    scored by `clip` (a clipmodel.ClipModel)."""
    from peakclips.clipmodel import reduce_sims
    from peakclips.dataset import iter_samples
    from peakclips.video import decode_mp4

    texts, images, counts, video_of_scene = [], [], [], []
    n_videos = 0
    for _, sample, mp4 in iter_samples(output, frames=True):
        if n_videos == max_videos:
            break
        frames = decode_mp4(mp4)  # one video at a time: only embeddings are kept
        scenes = [(s["caption"], idx) for s, idx in zip(sample["scenes"], scene_candidates(sample))
                  if s["caption"].strip()]
        if not scenes:
            continue
        texts.append(clip.embed_texts([caption for caption, _ in scenes]))
        images.append(clip.embed_images([frames[i] for _, idx in scenes for i in idx]))
        counts += [len(idx) for _, idx in scenes]
        video_of_scene += [n_videos] * len(scenes)
        n_videos += 1
    if n_videos < 2:
        raise DatasetError(f"{output}: calibration needs captioned scenes from at least 2 kept videos, "
                           f"found {n_videos}")
    sims = reduce_sims(np.concatenate(texts) @ np.concatenate(images).T, counts, clip.cfg.reduce)  # captions x scenes
    same_video = np.equal.outer(video_of_scene, video_of_scene)
    return np.diag(sims).copy(), sims[~same_video], n_videos


class ModelLoadError(UserError):
    """The configured CLIP model cannot be loaded; the message says what to set."""


def calibrate_clip(output: str, cfg: ClipConfig, max_videos: int = 500, alpha_pct: float = 50,
                   beta_pct: float = 90) -> dict:
    """alpha and beta for `cfg`'s model on the dataset in `output`, the distributions they come
    from, and whether they are `usable` (alpha < beta and AUC >= MIN_AUC)."""
    from peakclips.clipmodel import ClipModel, load_failure

    try:
        clip = ClipModel(cfg)
    except Exception as e:  # noqa: BLE001 - open_clip/hub raise many types; reported as the preflight does
        raise ModelLoadError(load_failure(cfg, e)) from e
    matched, unmatched, n_videos = similarities(output, clip, max_videos)
    result = {"model": cfg.model, "pretrained": cfg.pretrained, "reduce": cfg.reduce, "videos": n_videos,
              **calibrate(matched, unmatched, alpha_pct, beta_pct)}
    return result | {"usable": result["alpha"] < result["beta"] and result["auc"] >= MIN_AUC}


def format_calibration(result: dict) -> str:
    """The report `peakclips calibrate-clip` prints without --json."""
    pcts = ("p5", "p25", "p50", "p75", "p95")
    lines = [
        f"CLIP calibration of {result['model']} (pretrained: {result['pretrained']}, reduce: {result['reduce']}) "
        f"on {result['videos']} videos: {result['matching']['n']} matching and {result['non_matching']['n']} "
        "non-matching caption-scene pairs",
        f"{'similarity':<14}" + "".join(f"{p:>9}" for p in pcts),
        *(f"{name.replace('_', '-'):<14}" + "".join(f"{result[name][p]:>9.4f}" for p in pcts)
          for name in ("matching", "non_matching")),
        f"separation: ROC AUC {result['auc']:.3f} (1.0 = every matching pair above every non-matching one)",
    ]
    if not result["usable"]:
        lines.append(f"not usable: alpha {result['alpha']}, beta {result['beta']}, AUC {result['auc']:.3f} (needs "
                     f"alpha < beta and AUC >= {MIN_AUC}): this model does not tell matching from non-matching "
                     "pairs here (expected with random weights, pretrained: null)")
    else:
        lines += [f"alpha = p{result['alpha_pct']:g} of non-matching, beta = p{result['beta_pct']:g} of matching; "
                  "put in the pipeline YAML:",
                  f"clip:\n  alpha: {result['alpha']}\n  beta: {result['beta']}"]
    return "\n".join(lines)
