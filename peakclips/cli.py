"""`peakclips`: the command line. Each subcommand is a thin wrapper over a library function.

    peakclips run CONFIG [--manifest PATH] [--output DIR] [--shards SPEC] [--force] [--set k=v ...]
    peakclips verify DIR
    peakclips select VIDEO --query "..." --k K --checkpoint DIR
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


def cmd_select(args) -> int:
    from peakclips.train.select import select_cli

    return select_cli(args.video, args.query, args.k, args.checkpoint, args.mode)


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

    s = sub.add_parser("select", help="pick k frame timestamps for a query with a trained selector (peakclips-train)")
    s.add_argument("video", help="video file or fsspec URI")
    s.add_argument("--query", required=True)
    s.add_argument("--k", type=int, default=16, help="number of frames (default: %(default)s)")
    s.add_argument("--checkpoint", required=True, help="a stage's final/ or checkpoint-N/ folder")
    s.add_argument("--mode", default="auto", choices=["auto", "focused", "hybrid", "uniform"],
                   help="clip2frame mode (auto: focused for k <= 8, else hybrid)")
    s.set_defaults(fn=cmd_select)
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
