"""`peakclips eval BENCHMARK --format F --selectors uniform,bolt,... --k 8,16,32 --output DIR`.

Every (selector, k, item) runs once. Its timestamps go to DIR/selections.jsonl the moment they
exist, and every VLM answer to DIR/answers.jsonl, so a killed run loses at most the item in hand
and a re-run does only what is missing: a new selector, budget, item (`--limit`) or VLM model
costs just that. DIR/eval.json records what the selections depend on: the annotation files'
hash and format, and each selector's own settings (CLIP model and candidates, the pipeline
config's hash, the checkpoint); a re-run with other settings stops with one sentence rather than
mix results (`--force` starts DIR over).

The order: read the items (`--limit N` keeps the first N), probe their videos (a video that does
not open is an error of its items), let each selector prepare once for its missing items (the
data engine runs the pipeline there), then item by item: every selector and budget selects, and
with a VLM the item's frames are decoded once and every selection is answered. The report
(report.py) is rebuilt from DIR at the end.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from peakclips.config import AnnotatorConfig, ClipConfig
from peakclips.errors import VideoError
from peakclips.eval import EvalError
from peakclips.eval.benchmarks import Item, read_benchmark
from peakclips.eval.selectors import Context, Selection, Selector, build


@dataclass
class EvalSettings:
    benchmark: str
    format: str
    selectors: list[str]
    ks: list[int]
    output: str
    videos: str | None = None
    limit: int | None = None
    clip: ClipConfig = field(default_factory=ClipConfig)
    candidates: int = 256
    pipeline_config: str | None = None
    pipeline_overrides: list[str] = field(default_factory=list)
    vlm: AnnotatorConfig | None = None
    image_size: int = 448
    force: bool = False


class Store:
    """A JSON-lines file of results, keyed; appended one line at a time (flushed), read back
    skipping a torn last line (a run killed mid-write)."""

    def __init__(self, path: Path, key):
        self.path, self.key = path, key
        self.rows: dict = {}
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                self.rows[key(row)] = row

    def add(self, row: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        self.rows[self.key(row)] = row


def files_sha256(path: Path) -> str:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def check_settings(output: Path, benchmark: dict, selectors: dict[str, dict], force: bool) -> dict:
    """Refuse results made on another benchmark, or by a selector with other settings. Returns
    what OUTPUT/eval.json is to hold with the new selectors' settings; `evaluate` writes it once
    the models and the VLM are known to load, so that a run that could not start records nothing."""
    path = output / "eval.json"
    if force:
        for name in ("eval.json", "selections.jsonl", "answers.jsonl"):
            (output / name).unlink(missing_ok=True)
    before = json.loads(path.read_text()) if path.exists() else {**benchmark, "selectors": {}}
    changes = [(k, before.get(k), v) for k, v in benchmark.items() if before.get(k) != v]
    changes += [(f"{name} {k}", before["selectors"][name].get(k), v) for name, settings in selectors.items()
                if name in before["selectors"] for k, v in settings.items() if before["selectors"][name].get(k) != v]
    if changes:
        what, then, now = changes[0]
        raise EvalError(f"{output} holds results made with other settings ({what}: {then!r} then, {now!r} now); "
                        "use another --output, the same settings, or --force to start over")
    return {**before, "selectors": {**before["selectors"], **selectors}}


def record_settings(output: Path, recorded: dict) -> None:
    (output / "eval.json").write_text(json.dumps(recorded, indent=1))


def check_selection(sel: Selector, item: Item, k: int, duration: float, s: Selection) -> None:
    t = s.timestamps_s
    if len(t) != k or any(b <= a for a, b in zip(t, t[1:])) or not (t and 0 <= t[0] and t[-1] < duration):
        raise RuntimeError(f"selector {sel.name} gave {item.id} at k={k} not {k} sorted distinct times in "
                           f"[0, {duration}): {t}")


def evaluate(s: EvalSettings, log=print) -> dict:
    """Run what is missing, then write the report; returns the results (report.build_results)."""
    from peakclips.eval import report

    output = Path(s.output)
    output.mkdir(parents=True, exist_ok=True)
    items, ctx, selectors = check_request(s, output)
    recorded = check_settings(output, {"benchmark_sha256": files_sha256(Path(s.benchmark)), "format": s.format},
                              {sel.name: sel.settings() for sel in selectors}, s.force)
    answerer = None
    if s.vlm is not None:
        from peakclips.eval.vlm import Answerer
        from peakclips.llm import preflight

        # Answers are letters, not JSON: the VLM is asked in the prompt format, so the preflight
        # sends no format check; it says in one sentence, in seconds, when the endpoint is not there.
        vlm = s.vlm.model_copy(update={"response_format": "prompt"})
        preflight(vlm, who="VLM", url_key="--vlm-base-url", model_key="--vlm-model")
        answerer = Answerer(vlm, s.image_size)
    selections = Store(output / "selections.jsonl", lambda r: (r["selector"], r["k"], r["id"]))
    answers = Store(output / "answers.jsonl", lambda r: (r["vlm"], r["selector"], r["k"], r["id"]))
    durations, errors = probe_videos(items, selectors, s.ks)
    ok = [i for i in items if i.id in durations]
    log(f"{len(items)} questions ({len(items) - len(ok)} with a video that does not open), "
        f"{len(selectors)} selectors x {len(s.ks)} budgets; {len(selections.rows)} selections done before")

    todo = {sel.name: [i for i in ok if any((sel.name, k, i.id) not in selections.rows for k in s.ks)]
            for sel in selectors}
    if any(sel.uses_clip and todo[sel.name] for sel in selectors):
        load_clip_or_say(ctx, selectors)
    for sel in selectors:
        if todo[sel.name]:
            sel.prepare(todo[sel.name], durations)
    record_settings(output, recorded)
    started, shown = time.monotonic(), 0.0
    for n, item in enumerate(ok, start=1):
        select_item(item, durations[item.id], selectors, s.ks, selections, errors)
        if answerer is not None:
            answer_item(answerer, item, durations[item.id], selectors, s.ks, selections, answers, errors)
        if time.monotonic() - shown > 10 or n == len(ok):
            shown = time.monotonic()
            log(f"  {n}/{len(ok)} questions, {shown - started:.0f} s")

    results = report.build_results(
        {"benchmark": str(s.benchmark), "format": s.format, "num_items": len(items),
         "vlm": {"model": s.vlm.model} if s.vlm else None, "settings": recorded},
        [{**i.as_dict(), "duration_s": durations.get(i.id)} for i in items],
        gather(selectors, s.ks, items, selections, answers, errors, s.vlm.model if s.vlm else None))
    paths = report.write(output, results)
    log(report.table(results))
    log(f"wrote {', '.join(str(p) for p in paths.values())}")
    return results


def check_request(s: EvalSettings, output: Path) -> tuple[list[Item], Context, list[Selector]]:
    """The items, what the selectors share, and the selectors; or EvalError saying what to change."""
    if s.limit is not None and s.limit < 1:
        raise EvalError(f"--limit needs a positive number of questions, got {s.limit}")
    if not s.ks or any(k < 1 for k in s.ks):
        raise EvalError(f"--k needs positive budgets, got {s.ks}")
    items = read_benchmark(s.benchmark, s.format, s.videos)[: s.limit]
    ctx = Context(output, s.clip, s.candidates, s.pipeline_config, s.pipeline_overrides)
    selectors = [build(spec, ctx) for spec in s.selectors]
    if not selectors or len({sel.name for sel in selectors}) < len(selectors):
        raise EvalError(f"--selectors needs distinct selectors, got {s.selectors}")
    if any(sel.uses_clip for sel in selectors) and max(s.ks) > s.candidates:
        raise EvalError(f"--k {max(s.ks)} is more than the {s.candidates} CLIP candidate frames (--candidates)")
    return items, ctx, selectors


def probe_videos(items: list[Item], selectors: list[Selector], ks: list[int]) -> tuple[dict, dict]:
    """Each item's video duration; a video that does not open is an error of every run of its items."""
    from peakclips.video import probe

    durations, errors, seen = {}, {}, {}
    for item in items:
        try:
            if item.video not in seen:
                seen[item.video] = probe(item.video).duration_s
            durations[item.id] = seen[item.video]
        except VideoError as e:
            errors.update({(sel.name, k, item.id): f"{e.code}: {e.detail}" for sel in selectors for k in ks})
    return durations, errors


def select_item(item: Item, duration: float, selectors: list[Selector], ks: list[int], selections: Store,
                errors: dict) -> None:
    """Every selector and budget the item still lacks; each selection stored as it is made."""
    for sel in selectors:
        for k in ks:
            key = (sel.name, k, item.id)
            if key in selections.rows:
                continue
            try:
                chosen = sel.select(item, duration, k)
            except VideoError as e:
                errors[key] = f"{e.code}: {e.detail}"
                continue
            check_selection(sel, item, k, duration, chosen)
            selections.add({"selector": sel.name, "k": k, "id": item.id, "timestamps_s": chosen.timestamps_s,
                            **({"note": chosen.note} if chosen.note else {})})


def load_clip_or_say(ctx: Context, selectors: list[Selector]) -> None:
    """Load CLIP before any work, or say in one sentence why it does not load."""
    from peakclips.clipmodel import failure_text

    names = [sel.name for sel in selectors if sel.uses_clip]
    try:
        ctx.similarity.model()
    except Exception as e:  # noqa: BLE001 - open_clip and the hub raise many types; we say which
        raise EvalError(f"the CLIP selectors ({', '.join(names)}) need the open_clip model {ctx.clip.model} ({ctx.clip.pretrained}), "
                        f"which could not be loaded ({type(e).__name__}: {failure_text(e)}); pass --clip-pretrained with "
                        "a local checkpoint or a cached tag (--clip-pretrained none: random weights, a smoke test only)"
                        ) from None


def answer_item(answerer, item: Item, duration: float, selectors: list[Selector], ks: list[int],
                selections: Store, answers: Store, errors: dict) -> None:
    model = answerer.cfg.model
    todo = [(sel.name, k) for sel in selectors for k in ks
            if (sel.name, k, item.id) in selections.rows and (model, sel.name, k, item.id) not in answers.rows]
    if not todo:
        return
    times = [selections.rows[(name, k, item.id)]["timestamps_s"] for name, k in todo]
    try:
        replies = answerer.answer(item, duration, times)
    except VideoError as e:  # the video decoded for probing, not for the frames
        replies = [e] * len(todo)
    for (name, k), t, r in zip(todo, times, replies):
        if isinstance(r, VideoError):
            errors[(name, k, item.id)] = f"{r.code}: {r.detail}"
        elif isinstance(r, Exception):
            raise r
        else:
            answers.add({"vlm": model, "selector": name, "k": k, "id": item.id, "timestamps_s": t, **r})


def gather(selectors, ks, items, selections: Store, answers: Store, errors: dict, model: str | None) -> dict:
    """Per (selector, k), one entry per item: its selection, answer and error, as results.json holds them."""
    runs = {}
    for sel in selectors:
        for k in ks:
            entries = []
            for item in items:
                key = (sel.name, k, item.id)
                entry = {"id": item.id}
                if key in selections.rows:
                    row = selections.rows[key]
                    entry["timestamps_s"] = row["timestamps_s"]
                    if row.get("note"):
                        entry["note"] = row["note"]
                answer = answers.rows.get((model, *key)) if model else None
                if answer is not None:
                    entry.update(reply=answer["reply"], prediction=answer["prediction"], correct=answer["correct"])
                if key in errors:
                    entry["error"] = errors[key]
                entries.append(entry)
            runs[(sel.name, k)] = entries
    return runs
