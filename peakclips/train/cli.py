"""`peakclips-train {sft1,sft2,rl} --config pipelines/train/<stage>.yaml [--set key=value ...]`.

Runs one stage of the K-frames curriculum over PeakClips shards; writes `<run.output_dir>/<stage>/`
(see runs.py). Overrides take the same `--set key=value` form as `peakclips`; bare `key=value`
arguments are accepted too (the form this command first had). Usage and input errors (config
errors, unusable models, unusable shards: peakclips.errors.UserError) end with exit code 2 and
one sentence saying what to set, before anything heavy is loaded where possible.
"""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="peakclips-train",
        description="Train the K-frames keyframe selector on PeakClips shards: sft1 (temporal grounding), "
                    "sft2 (key-clip perception), rl (GRPO with the answer-margin reward). Each stage starts "
                    "from the previous stage's final model and resumes from its own latest checkpoint.")
    p.add_argument("stage", choices=["sft1", "sft2", "rl"])
    p.add_argument("--config", help="trainer YAML, e.g. pipelines/train/sft2.yaml (default: built-in defaults)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="set",
                   help="override a config key by its dotted path, value parsed as YAML "
                        "(--set model.tiny=true --set optim.max_steps=10); repeatable; unknown keys are errors")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="the same as --set KEY=VALUE")
    return p


def train(stage: str, config: str | None, overrides: list[str]) -> str:
    """Run one stage; returns the folder of its final model. Raises UserError."""
    from peakclips.train.config import load_train_config
    from peakclips.train.model import check_available

    cfg = load_train_config(config, overrides)
    starts_from_base = cfg.model.init_from == "base" or (cfg.model.init_from == "previous" and stage == "sft1")
    if starts_from_base and not cfg.model.tiny:
        check_available(cfg.model.name_or_path)  # before torch: an offline miss fails in milliseconds

    from peakclips.train.rl import run_rl
    from peakclips.train.sft import run_sft

    return run_rl(cfg) if stage == "rl" else run_sft(cfg, stage)


def main(argv: list[str] | None = None) -> int:
    from peakclips.errors import UserError

    args = build_parser().parse_intermixed_args(argv)  # overrides may follow --config
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        final = train(args.stage, args.config, [*args.overrides, *args.set])
    except UserError as e:
        print(f"peakclips-train: error: {e}", file=sys.stderr)
        return 2
    print(f"peakclips-train {args.stage}: done; final model in {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
