"""The arguments of `peakclips make-needle` and `peakclips eval` (peakclips/cli.py registers the
parsers, runs the commands and prints).
"""

from __future__ import annotations

from peakclips.eval import EvalError
from peakclips.eval.harness import EvalSettings


def eval_settings(args) -> EvalSettings:
    """The settings of one `peakclips eval` from its parsed arguments."""
    from peakclips.config import AnnotatorConfig, ClipConfig

    try:
        ks = [int(k) for k in args.k.split(",") if k.strip()]
    except ValueError:
        raise EvalError(f"--k expects budgets like 8,16,32, got {args.k!r}") from None
    vlm = None
    if args.vlm_base_url or args.vlm_model:
        vlm = AnnotatorConfig(backend="openai", base_url=args.vlm_base_url, model=args.vlm_model,
                              api_key_env=args.vlm_api_key_env, cache=args.vlm_cache, timeout_s=args.vlm_timeout)
    return EvalSettings(
        benchmark=args.benchmark, format=args.format, selectors=[x.strip() for x in args.selectors.split(",") if x.strip()],
        ks=ks, output=args.output, videos=args.videos, limit=args.limit,
        clip=ClipConfig(model=args.clip_model, batch_size=args.clip_batch_size,
                        pretrained=None if args.clip_pretrained.lower() == "none" else args.clip_pretrained),
        candidates=args.candidates, pipeline_config=args.pipeline_config, pipeline_overrides=args.set or [],
        vlm=vlm, image_size=args.vlm_image_size, force=args.force)


def add_parsers(sub) -> tuple:
    """Add the two subcommands' parsers to `sub`; returns them (make-needle, eval)."""
    from peakclips.eval.benchmarks import FORMATS

    n = sub.add_parser("make-needle", help="generate a needle-in-a-haystack benchmark offline (videos, manifest, "
                       "benchmark.jsonl)",
                       description="Haystack videos of textured shots with one short needle clip each (a "
                                   "checkered magenta-and-green card around a coloured square) at a known window, "
                                   "and a 4-option question about the needle's colour. Deterministic.")
    n.add_argument("out", help="output folder")
    n.add_argument("--videos", type=int, default=20, help="number of videos / questions (default: %(default)s)")
    n.add_argument("--duration-s", type=float, default=60.0, help="length of each video (default: %(default)s)")
    n.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    n.add_argument("--fps", type=int, default=24, help="(default: %(default)s)")
    n.add_argument("--size", default="320x180", help="WIDTHxHEIGHT, even numbers (default: %(default)s)")
    n.add_argument("--needle-s", type=float, default=2.0, help="length of the needle clip (default: %(default)s)")

    e = sub.add_parser("eval", help="compare keyframe selectors at fixed frame budgets (hit rate; accuracy with a VLM)",
                       description="Runs every selector at every budget on every question, resumably, and writes "
                                   "OUTPUT/results.json, results.md and results.png. See docs/eval.md.")
    e.add_argument("benchmark", help="annotation file (or MLVU's json/ folder); needle: OUT/benchmark.jsonl")
    e.add_argument("--format", required=True, choices=FORMATS)
    e.add_argument("--selectors", default="uniform,clip-topk,bolt,aks",
                   help="comma-separated: uniform, clip-topk, bolt[:POWER], aks, peakclips, kframes:CHECKPOINT, "
                        "oracle (default: %(default)s)")
    e.add_argument("--k", default="8,16,32", help="frame budgets (default: %(default)s)")
    e.add_argument("--output", required=True, help="results folder; re-runs resume in it")
    e.add_argument("--videos", help="folder holding the benchmark's videos (default: the format's published layout)")
    e.add_argument("--limit", type=int, help="only the first N questions")
    e.add_argument("--force", action="store_true", help="forget the results in OUTPUT and start over")
    e.add_argument("--clip-model", default="ViT-B-16-SigLIP", help="open_clip model of clip-topk, bolt, aks "
                   "(default: %(default)s)")
    e.add_argument("--clip-pretrained", default="webli", help="open_clip tag or checkpoint path; 'none' = random "
                   "weights, a smoke test only (default: %(default)s)")
    e.add_argument("--clip-batch-size", type=int, default=64, help="(default: %(default)s)")
    e.add_argument("--candidates", type=int, default=256, help="candidate frames per video the CLIP selectors "
                   "score (default: %(default)s)")
    e.add_argument("--pipeline-config", help="pipeline YAML of the `peakclips` selector (default: "
                   "pipelines/peakclips.yaml)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a key of that config; repeatable")
    e.add_argument("--vlm-base-url", help="OpenAI-compatible endpoint of the answering VLM (default: OPENAI_BASE_URL)")
    e.add_argument("--vlm-model", help="model name the endpoint serves; with it, accuracy is measured")
    e.add_argument("--vlm-api-key-env", default="OPENAI_API_KEY", help="variable holding the key (default: %(default)s)")
    e.add_argument("--vlm-cache", help="SQLite reply cache (default: ~/.cache/peakclips/vlm.sqlite)")
    e.add_argument("--vlm-timeout", type=float, default=120.0, help="seconds per request (default: %(default)s)")
    e.add_argument("--vlm-image-size", type=int, default=448, help="longest side of the frames sent (default: %(default)s)")
    return n, e
