"""`peakclips-train {sft1,sft2,rl} --config pipelines/train/<stage>.yaml [key=value ...]`.

Runs one stage of the K-frames curriculum over PeakClips shards; writes `<run.output_dir>/<stage>/`
(see runs.py). Config errors, unusable models and unusable shards end with exit code 2 and one
sentence saying what to set, before anything heavy is loaded where possible.
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
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override a config key by its dotted path, value parsed as YAML "
                        "(model.tiny=true optim.max_steps=10); unknown keys are errors")
    return p


def _fail(error: Exception) -> int:
    print(f"peakclips-train: error: {error}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    from peakclips.config import ConfigError
    from peakclips.train.config import load_train_config
    from peakclips.train.model import ModelUnavailable, check_available

    args = build_parser().parse_intermixed_args(argv)  # overrides may follow --config
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_train_config(args.config, args.overrides)
        starts_from_base = cfg.model.init_from == "base" or (cfg.model.init_from == "previous" and args.stage == "sft1")
        if starts_from_base and not cfg.model.tiny:
            check_available(cfg.model.name_or_path)  # before torch: an offline miss fails in milliseconds
    except (ConfigError, ModelUnavailable) as e:
        return _fail(e)

    from peakclips.train.data import DataError
    from peakclips.train.rl import run_rl
    from peakclips.train.runs import StageError
    from peakclips.train.sft import run_sft

    try:
        final = run_rl(cfg) if args.stage == "rl" else run_sft(cfg, args.stage)
    except (ConfigError, ModelUnavailable, DataError, StageError) as e:
        return _fail(e)
    print(f"peakclips-train {args.stage}: done; final model in {final}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
