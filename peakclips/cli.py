"""`peakclips`: the command line. Each subcommand is a thin wrapper over a library function.

    peakclips run CONFIG [--manifest PATH] [--output DIR] [--shards SPEC] [--force] [--set k=v ...]
    peakclips verify DIR
    peakclips frames DIR --video-id ID --query N --k K [--mode M] [--json] [--out DIR]
    peakclips calibrate-clip DIR [--config YAML] [--set k=v ...] [--json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from peakclips import __version__


def cmd_run(args) -> int:
    from peakclips.config import load_config
    from peakclips.pipeline import run

    cfg = load_config(args.config, args.set or [])
    output = args.output or str(Path("out") / Path(args.config).stem)
    run(cfg, args.manifest, output, args.shards, args.force)
    return 0


def cmd_verify(args) -> int:
    from peakclips.verify import verify

    checked, defects = verify(args.dir, decode_frames=not args.no_decode)
    for d in defects:
        print(f"DEFECT {d}")
    print(f"verified {checked} shard(s) in {args.dir}: {len(defects)} defect(s)")
    return 1 if defects else 0


def cmd_frames(args) -> int:
    from peakclips.keyframes import frames_command

    return frames_command(args.output_dir, args.video_id, args.query, args.k, args.mode, args.background,
                          args.json, args.out, args.video, args.manifest)


def cmd_calibrate_clip(args) -> int:
    from peakclips.calibrate import calibrate_command
    from peakclips.config import load_config

    cfg = load_config(args.config, args.set or [])
    return calibrate_command(args.output_dir, cfg.clip, args.max_videos, args.alpha_pct, args.beta_pct, args.json)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="peakclips", description="Build and inspect PeakClips datasets.")
    p.add_argument("--version", action="version", version=f"peakclips {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the pipeline over a manifest into shards")
    r.add_argument("config", help="pipeline YAML, e.g. pipelines/sample.yaml")
    r.add_argument("--manifest", default="manifests/sample.jsonl", help="JSON-lines manifest (default: %(default)s)")
    r.add_argument("--output", help="output folder or fsspec URI (default: out/<config name>)")
    r.add_argument("--shards", help="input shards to build: 0-99, 7, 0,3,5 (default: all)")
    r.add_argument("--force", action="store_true", help="rebuild shards that are already complete")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (dotted path, value parsed as YAML); repeatable")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("verify", help="check every shard of a dataset; non-zero exit on any defect")
    v.add_argument("dir")
    v.add_argument("--no-decode", action="store_true", help="skip decoding the candidate frames")
    v.set_defaults(fn=cmd_verify)

    f = sub.add_parser("frames", help="k frame timestamps (and JPEGs) for one query of a built dataset",
                       description="Any-k frames (SPEC 2.2) from a query's highlight clips: focused = only "
                                   "inside the clips, hybrid = a background share over the whole video plus "
                                   "the rest inside the clips, uniform = evenly over the video.")
    f.add_argument("output_dir", help="dataset folder (or fsspec URI) holding the shards")
    f.add_argument("--video-id", required=True, help="the manifest's video_id")
    f.add_argument("--query", type=int, required=True, metavar="N", help="query_id within the video")
    f.add_argument("--k", type=int, required=True, help="number of frames")
    f.add_argument("--mode", choices=["auto", "focused", "hybrid", "uniform"], default="auto",
                   help="auto: focused for k <= 8, hybrid above (default: %(default)s)")
    f.add_argument("--background", type=float, default=0.25, help="hybrid background share (default: %(default)s)")
    f.add_argument("--json", action="store_true", help="print JSON instead of text")
    f.add_argument("--out", metavar="DIR", help="also write the k frames as JPEGs into DIR")
    f.add_argument("--video", metavar="URI", help="source video to take the frames from (default: the "
                   "shard's candidate frames, nearest in time)")
    f.add_argument("--manifest", help="manifest the dataset was built from: its uri is the source video")
    f.set_defaults(fn=cmd_frames)

    c = sub.add_parser("calibrate-clip", help="measure clip.alpha and clip.beta for a CLIP model on a built dataset",
                       description="Similarities of matching (a scene's caption vs its frames) and non-matching "
                                   "(vs other videos' scenes) pairs; alpha = a percentile of the non-matching, "
                                   "beta = a percentile of the matching. See docs/scores.md.")
    c.add_argument("output_dir", help="dataset folder (or fsspec URI) holding the shards")
    c.add_argument("--config", help="pipeline YAML whose clip section names the model (default: the defaults)")
    c.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. clip.pretrained=PATH")
    c.add_argument("--max-videos", type=int, default=500, help="use at most this many videos (default: %(default)s)")
    c.add_argument("--alpha-pct", type=float, default=50, help="percentile of non-matching pairs (default: %(default)s)")
    c.add_argument("--beta-pct", type=float, default=90, help="percentile of matching pairs (default: %(default)s)")
    c.add_argument("--json", action="store_true", help="print JSON instead of text")
    c.set_defaults(fn=cmd_calibrate_clip)
    return p


def main(argv: list[str] | None = None) -> int:
    from peakclips.config import ConfigError
    from peakclips.manifest import ManifestError

    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ConfigError, ManifestError) as e:
        print(f"peakclips: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
