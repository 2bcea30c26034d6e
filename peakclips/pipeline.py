"""The one place that knows the order of the stages (SPEC section 2):

    manifest rows -> ingest -> scenes (+ frames) -> annotate -> clipscore -> highlights -> shard

Scenes and frames (SPEC stages 2-3) are one stage: one decode pass per video (stages/scenes.py).

`stage_specs()` lists the stages in order, with how each runs; `build_dataset()` chains them
as Ray Data operators and `run_in_process()` applies the same list to rows in this process (the
tests' way to stage videos without Ray).

`run()` validates everything it can before any work (manifest, config, annotator endpoint, CLIP
weights), skips shards that are already complete, streams every video of the selected shards
through the stages as one Ray Data dataset (one row per video), and launches `finalize_shard`
for a shard as soon as its last video is staged.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from peakclips import storage
from peakclips.config import ConfigError, RunConfig, public_name, published_config
from peakclips.errors import OutputError
from peakclips.manifest import ManifestRow, plan_manifest
from peakclips.redact import hide_paths
from peakclips.resume import fingerprint, other_config_note, prepare, task_resume_key
from peakclips.schema import RunInfo, ShardStats
from peakclips.shards import is_complete, staging_root

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunSummary:
    shards_built: list[int] = field(default_factory=list)
    shards_skipped: list[int] = field(default_factory=list)
    stats: list[ShardStats] = field(default_factory=list)
    wall_s: float = 0.0


def run_info(cfg: RunConfig, clip_note: str | None, scratch: str) -> RunInfo:
    """Run-level facts every sample and shard records (annotator, prompts, CLIP, config hash)."""
    from peakclips.prompts import load_prompts

    prompts = []
    if cfg.annotator.backend == "openai":
        prompts = [{"id": p.id, "sha256": p.sha256} for p in load_prompts(REPO_ROOT / "prompts").values()]
    info = RunInfo.model_validate({
        "annotator": {"backend": cfg.annotator.backend,
                      "model": cfg.annotator.model if cfg.annotator.backend == "openai" else None,
                      "prompts": prompts},
        "clip_model": {"model": public_name(cfg.clip.model), "pretrained": public_name(cfg.clip.pretrained),
                       "used": clip_note is None,
                       "reduce": cfg.clip.reduce, "alpha": cfg.clip.alpha, "beta": cfg.clip.beta},
        "clip_note": hide_paths(clip_note) if clip_note else None,
        "llm_price": price.model_dump() if (price := cfg.annotator.prices.get(cfg.annotator.model or "")) else None,
        "config_hash": config_hash(cfg),
        "config": published_config(cfg),
        "scratch": scratch,
    })
    return info.model_copy(update={"fingerprint": fingerprint(info)})


def config_hash(cfg: RunConfig) -> str:
    """The hash of everything in the config that shapes a shard's content."""
    references = ""
    if cfg.annotator.backend == "reference":
        from peakclips.reference import load_references

        # The reference annotations shape the content; their folder's path does not.
        references = json.dumps(load_references(cfg.annotator.reference_dir), sort_keys=True)
    return cfg.hash(extra=references)


def preflight(cfg: RunConfig, log=print) -> tuple[RunConfig, str | None]:
    """Check the annotator and CLIP before any work. Returns the config the workers get (with
    the annotator's response format decided, so that no worker probes the server again) and
    why CLIP is off (None = on)."""
    if cfg.annotator.backend == "openai":
        from peakclips.llm import preflight as annotator_preflight

        fmt = annotator_preflight(cfg.annotator, log)
        cfg = cfg.model_copy(update={"annotator": cfg.annotator.model_copy(update={"response_format": fmt})})
    if not cfg.clip.enabled:
        return cfg, "clip.enabled is false"
    from peakclips.clipmodel import clip_status

    note = clip_status(cfg.clip)
    if note and cfg.clip.required:
        raise ConfigError(note)
    return cfg, note


def init_ray(cfg: RunConfig, verbose: bool = False) -> None:
    """Start or join Ray for a run; Ray's own chatter stays off the terminal unless `verbose`
    (peakclips/raylogs.py). Also sets how Ray Data treats a video that never comes back."""
    import ray

    from peakclips.raylogs import quiet_ray_data, ray_logging_level

    if not ray.is_initialized():
        from peakclips.terminal import RAY_RUNTIME_ENV

        # Every worker points its stdin at /dev/null before it runs anything (peakclips/terminal.py:
        # a worker that touches the user's terminal is stopped by SIGTTOU and the run hangs),
        address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
        # and gets the run's storage_options as fsspec's own FSSPEC_<PROTOCOL> variables.
        runtime_env = dict(RAY_RUNTIME_ENV, env_vars=storage.configure(cfg.storage_options))
        common = {"log_to_driver": False, "runtime_env": runtime_env, "logging_level": ray_logging_level(verbose)}
        if address:
            ray.init(address=address, **common)
        else:
            ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, **common)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # peakclips/progress.py draws the run's own
    # A video whose worker died past its retries leaves the dataset instead of failing it; the
    # driver runs it once more on its own and accounts for it (peakclips/faults.py).
    ctx.max_errored_blocks = -1
    ctx.max_consecutive_actor_init_deaths = 3  # an actor lost with its node while it started
    if not verbose:
        ctx.print_on_execution_start = False
        quiet_ray_data()


def video_items(tasks, run: RunInfo) -> list[dict]:
    """The rows the first stage receives: one per video, with its place in the output."""
    items = []
    for t in tasks:
        row = ManifestRow.model_validate_json(t.manifest_json)
        items.append({"index": t.index, "shard_id": t.shard_id, "key": t.key, "video_id": row.video_id,
                      "uri": row.uri, "manifest": t.manifest_json, "error": None, "error_detail": None,
                      "resume_key": task_resume_key(t, run)})
    return items


@dataclass
class StageSpec:
    """One stage of the chain and how it runs: as Ray `tasks` (stateless; the object travels
    with the task) or in an `actors` pool (it loads a model or holds a client)."""

    name: str
    cls: type
    kwargs: dict[str, Any]
    runs_as: Literal["tasks", "actors"]
    num_cpus: float
    num_gpus: float = 0
    max_actors: int = 1
    rows_at_once: int = 1
    """Rows one actor works on at once (an async stage: several videos share its client)."""


def stage_specs(cfg: RunConfig, output: str, run: RunInfo, gpu: bool = False) -> list[StageSpec]:
    """The stages in order (SPEC section 2), with their resources.

    CPU reservations: a decode task takes a whole CPU (it uses more, through the decoder's
    threads); the annotator actors wait on the network, the highlights actor does a few small
    embeddings and the shard actor writes a small record, so they reserve none: any fraction they
    held would leave a 1-CPU node unable to run a decode task at all. The shard stage is an actor,
    not a 1-CPU task, for the same reason at the other end: Ray Data reserves each task stage one
    task's CPUs, so a 1-CPU shard stage kept one of a 2-CPU machine's cores for a job of a
    millisecond and the decode ran one video at a time (docs/benchmarks.md, scale).
    """
    from peakclips.llm import Secret
    from peakclips.prompts import load_prompts
    from peakclips.reference import load_references
    from peakclips.stages.annotate import Annotate
    from peakclips.stages.clipscore import ClipScore
    from peakclips.stages.highlights import Highlights
    from peakclips.stages.ingest import Ingest
    from peakclips.stages.scenes import Scenes
    from peakclips.stages.shard import StageSample

    # Assets are read here, on the driver, and shipped to workers with the stage: workers need
    # no access to the project folder.
    prompts = load_prompts(REPO_ROOT / "prompts") if cfg.annotator.backend == "openai" else {}
    references = load_references(cfg.annotator.reference_dir) if cfg.annotator.backend == "reference" else {}
    clip_on = bool(run.clip_model and run.clip_model.used)
    return [
        StageSpec("ingest", Ingest, {"cfg": cfg.ingest, "scratch": run.scratch}, "tasks", 1),
        # SPEC stages 2-3, scenes and frames, in one decode pass; writes the candidates' MP4
        StageSpec("scenes", Scenes, {"cfg": cfg.scenes, "frames": cfg.frames, "output": output}, "tasks", 1),
        StageSpec("annotate", Annotate, {"cfg": cfg.annotator, "prompts": prompts, "references": references,
                                         "secret": Secret.from_env(cfg.annotator)},
                  "actors", 0, max_actors=cfg.annotator.num_actors, rows_at_once=cfg.annotator.videos_per_actor),
        StageSpec("clipscore", ClipScore, {"cfg": cfg.clip, "use_clip": clip_on}, "actors",
                  cfg.clip.num_cpus if clip_on else 0, num_gpus=1 if clip_on and gpu else 0,
                  max_actors=cfg.clip.num_actors),
        StageSpec("highlights", Highlights, {"cfg": cfg.highlights, "clip": cfg.clip}, "actors", 0),
        StageSpec("shard", StageSample, {"output": output, "run": run}, "actors", 0),
    ]


def build_dataset(items: list[dict], specs: list[StageSpec], cfg: RunConfig):
    """Chain the stages of `specs` as Ray Data operators over `items`, one row (and block) per
    video. Each stage that works on one video at a time has a deadline, and Ray's retries of a
    dead worker are bounded (peakclips/faults.py)."""
    import ray

    from peakclips.faults import GuardedStage, ray_args

    ds = ray.data.from_items(items, override_num_blocks=len(items))
    download_s = cfg.ingest.download_timeout_s
    with warnings.catch_warnings():
        # Ray 2.60 deprecates `ray_remote_args` but offers no other way to bound Ray's retries
        # of a map task (max_retries) or of an actor's calls (max_task_retries).
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        for spec in specs:
            retries = ray_args(spec.runs_as, cfg.faults)
            if spec.runs_as == "tasks":
                ds = ds.map(_apply, fn_kwargs={"stage": spec.cls(**spec.kwargs), "faults": cfg.faults,
                                               "download_timeout_s": download_s}, num_cpus=spec.num_cpus, **retries)
                continue
            pool = ray.data.ActorPoolStrategy(min_size=1, max_size=spec.max_actors,
                                              max_concurrent_calls_per_actor=spec.rows_at_once)
            if asyncio.iscoroutinefunction(spec.cls.__call__):  # several videos at once: no deadline (faults.py)
                ds = ds.map(spec.cls, fn_constructor_kwargs=spec.kwargs, num_cpus=spec.num_cpus,
                            num_gpus=spec.num_gpus, compute=pool, **retries)
            else:
                ds = ds.map(GuardedStage, fn_constructor_kwargs={"stage_cls": spec.cls, "kwargs": spec.kwargs,
                                                                 "faults": cfg.faults, "download_timeout_s": download_s},
                            num_cpus=spec.num_cpus, num_gpus=spec.num_gpus, compute=pool, **retries)
    return ds


def run_in_process(rows: list[dict], specs: list[StageSpec]) -> list[dict]:
    """The rows through every stage of `specs`, in this process, one row at a time (no Ray):
    what `build_dataset` does, for tests and debugging. Async stages share one event loop (their
    clients keep connections bound to it)."""
    stages = [spec.cls(**spec.kwargs) for spec in specs]
    loop = asyncio.new_event_loop()
    try:
        return [run_stages(stages, row, loop) for row in rows]
    finally:
        loop.close()


def run_stages(stages: list, row: dict, loop: asyncio.AbstractEventLoop) -> dict:
    """One row through stage objects in this process; async stages on `loop`."""
    for stage in stages:
        row = loop.run_until_complete(stage(row)) if asyncio.iscoroutinefunction(stage.__call__) else stage(row)
    return row


def _apply(row: dict, stage, faults, download_timeout_s: float) -> dict:
    from peakclips.faults import deadline_s, guarded

    return guarded(stage, row, deadline_s(stage.name, row, faults, download_timeout_s))


def _has_gpu() -> bool:
    import ray

    return ray.available_resources().get("GPU", 0) >= 1


def resolve_paths(cfg: RunConfig) -> RunConfig:
    """Make the config's local paths absolute, relative to where `peakclips run` started.

    Workers may run in another folder (a Ray job's working_dir copy on each node); they must all
    check files against the same roots the driver resolved the manifest against.
    """
    ingest = cfg.ingest.model_copy(update={"allowed_roots": [os.path.abspath(r) for r in cfg.ingest.allowed_roots]})
    annotator = cfg.annotator.model_copy(update={"reference_dir": os.path.abspath(cfg.annotator.reference_dir)})
    return cfg.model_copy(update={"ingest": ingest, "annotator": annotator})


def run(cfg: RunConfig, manifest: str, output: str, shards: str | None = None, force: bool = False,
        log=print, progress_s: float | None = None, verbose: bool = False) -> RunSummary:
    """Build the selected shards of `manifest` into `output`, holding the output's lock throughout
    (peakclips/lock.py: another live run's lock stops this one with one sentence, a crashed run's
    stale lock is taken over). `progress_s`: seconds between plain progress lines when stderr is
    not a terminal (peakclips/progress.py; 0 = none); `verbose`: show Ray's own start-up and
    execution messages too."""
    from peakclips.lock import OutputLock

    storage.configure(cfg.storage_options)
    lock = OutputLock(output, log=log)
    with lock:
        try:
            return build(cfg, manifest, output, shards, force, log, progress_s, verbose)
        except KeyboardInterrupt:
            if lock.lost is None:
                raise
            raise OutputError(lock.lost) from None


def build(cfg: RunConfig, manifest: str, output: str, shards: str | None = None, force: bool = False,
          log=print, progress_s: float | None = None, verbose: bool = False) -> RunSummary:
    started = time.perf_counter()
    cfg = resolve_paths(cfg)
    plan = plan_manifest(manifest, cfg.shard_size, shards)
    selected = plan.selected
    if cfg.annotator.backend == "reference":
        log("PeakClips: offline sample run - hand-written reference annotations stand in for the LLM annotator.")
    summary = RunSummary()
    todo = [s for s in selected if force or not is_complete(output, s)]
    building = set(todo)
    summary.shards_skipped = [s for s in selected if s not in building]
    if summary.shards_skipped and (note := other_config_note(output, summary.shards_skipped, config_hash(cfg))):
        log(note)
    if not todo:
        log(f"all {len(selected)} selected shard(s) already complete in {output}; nothing to do "
            "(use --force to rebuild)")
        return summary
    if cfg.ingest.scratch:  # the output was checked when its lock was taken
        storage.check_writable(cfg.ingest.scratch)
    cfg, clip_note = preflight(cfg, log)
    if clip_note:
        log(f"CLIP off for this run: {clip_note}")
    scratch = cfg.ingest.scratch or storage.join(output, "_scratch")
    info = run_info(cfg, clip_note, scratch)
    if cfg.annotator.backend == "openai" and info.llm_price is None:
        log(f"no price for model '{cfg.annotator.model}' in annotator.prices: cost_usd will read 0")
    tasks = [t for t in plan.tasks if t.shard_id in building]
    del plan
    resumed = prepare(output, todo, tasks, info, force)
    reused = set().union(*resumed.reused.values())
    todo_tasks = [t for t in tasks if t.index not in reused]
    del tasks
    log(f"building {len(todo)} shard(s) into {output}: {len(todo_tasks)} videos to process, {len(reused)} "
        f"staged by an earlier run kept, {resumed.removed} stale staged or temporary file(s) removed; "
        f"{len(summary.shards_skipped)} shard(s) already complete")

    from peakclips.driver import ShardTracker, build_shards
    from peakclips.progress import Progress
    from peakclips.raylogs import filter_stderr

    init_ray(cfg, verbose)
    # Each shard's videos and their resume keys: finalize_shard publishes no staged video of another run.
    tracker = ShardTracker(resumed.keys, {s: set(resumed.reused.get(s, ())) for s in todo})
    with (filter_stderr(enabled=not verbose) as stderr,
          Progress(len(todo_tasks) + len(reused), len(todo), done=len(reused), stream=stderr.real_stderr,
                   interval_s=progress_s, log=log) as progress):
        summary.stats = build_shards(todo_tasks, tracker, cfg, output, info, progress)
    for folder in (staging_root(output), scratch):
        if not storage.listdir(folder):
            storage.remove(folder, recursive=True)
    summary.shards_built = todo
    summary.wall_s = time.perf_counter() - started
    log(format_summary(summary))
    return summary


def format_summary(summary: RunSummary) -> str:
    from peakclips.stats import combine, format_funnel

    return "\n".join([f"done in {summary.wall_s:.1f} s: {len(summary.shards_built)} shard(s) built, "
                      f"{len(summary.shards_skipped)} skipped", *format_funnel(combine(summary.stats))])
