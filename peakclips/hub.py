"""`peakclips upload DIR --repo-id ORG/NAME [--private] [--dry-run]`: publish a built dataset
on the Hugging Face Hub with a dataset card.

Hub layout:
    README.md                                   the dataset card, generated from the stats
    data/peakclips-NNNNNN.tar                   WebDataset samples: the card's `configs` point
                                                `load_dataset` and the dataset viewer here
    metadata/peakclips-NNNNNN.parquet           the index, one row per (video, query)
    metadata/peakclips-NNNNNN_stats.json        per-shard counts and provenance
The layout is made in DIR/_hub from hard links to the complete shards (no copies; for a dataset
on object storage, in ./NAME-hub from downloaded copies), then uploaded with huggingface_hub's resumable multi-commit folder upload: re-running an
interrupted upload sends only what is missing. The token comes from HF_TOKEN or the
`hf auth login` cache, read by huggingface_hub itself; peakclips never reads or prints it.
`--dry-run` writes the card to DIR/README.md, lays out DIR/_hub and prints the plan, with no
network at all. Reads finished shards only.
"""

from __future__ import annotations

import html
import os
import re
import shutil
from collections import Counter
from pathlib import Path

from peakclips import __version__, storage
from peakclips.dataset import iter_samples, read_stats
from peakclips.errors import UserError
from peakclips.schema import SCHEMA_VERSION
from peakclips.shards import complete_shards, index_path, stats_path, tar_path
from peakclips.stats import dataset_stats

TEMPLATE = Path(__file__).parent / "templates" / "dataset_card.md.jinja"
# One config: `datasets` picks a single loader per repository (from the first config's files),
# so the Parquet index cannot be a second config beside the tars; it loads by path instead.
CONFIGS = [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.tar"}]}]
# License ids the Hub knows, for the licenses video manifests usually carry; others -> "other".
HUB_LICENSES = {
    "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0", "cc-by-sa-4.0",
    "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
    "cc-by-nc-nd-3.0", "cc-by-nc-nd-4.0", "apache-2.0", "mit", "odc-by", "pddl", "odbl", "unknown",
}
SIZES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
         (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


class HubError(UserError):
    """The dataset cannot be published as asked; the message says why."""


def hub_license(text: str | None) -> str:
    """A manifest's license string as a Hub license id.

    >>> hub_license("CC BY 4.0"), hub_license("CC-BY-NC-SA-4.0"), hub_license(None), hub_license("custom")
    ('cc-by-4.0', 'cc-by-nc-sa-4.0', 'unknown', 'other')
    """
    if not text:
        return "unknown"
    lid = re.sub(r"[\s_]+", "-", text.strip().lower())
    return lid if lid in HUB_LICENSES else "other"


MD_SPECIAL = re.compile(r"[\\`*_{}\[\]()#+!|~]")  # what Markdown reads as syntax inside a cell


def md_cell(text: str, limit: int = 200) -> str:
    r"""Manifest text as one cell of a Markdown table: one line, at most `limit` characters, no
    table syntax, markup or HTML (a `|` would add columns, a newline rows, `<script>`, links or
    images would render).

    >>> print(md_cell("a|b\n*c* <img src=x> [x](y)"))
    a\|b \*c\* &lt;img src=x&gt; \[x\]\(y\)
    """
    text = html.escape(" ".join(text.split())[:limit], quote=False)
    return MD_SPECIAL.sub(r"\\\g<0>", text)


def size_category(n: int) -> str:
    return next((label for bound, label in SIZES if n < bound), "n>1B")


def build_card(output: str, repo_id: str):
    """The dataset card (a huggingface_hub DatasetCard), re-parsed by the card parser."""
    from huggingface_hub import DatasetCard, DatasetCardData

    stats = dataset_stats(output)
    if not stats["shards"]:
        raise HubError(f"{output} has no complete shard to publish")
    sources, licenses, num_candidates = Counter(), Counter(), 0
    for _, sample, _ in iter_samples(output):
        sources[(sample["source"] or "unknown", sample["license"] or "unknown")] += 1
        licenses[hub_license(sample["license"])] += 1
        num_candidates = max(num_candidates, len(sample["frame_times_s"]))
    ids = sorted(licenses)
    extra = {}
    if "other" in ids:
        extra = {"license_name": "mixed", "license_details": "see the Sources section: each sample "
                 "carries its video's license"}
    data = DatasetCardData(
        license=ids[0] if len(ids) == 1 else ids, language=["en"], pretty_name=pretty_name(repo_id),
        task_categories=["video-text-to-text"], size_categories=[size_category(stats["videos"].get("ok", 0))],
        annotations_creators=["machine-generated"], language_creators=["machine-generated"],
        multilinguality=["monolingual"], source_datasets=["original"],
        tags=["video", "highlight-detection", "moment-retrieval", "keyframe-selection", "webdataset", "peakclips"],
        configs=CONFIGS, **extra,
    )
    first = read_stats(output, complete_shards(output)[0])
    drops = sorted({**stats["video_drop_reasons"],
                    **{f"query:{k}": n for k, n in stats["query_drop_reasons"].items()}}.items())
    top = [{"source": md_cell(s), "license": md_cell(lic), "videos": n} for (s, lic), n in sources.most_common(30)]
    card = DatasetCard.from_template(
        data, template_path=str(TEMPLATE), pretty_name=pretty_name(repo_id), repo_id=repo_id, s=stats,
        sources=top, more_sources=max(0, len(sources) - len(top)), drops=drops, config=first.config,
        annotator=stats["annotator"], clip_model=stats["clip_model"], num_candidates=num_candidates,
        schema_version=SCHEMA_VERSION, version=__version__,
    )
    parsed = DatasetCard(str(card))  # the Hub's parser: YAML header + body
    missing = {"license", "task_categories", "size_categories", "annotations_creators", "configs"} - set(
        parsed.data.to_dict())
    if missing:
        raise RuntimeError(f"generated card lacks {sorted(missing)}")
    return parsed


def pretty_name(repo_id: str) -> str:
    return f"PeakClips: {repo_id.split('/')[-1]}"


def hub_dir(output: str) -> Path:
    """Where the Hub layout is made: DIR/_hub for a dataset in a local folder (hard links); for one
    on object storage, `./<dataset folder's name>-hub` on this machine (the files are downloaded
    there, since huggingface_hub uploads local files; a re-run downloads only what changed)."""
    if storage.protocol(output) in ("", "file"):
        return Path(output.removeprefix("file://")) / "_hub"
    return Path(f"{output.rstrip('/').rsplit('/', 1)[-1]}-hub")


def lay_out(output: str, card) -> tuple[Path, list[tuple[str, int]]]:
    """The layout folder (`hub_dir`) as the repo will look; returns it and [(path in repo, bytes)]."""
    root = hub_dir(output)
    local = storage.protocol(output) in ("", "file")
    src = output.removeprefix("file://")
    wanted = {"README.md": None}
    for name in complete_shards(src):
        for folder, path in (("data", tar_path(src, name)), ("metadata", index_path(src, name)),
                             ("metadata", stats_path(src, name))):
            wanted[f"{folder}/{path.rsplit('/', 1)[-1]}"] = path
    for sub in ("data", "metadata"):  # shards removed or rebuilt since the last upload
        for old in (root / sub).glob("*") if (root / sub).exists() else []:
            if f"{sub}/{old.name}" not in wanted:
                old.unlink()
    for rel, path in wanted.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if path is None:
            dest.write_text(str(card))
        elif local and not (dest.exists() and os.path.samefile(dest, path)):
            tmp = dest.with_name(dest.name + ".tmp-link")
            tmp.unlink(missing_ok=True)
            try:
                os.link(path, tmp)
            except OSError:  # a file system without hard links
                shutil.copy2(path, tmp)
            os.replace(tmp, dest)
        elif not local:
            fs, remote = storage.fs_and_path(path)
            if not (dest.exists() and dest.stat().st_size == fs.size(remote)):
                tmp = dest.with_name(dest.name + ".tmp-download")
                fs.get_file(remote, str(tmp))
                os.replace(tmp, dest)
    return root, [(rel, (root / rel).stat().st_size) for rel in wanted]


def plan_text(repo_id: str, private: bool, root: Path, files: list[tuple[str, int]], dry_run: bool) -> str:
    from huggingface_hub import get_token

    shards = sum(rel.startswith("data/") for rel, _ in files)
    size = sum(n for _, n in files)
    token = ("HF_TOKEN is set" if os.environ.get("HF_TOKEN") else
             "found in the huggingface login" if get_token() else "none found: set HF_TOKEN or run `hf auth login`")
    return "\n".join([
        f"upload plan{' (dry run: nothing sent)' if dry_run else ''}",
        f"  repo:   {repo_id} (dataset, {'private' if private else 'public'})",
        f"  from:   {root} (the complete shards: hard links, or copies of a dataset on object storage)",
        f"  files:  {shards} shard(s) as data/*.tar + metadata/*.parquet + metadata/*_stats.json, and README.md: "
        f"{len(files)} files, {size / 1e6:.1f} MB",
        "  how:    huggingface_hub resumable folder upload (batched commits; re-run to resume)",
        f"  token:  {token}",
    ])


def upload(output: str, repo_id: str, private: bool = False, dry_run: bool = False, log=print) -> Path:
    """Lay out and (unless dry_run) upload; returns the layout folder."""
    if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
        raise HubError(f"--repo-id must be ORG/NAME, got '{repo_id}'")
    card = build_card(output, repo_id)
    root, files = lay_out(output, card)
    if dry_run:
        storage.write_atomic(storage.join(output, "README.md"), str(card).encode())
        log(plan_text(repo_id, private, root, files, dry_run))
        log(f"  card:   {storage.join(output, 'README.md')} (parsed by huggingface_hub; license "
            f"{card.data.license}, size {card.data.size_categories[0]})")
        return root
    from huggingface_hub import HfApi

    log(plan_text(repo_id, private, root, files, dry_run))
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    # huggingface_hub 1.x has a separate resumable upload_large_folder; 2.x made upload_folder
    # itself streamed, multi-commit and resumable.
    if hasattr(api, "upload_large_folder"):
        api.upload_large_folder(repo_id=repo_id, folder_path=root, repo_type="dataset", private=private)
    else:
        api.upload_folder(repo_id=repo_id, folder_path=root, repo_type="dataset",
                          commit_message=f"PeakClips {__version__}: {len(files)} files")
    log(f"uploaded to https://huggingface.co/datasets/{repo_id}")
    return root
