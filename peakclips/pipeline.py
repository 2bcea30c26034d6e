"""The one place that knows the order of the stages (SPEC section 2):

    manifest rows -> ingest -> scenes (+ frames) -> annotate -> clipscore -> highlights -> shard

Scenes and frames (SPEC stages 2-3) are one stage: one decode pass per video (stages/scenes.py).

`run()` validates everything it can before any work (manifest, config, annotator endpoint, CLIP
weights), skips shards that are already complete, streams every video of the selected shards
through the stages as one Ray Data dataset (one row per video), and launches `finalize_shard`
for a shard as soon as its last video is staged.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from peakclips import storage
from peakclips.config import OPERATIONAL_KEYS, ConfigError, RunConfig
from peakclips.manifest import num_shards, parse_shards, plan_tasks, read_manifest
from peakclips.resume import fingerprint, prepare, resume_key
from peakclips.stages.shard import shard_name

REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class RunSummary:
    shards_built: list[int] = field(default_factory=list)
    shards_skipped: list[int] = field(default_factory=list)
    stats: list[dict] = field(default_factory=list)
    wall_s: float = 0.0


def shard_complete(output: str, shard_id: int) -> bool:
    return storage.exists(storage.join(output, shard_name(shard_id) + "_stats.json"))


def run_info(cfg: RunConfig, clip_note: str | None, scratch: str) -> dict:
    """Run-level facts every sample and shard records (annotator, prompts, CLIP, config hash)."""
    from peakclips.prompts import load_prompts

    prompts, references = [], ""
    if cfg.annotator.backend == "openai":
        prompts = [{"id": p.id, "sha256": p.sha256} for p in load_prompts(REPO_ROOT / "prompts").values()]
    else:
        from peakclips.reference import load_references

        # The reference annotations shape the content; their folder's path does not.
        references = json.dumps(load_references(cfg.annotator.reference_dir), sort_keys=True)
    info = {
        "annotator": {"backend": cfg.annotator.backend,
                      "model": cfg.annotator.model if cfg.annotator.backend == "openai" else None,
                      "prompts": prompts},
        "clip_model": {"model": cfg.clip.model, "pretrained": cfg.clip.pretrained, "used": clip_note is None,
                       "reduce": cfg.clip.reduce, "alpha": cfg.clip.alpha, "beta": cfg.clip.beta},
        "clip_note": clip_note,
        "llm_price": price.model_dump() if (price := cfg.annotator.prices.get(cfg.annotator.model or "")) else None,
        "config_hash": cfg.hash(extra=references),
        "config": cfg.model_dump(mode="json", exclude=OPERATIONAL_KEYS),
        "scratch": scratch,
    }
    info["fingerprint"] = fingerprint(info)
    return info


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
    from peakclips.stages.clipscore import clip_status

    note = clip_status(cfg.clip)
    if note and cfg.clip.required:
        raise ConfigError(note)
    return cfg, note


def init_ray(cfg: RunConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(num_cpus=cfg.ray.num_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False


def video_items(tasks, run: dict) -> list[dict]:
    """The rows the first stage receives: one per video, with its place in the output."""
    return [{"index": t.index, "shard_id": t.shard_id, "key": t.key, "video_id": t.row.video_id,
             "uri": t.row.uri, "manifest": t.row.model_dump_json(), "error": None, "error_detail": None,
             "resume_key": resume_key(run["fingerprint"], t.index, t.key, t.row.model_dump_json())}
            for t in tasks]


def build_dataset(tasks, cfg: RunConfig, output: str, run: dict):
    """Chain the stages. Each stage is a callable class in an autoscaling actor pool."""
    import ray

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
    items = video_items(tasks, run)
    clip_on = run["clip_model"]["used"]
    gpu = clip_on and _has_gpu()

    # Stateless stages run as Ray tasks (the stage object travels with the task); stages that
    # load a model or hold a client run in actor pools. CPU reservations: a decode task takes a
    # whole CPU (it uses more, through the decoder's threads); the annotator actors wait on the
    # network and the highlights actor does a few small embeddings, so they reserve none: any
    # fraction they held would leave a 1-CPU node unable to run a decode task at all.
    def tasks_of(stage, num_cpus):
        return {"fn": _apply, "fn_kwargs": {"stage": stage}, "num_cpus": num_cpus}

    def actors_of(cls, kwargs, num_cpus, max_size, num_gpus=0, rows_at_once=1):
        # rows_at_once > 1: an async stage works on that many rows per actor at once
        return {"fn": cls, "fn_constructor_kwargs": kwargs, "num_cpus": num_cpus, "num_gpus": num_gpus,
                "compute": ray.data.ActorPoolStrategy(min_size=1, max_size=max_size,
                                                      max_concurrent_calls_per_actor=rows_at_once)}

    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map(**tasks_of(Ingest(cfg.ingest, run["scratch"]), 1))
    ds = ds.map(**tasks_of(Scenes(cfg.scenes, cfg.frames), 1))  # scenes + frames, one decode pass
    ds = ds.map(**actors_of(Annotate, {"cfg": cfg.annotator, "prompts": prompts, "references": references,
                                       "secret": Secret.from_env(cfg.annotator)},
                            0, cfg.annotator.num_actors, rows_at_once=cfg.annotator.videos_per_actor))
    ds = ds.map(**actors_of(ClipScore, {"cfg": cfg.clip, "use_clip": clip_on},
                            cfg.clip.num_cpus if clip_on else 0, cfg.clip.num_actors, 1 if gpu else 0))
    ds = ds.map(**actors_of(Highlights, {"cfg": cfg.highlights, "clip": cfg.clip}, 0, 1))
    ds = ds.map(**tasks_of(StageSample(output, run), 1))
    return ds


def _apply(row: dict, stage) -> dict:
    return stage(row)


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
        log=print) -> RunSummary:
    started = time.perf_counter()
    cfg = resolve_paths(cfg)
    rows = read_manifest(manifest)
    tasks = plan_tasks(rows, cfg.shard_size)
    selected = parse_shards(shards, num_shards(rows, cfg.shard_size))
    if cfg.annotator.backend == "reference":
        log("PeakClips: offline sample run - hand-written reference annotations stand in for the LLM annotator.")
    summary = RunSummary()
    todo = [s for s in selected if force or not shard_complete(output, s)]
    summary.shards_skipped = [s for s in selected if s not in todo]
    if not todo:
        log(f"all {len(selected)} selected shard(s) already complete in {output}; nothing to do "
            "(use --force to rebuild)")
        return summary
    cfg, clip_note = preflight(cfg, log)
    if clip_note:
        log(f"CLIP off for this run: {clip_note}")
    scratch = cfg.ingest.scratch or storage.join(output, "_scratch")
    info = run_info(cfg, clip_note, scratch)
    if cfg.annotator.backend == "openai" and info["llm_price"] is None:
        log(f"no price for model '{cfg.annotator.model}' in annotator.prices: cost_usd will read 0")
    plan = prepare(output, todo, [t for t in tasks if t.shard_id in set(todo)], info, force)
    reused = set().union(*plan.reused.values())
    todo_tasks = [t for t in tasks if t.shard_id in set(todo) and t.index not in reused]
    expected = {s: [t.index for t in tasks if t.shard_id == s] for s in todo}
    log(f"building {len(todo)} shard(s) into {output}: {len(todo_tasks)} videos to process, {len(reused)} "
        f"staged by an earlier run kept, {plan.removed} stale staged or temporary file(s) removed; "
        f"{len(summary.shards_skipped)} shard(s) already complete")

    import ray

    from peakclips.stages.shard import finalize_shard

    init_ray(cfg)
    finalize = ray.remote(num_cpus=0.5, max_retries=2)(finalize_shard)
    # A set of staged indices per shard, not a count: a retried task that reports a video twice
    # must not finalize a shard early.
    staged = {s: set(plan.reused.get(s, ())) for s in todo}
    pending = [finalize.remote(output, s, expected[s], info) for s in todo if len(staged[s]) == len(expected[s])]
    if todo_tasks:
        for row in build_dataset(todo_tasks, cfg, output, info).iter_rows():
            shard, done = row["shard_id"], staged[row["shard_id"]]
            if row["index"] in done:
                continue
            done.add(row["index"])
            if len(done) == len(expected[shard]):
                pending.append(finalize.remote(output, shard, expected[shard], info))
    summary.stats = sorted(ray.get(pending), key=lambda s: s["shard"])
    for folder in (storage.join(output, "_staging"), scratch):
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


def summary_json(summary: RunSummary) -> str:
    return json.dumps({"built": summary.shards_built, "skipped": summary.shards_skipped,
                       "stats": summary.stats, "wall_s": summary.wall_s}, indent=2)
