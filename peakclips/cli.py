"""`peakclips`: the command line. Each subcommand is a thin wrapper over a library function that
returns a value or raises a typed error (peakclips/errors.py); only this module prints results
and picks the exit code: 0 ok, 1 the thing checked failed (verify found defects, a calibration
is not usable, `scenes` found a video the pipeline rejects), 2 a usage or input error (one
sentence on stderr, no traceback). Programming errors keep their traceback.

    peakclips run CONFIG [--manifest PATH] [--output DIR] [--shards SPEC] [--force] [--progress S] [--verbose]
                  [--set k=v ...] [--*-column NAME]
    peakclips manifest SRC... -o M.jsonl [--license L] [--source S] [--*-column NAME]
    peakclips unlock DIR
    peakclips verify DIR
    peakclips stats DIR [--json]
    peakclips export {qvhighlights,charades} DIR OUT
    peakclips upload DIR --repo-id ORG/NAME [--private] [--dry-run]
    peakclips report DIR [--out FOLDER] [--max-videos N]
    peakclips annotator-eval DIR [--reference-dir DIR] [--json PATH]
    peakclips scenes VIDEO [--detector NAME] [--json] [--frames-dir DIR] [--config YAML] [--set k=v ...]
    peakclips frames DIR --video-id ID --query N --k K [--mode M] [--json] [--out DIR] [--video URI | --manifest PATH [--config YAML]]
    peakclips calibrate-clip DIR [--config YAML] [--set k=v ...] [--json]
    peakclips select VIDEO --query "..." --k K --checkpoint DIR
    peakclips make-needle OUT [--videos N] [--duration-s D] [--seed S]
    peakclips eval BENCHMARK --format F --selectors uniform,bolt,... --k 8,16,32 --output DIR
"""

from __future__ import annotations

import _thread
import argparse
import json
import sys
from pathlib import Path

from peakclips import __version__
from peakclips.errors import UserError, VideoError


def cmd_run(args) -> int:
    from peakclips.config import load_config
    from peakclips.manifest_build import local_manifest
    from peakclips.pipeline import run
    from peakclips.storage import configure, output_errors
    from peakclips.terminal import StoppedWatch, detach_stdin

    cfg = load_config(args.config, args.set or [])
    configure(cfg.storage_options)  # the manifest, too, may be on object storage
    output = args.output or str(Path("out") / Path(args.config).stem)
    # Nothing this run starts may inherit the user's terminal (peakclips/terminal.py); should a
    # process still end up stopped by it, the watch ends the run with one sentence.
    detach_stdin()
    with (StoppedWatch(on_stopped=lambda _: _thread.interrupt_main()) as watch, output_errors(output),
          local_manifest(args.manifest, columns(args)) as manifest):
        try:
            run(cfg, manifest, output, args.shards, args.force, progress_s=args.progress, verbose=args.verbose)
        except BaseException:
            # The watch interrupts the main thread, and where that lands Ray's code can turn the
            # KeyboardInterrupt into another exception (once in CI, under load: exit 1 and no
            # sentence), so any exception after the watch fired ends the run with its sentence.
            if watch.message is None:
                raise
            print(f"peakclips: error: {watch.message}", file=sys.stderr)
            return 1
    return 0


def columns(args):
    from peakclips.manifest_build import Columns

    return Columns(args.id_column, args.uri_column, args.source_column, args.license_column, args.queries_column)


def cmd_manifest(args) -> int:
    from peakclips.manifest_build import build, write

    built = build(args.sources, columns(args), license=args.license, source=args.source)
    write(built, args.out)
    print(f"wrote {args.out}: {built.report()}")
    return 0


def cmd_unlock(args) -> int:
    from peakclips.lock import unlock

    print(unlock(args.dir))
    return 0


def cmd_verify(args) -> int:
    from peakclips.verify import verify

    checked, defects = verify(args.dir, decode_frames=not args.no_decode)
    for d in defects:
        print(f"DEFECT {d}")
    print(f"verified {checked} shard(s) in {args.dir}: {len(defects)} defect(s)")
    return 1 if defects else 0


def cmd_stats(args) -> int:
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
    from peakclips.annotator_eval import evaluate, format_report

    result = evaluate(args.dir, args.reference_dir)
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


def cmd_scenes(args) -> int:
    from peakclips.commands.scenes import format_report, scenes_report, write_frames
    from peakclips.config import load_config

    overrides = list(args.set or []) + ([f"scenes.detector={args.detector}"] if args.detector else [])
    cfg = load_config(args.config, overrides)
    try:
        report, out = scenes_report(args.video, cfg)
    except VideoError as e:  # the finding: the pipeline would reject this video, with this code
        from peakclips.redact import redact_text, redact_uri

        shown, detail = redact_uri(args.video), redact_text(e.detail)
        if args.json:
            print(json.dumps({"video": shown, "error": e.code, "detail": detail}))
        else:
            print(f"peakclips: {shown}: {e.code}: {detail}", file=sys.stderr)
        return 1
    written = write_frames(out, args.frames_dir) if args.frames_dir else 0
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    if written and not args.json:
        print(f"wrote {written} JPEGs under {args.frames_dir}")
    return 0


def cmd_frames(args) -> int:
    from peakclips.commands.frames import format_keyframes, keyframes
    from peakclips.config import load_config

    ingest = load_config(args.config).ingest if args.config else None
    result = keyframes(args.output_dir, args.video_id, args.query, args.k, args.mode, args.background,
                       args.out, args.video, args.manifest, ingest)
    print(json.dumps(result, indent=2) if args.json else format_keyframes(result))
    return 0


def cmd_calibrate_clip(args) -> int:
    from peakclips.calibrate import calibrate_clip, format_calibration
    from peakclips.config import load_config

    cfg = load_config(args.config, args.set or [])
    result = calibrate_clip(args.output_dir, cfg.clip, args.max_videos, args.alpha_pct, args.beta_pct)
    print(json.dumps(result, indent=2) if args.json else format_calibration(result))
    return 0 if result["usable"] else 1


def cmd_select(args) -> int:
    from peakclips.commands.select import select

    try:
        result = select(args.video, args.query, args.k, args.checkpoint, args.mode)
    except VideoError as e:  # the video the user named: an input error
        raise UserError(f"{args.video}: {e}") from None
    if result["fallback"]:
        print(f"peakclips select: WARNING: the selector's answer could not be parsed "
              f"({result['fallback_reason']}); falling back to {args.k} uniform frames", file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0


def add_columns(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("table columns", "for a CSV, TSV, Parquet or JSON-lines table of videos")
    for name in ("id", "uri", "source", "license", "queries"):
        default = "video_id" if name == "id" else name
        g.add_argument(f"--{name}-column", default=default, metavar="NAME",
                       help=f"the column holding each video's {name} (default: %(default)s)")


def cmd_make_needle(args) -> int:
    from peakclips.eval.needle import make_needle, parse_size

    items = make_needle(args.out, args.videos, args.duration_s, args.seed, args.fps, parse_size(args.size),
                        args.needle_s)
    hours = sum(x["duration_s"] for x in items) / 3600
    print(f"wrote {len(items)} videos ({hours:.2f} h), {args.out}/benchmark.jsonl and {args.out}/manifest.jsonl; "
          f"evaluate with: peakclips eval {args.out}/benchmark.jsonl --format needle ...")
    return 0


def cmd_eval(args) -> int:
    from peakclips.eval.arguments import eval_settings
    from peakclips.eval.harness import evaluate
    from peakclips.terminal import detach_stdin

    detach_stdin()  # the peakclips selector starts Ray: nothing it starts may inherit the terminal
    evaluate(eval_settings(args))  # progress, the table and the output paths on stdout
    return 0


def build_parser() -> argparse.ArgumentParser:
    from peakclips.clip2frame import AUTO_FOCUSED_MAX_K, MODES

    p = argparse.ArgumentParser(prog="peakclips", description="Build and inspect PeakClips datasets.")
    p.add_argument("--version", action="version", version=f"peakclips {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run the pipeline over a manifest into shards")
    r.add_argument("config", help="pipeline YAML, e.g. pipelines/sample.yaml")
    r.add_argument("--manifest", default="manifests/sample.jsonl",
                   help="JSON-lines manifest, or a CSV, TSV or Parquet table of videos (see the table columns); "
                        "a path or fsspec URI (default: %(default)s)")
    r.add_argument("--output", help="output folder or fsspec URI (default: out/<config name>)")
    r.add_argument("--shards", help="input shards to build: 0-99, 7, 0,3,5 (default: all)")
    r.add_argument("--force", action="store_true", help="rebuild shards that are already complete")
    r.add_argument("--progress", type=float, metavar="SECONDS", default=None,
                   help="seconds between progress lines when stderr is not a terminal (default 60; 0: none); "
                        "a terminal shows a live bar")
    r.add_argument("--verbose", action="store_true", help="also show Ray's own start-up and execution messages")
    r.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="override a config key (dotted path, value parsed as YAML); repeatable")
    add_columns(r)
    r.set_defaults(fn=cmd_run)

    m = sub.add_parser("manifest", help="write a manifest from folders, object-storage prefixes or tables",
                       description="Each SRC is a local folder, an object-storage prefix (s3://bucket/videos/, "
                                   "gs://..., hf://datasets/org/name/...) or a table (CSV, TSV, Parquet, JSON lines). "
                                   "Folders and prefixes: every video file below, in path order, its path relative "
                                   "to SRC as its id; local files are also recognised by their first bytes. "
                                   "Tables: one video per row, columns mapped by the --*-column flags. Prints what "
                                   "was skipped and why.")
    m.add_argument("sources", nargs="+", metavar="SRC")
    m.add_argument("-o", "--out", required=True, help="the manifest to write (JSON lines; a path or fsspec URI)")
    m.add_argument("--license", help="license of the rows that have none")
    m.add_argument("--source", help="source of the rows that have none")
    add_columns(m)
    m.set_defaults(fn=cmd_manifest)

    un = sub.add_parser("unlock", help="remove the lock a run left on an output (a run that is gone)",
                        description="A run holds OUTPUT/_peakclips.lock while it writes. A run that crashed leaves "
                                    "it: on the same machine the next run takes it over at once, from another "
                                    "machine once its heartbeat is 2 minutes old. This removes it now; a run that "
                                    "is in fact still going stops at its next heartbeat.")
    un.add_argument("dir", help="the output folder or URI")
    un.set_defaults(fn=cmd_unlock)

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
    rp.add_argument("--out", help="folder for index.html and the PNG plots (default: DIR/report; for a DIR on "
                    "object storage, ./NAME-report on this machine, NAME the last part of DIR)")
    rp.add_argument("--max-videos", type=int, default=20, help="videos shown with timelines (default: %(default)s)")
    rp.set_defaults(fn=cmd_report)

    ae = sub.add_parser("annotator-eval", help="agreement of an annotated dataset with the reference "
                        "annotations of the sample clips (relevance accuracy, Spearman, highlight overlap)")
    ae.add_argument("dir", help="a dataset built from the sample clips, e.g. with manifests/sample_eval.jsonl")
    ae.add_argument("--reference-dir", help="reference annotations (default: the bundled manifests/reference)")
    ae.add_argument("--json", help="also write the numbers to this JSON file")
    ae.set_defaults(fn=cmd_annotator_eval)

    sc = sub.add_parser("scenes", help="probe one video, find its scenes and sample its frames (stages 1-3)")
    sc.add_argument("video", help="a local video file")
    sc.add_argument("--detector", choices=["combined", "content", "adaptive", "histogram"],
                    help="shot detector (default: scenes.detector of the config, combined)")
    sc.add_argument("--json", action="store_true", help="print the probe, cuts, scenes and frame times as JSON")
    sc.add_argument("--frames-dir", metavar="DIR",
                    help="write the T candidate frames and the m frames per scene as JPEGs here")
    sc.add_argument("--config", help="pipeline YAML to take scenes/frames/ingest settings from (default: built-in)")
    sc.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key; repeatable")
    sc.set_defaults(fn=cmd_scenes)
    f = sub.add_parser("frames", help="k frame timestamps (and JPEGs) for one query of a built dataset",
                       description="Any-k frames (SPEC 2.2) from a query's highlight clips: focused = only "
                                   "inside the clips, hybrid = a background share over the whole video plus "
                                   "the rest inside the clips, uniform = evenly over the video.")
    f.add_argument("output_dir", help="dataset folder (or fsspec URI) holding the shards")
    f.add_argument("--video-id", required=True, help="the manifest's video_id")
    f.add_argument("--query", type=int, required=True, metavar="N", help="query_id within the video")
    f.add_argument("--k", type=int, required=True, help="number of frames")
    f.add_argument("--mode", choices=MODES, default="auto",
                   help=f"auto: focused for k <= {AUTO_FOCUSED_MAX_K}, hybrid above (default: %(default)s)")
    f.add_argument("--background", type=float, default=0.25, help="hybrid background share (default: %(default)s)")
    f.add_argument("--json", action="store_true", help="print JSON instead of text")
    f.add_argument("--out", metavar="DIR", help="also write the k frames as JPEGs into DIR")
    f.add_argument("--video", metavar="URI", help="source video to take the frames from (default: the "
                   "shard's candidate frames, nearest in time)")
    f.add_argument("--manifest", help="manifest the dataset was built from: its uri is the source video, "
                   "checked as ingest checks it")
    f.add_argument("--config", help="pipeline YAML whose ingest section checks the manifest's uri "
                   "(default: local files under the manifest's folder; URLs with the default caps)")
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
    s = sub.add_parser("select", help="pick k frame timestamps for a query with a trained selector (peakclips-train)")
    s.add_argument("video", help="video file or fsspec URI")
    s.add_argument("--query", required=True)
    s.add_argument("--k", type=int, default=16, help="number of frames (default: %(default)s)")
    s.add_argument("--checkpoint", required=True, help="a stage's final/ or checkpoint-N/ folder")
    s.add_argument("--mode", default="auto", choices=MODES,
                   help=f"clip2frame mode (auto: focused for k <= {AUTO_FOCUSED_MAX_K}, else hybrid)")
    s.set_defaults(fn=cmd_select)
    from peakclips.eval.arguments import add_parsers

    needle, ev = add_parsers(sub)
    needle.set_defaults(fn=cmd_make_needle)
    ev.set_defaults(fn=cmd_eval)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (UserError, OSError) as e:  # OSError: a file named on the command line (one sentence)
        print(f"peakclips: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
