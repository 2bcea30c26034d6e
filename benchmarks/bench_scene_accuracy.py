"""Scene-cut accuracy: precision / recall / F1 of cuts at +-2 frames, per set of videos with
known cuts, for each `scenes.detector` beside PySceneDetect's default ContentDetector.

Sets: (a) synthetic clips from tests/media.py with exact cut frames, by hard case (hard cuts,
fades through black, cross-dissolves, similar colours across a cut, fast motion without a
cut, camera flashes); seeds differ from the clips the detector was developed on. (b) the
bundled CC-BY clips, with the cuts of the hand-checked reference annotations
(manifests/reference/*.yaml; the joins of the 60 s mix at 10, 20 and 30 s are exact).

"PySceneDetect default" is `scenedetect.detect(path, ContentDetector())`: its own decoder and
downscaling, as a user would call it. Our detectors run inside `preprocess`, the pipeline's
decode pass. A detected cut matches a true one within 2 frames (one-to-one, greedy in time
order); scores are micro-averaged over a set (F1 = 2TP / (2TP + FP + FN); a set with no true
cut and no detection scores 1).
"""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import REPO, cached_media

# Cuts (first frame of each new shot, seconds) from manifests/reference/*.yaml: the
# "Cuts seen in the frames" comment lines; caminandes and intel are single shots.
REFERENCE_CUTS = {
    "tears_of_steel_10s_640x360.mp4": [0.88, 2.71, 7.71],
    "sintel_10s_640x360.mp4": [2.42, 3.17, 4.00, 4.92, 5.83, 7.33, 8.71],
    "caminandes1_10s_640x360.mp4": [],
    "big_buck_bunny_0-30s_1280x720.webm": [11.79, 15.67, 22.96],
    "intel_car_detection_30s_768x432.mp4": [],
    "blender_mix_60s_640x360.mp4": [0.88, 2.71, 7.71, 10.0, 20.0, 22.42, 23.17, 24.0, 24.92, 25.83,
                                    27.33, 28.71, 30.0, 41.79, 45.67, 52.96],
}
METHODS = ["pyscenedetect-default", "combined", "content", "adaptive", "histogram"]


def synthetic_set(folder: Path) -> list[dict]:
    """(category, path, fps, true cut times) for the synthetic hard cases."""
    from tests import media

    def clip(category, name, make):
        info = cached_media(folder / name, make)
        return {"set": "synthetic", "category": category, "path": info["path"], "fps": info["fps"],
                "cuts": info["cut_times_s"]}

    out = []
    for s, (cuts, n) in enumerate([((20, 50, 75, 110, 150), 180), ((30, 48, 100), 140), ((15, 40, 64, 90), 120)]):
        out.append(clip("hard cuts", f"cuts{s}.mp4", lambda p, c=cuts, n=n, s=s: media.make_cuts_clip(p, c, n, seed=10 + s)))
    for s, (fade, black) in enumerate([(6, 4), (10, 8), (3, 12)]):
        out.append(clip("fade", f"fade{s}.mp4", lambda p, f=fade, b=black, s=s: media.make_fade_clip(
            p, fade_len=f, black_len=b, seed=10 + s)))
    for s, length in enumerate([8, 16, 30]):
        out.append(clip("dissolve", f"dissolve{s}.mp4", lambda p, d=length, s=s: media.make_dissolve_clip(
            p, dissolve_len=d, seed=10 + s)))
    for s in range(3):
        out.append(clip("similar colours", f"similar{s}.mp4", lambda p, s=s: media.make_similar_colours_clip(
            p, seed=10 + s, tiles=(3 + s, 4))))
    for s, pan in enumerate([16, 32, 48]):
        out.append(clip("fast motion", f"fast{s}.mp4", lambda p, v=pan, s=s: media.make_fast_motion_clip(
            p, pan_px=v, disc_speed=v, seed=10 + s)))
    for s, length in enumerate([1, 2, 4]):
        out.append(clip("flash", f"flash{s}.mp4", lambda p, n=length, s=s: media.make_flash_clip(
            p, flash_len=n, strength=0.7 + 0.1 * s, seed=10 + s)))
    return out


def cc_by_set() -> list[dict]:
    from peakclips.video import probe

    return [{"set": "CC-BY", "category": name, "path": str(REPO / "manifests/videos" / name),
             "fps": probe(str(REPO / "manifests/videos" / name)).fps, "cuts": cuts}
            for name, cuts in REFERENCE_CUTS.items()]


def detect(path: str, method: str) -> list[float]:
    if method == "pyscenedetect-default":
        import scenedetect

        scenes = scenedetect.detect(path, scenedetect.ContentDetector())
        return [start.seconds for start, _ in scenes[1:]]
    from peakclips.config import FramesConfig, ScenesConfig
    from peakclips.stages.scenes import preprocess
    from peakclips.video import probe

    info = probe(path)
    out = preprocess(path, info.duration_s, info.fps, info.width, info.height,
                     ScenesConfig(detector=method), FramesConfig(num_candidates=8, per_scene=1))
    return out.cut_times_s


def match(found: list[float], truth: list[float], tol: float) -> tuple[int, int, int]:
    """(TP, FP, FN), each true cut matched to at most one detection within tol."""
    left, tp = sorted(found), 0
    for t in sorted(truth):
        near = [f for f in left if abs(f - t) <= tol]
        if near:
            left.remove(min(near, key=lambda f: abs(f - t)))
            tp += 1
    return tp, len(left), len(truth) - tp


def f1_cell(tp: int, fp: int, fn: int) -> str:
    if tp + fp + fn == 0:
        return "1.00 (-/-)"
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    return f"{2 * tp / (2 * tp + fp + fn):.2f} ({p:.2f}/{r:.2f})"


def main(out_dir) -> str:
    out_dir = Path(out_dir).resolve()  # children run in other folders
    clips = synthetic_set(out_dir / "media" / "accuracy") + cc_by_set()
    rows: dict[tuple[str, str], dict[str, list[int]]] = {}
    raw = []
    for c in clips:
        for method in METHODS:
            found = detect(c["path"], method)
            counts = match(found, c["cuts"], 2 / c["fps"] + 1e-3)
            raw.append({**c, "method": method, "found": [round(f, 4) for f in found], "tp_fp_fn": counts})
            for key in [(c["set"], c["category"]), (c["set"], "all")]:
                acc = rows.setdefault(key, {}).setdefault(method, [0, 0, 0])
                for i in range(3):
                    acc[i] += counts[i]
    (out_dir / "scene_accuracy.json").write_text(json.dumps(raw, indent=1))
    lines = ["F1 (precision/recall) of cuts at +-2 frames; TP/FP/FN summed over each row's clips.", "",
             "| set | clips | true cuts | " + " | ".join(METHODS) + " |",
             "|---|---|---|" + "---|" * len(METHODS)]
    order = list(dict.fromkeys((c["set"], c["category"]) for c in clips))
    order = [k for s in dict.fromkeys(k[0] for k in order) for k in [*[o for o in order if o[0] == s], (s, "all")]]
    for set_name, category in order:
        members = [c for c in clips if c["set"] == set_name and category in ("all", c["category"])]
        label = f"**{set_name}: all**" if category == "all" else f"{set_name}: {category}"
        cells = [f1_cell(*rows[(set_name, category)][m]) for m in METHODS]
        lines.append(f"| {label} | {len(members)} | {sum(len(c['cuts']) for c in members)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
