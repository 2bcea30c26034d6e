"""`peakclips`: the command line. Each subcommand is a thin wrapper over a library function.

    peakclips run CONFIG [--manifest PATH] [--output DIR] [--shards SPEC] [--force] [--set k=v ...]
    peakclips verify DIR
    peakclips stats DIR [--json]
    peakclips export {qvhighlights,charades} DIR OUT
    peakclips upload DIR --repo-id ORG/NAME [--private] [--dry-run]
    peakclips report DIR [--out FOLDER] [--max-videos N]
    peakclips annotator-eval DIR [--reference-dir DIR] [--json PATH]
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


def cmd_stats(args) -> int:
    import json

    from peakclips.stats import dataset_stats, format_stats

    stats = dataset_stats(args.dir)
    print(json.dumps(stats, indent=2) if args.json else format_stats(stats))
    return 0


def cmd_export(args) -> int:
    from peakclips.export import export

    n = export(args.format, args.dir, args.out)
    print(f"wrote {n} line(s) to {args.out}")
    return 0


def cmd_upload(args) -> int:
    from peakclips.hub import upload

    upload(args.dir, args.repo_id, private=args.private, dry_run=args.dry_run)
    return 0


def cmd_report(args) -> int:
    from peakclips.report import build_report

    path = build_report(args.dir, args.out, max_videos=args.max_videos)
    print(f"wrote {path}")
    return 0


def cmd_annotator_eval(args) -> int:
    import json

    from peakclips.annotator_eval import EvalError, evaluate, format_report

    try:
        result = evaluate(args.dir, args.reference_dir)
    except EvalError as e:
        print(f"peakclips: error: {e}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


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

    st = sub.add_parser("stats", help="funnel, drops by reason, errors by code, durations, LLM usage of a dataset")
    st.add_argument("dir")
    st.add_argument("--json", action="store_true", help="print the numbers as JSON")
    st.set_defaults(fn=cmd_stats)

    e = sub.add_parser("export", help="write the dataset's highlights for existing grounding code")
    e.add_argument("format", choices=["qvhighlights", "charades"],
                   help="qvhighlights: Moment-DETR jsonl; charades: Charades-STA 'vid start end##query' lines")
    e.add_argument("dir")
    e.add_argument("out", help="output file (path or fsspec URI)")
    e.set_defaults(fn=cmd_export)

    u = sub.add_parser("upload", help="publish a dataset on the Hugging Face Hub with a generated dataset card")
    u.add_argument("dir")
    u.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repository")
    u.add_argument("--private", action="store_true", help="create the repository as private")
    u.add_argument("--dry-run", action="store_true",
                   help="write the card to DIR/README.md and print the plan; send nothing")
    u.set_defaults(fn=cmd_upload)

    rp = sub.add_parser("report", help="a self-contained HTML report with plots and per-video timelines")
    rp.add_argument("dir")
    rp.add_argument("--out", help="folder for index.html and the PNG plots (default: DIR/report)")
    rp.add_argument("--max-videos", type=int, default=20, help="videos shown with timelines (default: %(default)s)")
    rp.set_defaults(fn=cmd_report)

    ae = sub.add_parser("annotator-eval", help="agreement of an annotated dataset with the reference "
                        "annotations of the sample clips (relevance accuracy, Spearman, highlight overlap)")
    ae.add_argument("dir", help="a dataset built from the sample clips, e.g. with manifests/sample_eval.jsonl")
    ae.add_argument("--reference-dir", help="reference annotations (default: the bundled manifests/reference)")
    ae.add_argument("--json", help="also write the numbers to this JSON file")
    ae.set_defaults(fn=cmd_annotator_eval)

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
    errors: tuple = (ConfigError, ManifestError)
    if args.command == "upload":
        from peakclips.hub import HubError

        errors += (HubError,)
    try:
        return args.fn(args)
    except errors as e:
        print(f"peakclips: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
