"""`peakclips upload`: the dataset card, the Hub layout read back by `datasets`, the dry run
(no network), the token never shown, and the upload calls."""

import json
import shutil

import pyarrow.parquet as pq
import pytest

from peakclips.cli import main
from peakclips.hub import hub_license, size_category, upload

pytestmark = pytest.mark.slow  # they read the session's sample run

SECRET = "hf_peakclipsTestTokenThatMustNeverBePrinted"


@pytest.fixture(scope="module")
def dataset(sample_output, tmp_path_factory):
    """A copy of the sample output, so the card and layout written here stay out of the fixture."""
    out, _ = sample_output
    copy = tmp_path_factory.mktemp("hub") / "sample"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("_hub", "report", "README.md"))
    return copy


def test_dry_run_writes_a_card_the_hub_parser_reads_and_sends_nothing(dataset, capsys, monkeypatch):
    import huggingface_hub
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard

    monkeypatch.setenv("HF_TOKEN", SECRET)

    def no_network(*args, **kwargs):
        raise AssertionError("the dry run touched the network")

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_network)
    assert main(["upload", str(dataset), "--repo-id", "peakclips/sample", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "dry run: nothing sent" in printed and "HF_TOKEN is set" in printed and SECRET not in printed

    text = (dataset / "README.md").read_text()
    assert SECRET not in text
    card = DatasetCard(text)  # huggingface_hub's card parser
    meta = card.data.to_dict()
    assert meta["license"] == "cc-by-3.0"  # every sample video of the sample manifest is CC-BY-3.0
    assert meta["task_categories"] == ["video-text-to-text"]
    assert meta["size_categories"] == ["n<1K"]
    assert meta["annotations_creators"] == ["machine-generated"]
    configs = MetadataConfigs.from_dataset_card_data(card.data)  # how `datasets` reads them
    assert dict(configs) == {"default": {"data_files": [{"split": "train", "path": "data/*.tar"}]}}
    for section in ("## Sources", "## Construction", "### Annotator and prompt versions",
                    "### Filters and funnel", "## Limitations"):
        assert section in card.text, section
    assert "| videos in | 6 |" in card.text and "| videos kept | 4 |" in card.text
    assert "`too_few_scenes` 2" in card.text and "reference annotations" in card.text
    assert "`combined` detector" in card.text  # the content config travels in the stats


def test_datasets_reads_the_upload_layout_from_a_local_folder(dataset, tmp_path):
    import datasets

    root = upload(str(dataset), "peakclips/sample", dry_run=True, log=lambda *_: None)
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == [
        "README.md", "data/peakclips-000000.tar", "metadata/peakclips-000000.parquet",
        "metadata/peakclips-000000_stats.json"]
    index = pq.read_table(dataset / "peakclips-000000.parquet").to_pylist()
    kept = list(dict.fromkeys(r["key"] for r in index if r["status"] == "ok"))

    # A fresh cache: `datasets` otherwise may serve an earlier session's build of a same-named path.
    samples = datasets.load_dataset(str(root), split="train", cache_dir=str(tmp_path / "hf"))  # the card's config
    assert [row["json"]["key"] for row in samples] == kept
    assert samples[0]["mp4"].get_frames_in_range(0, 2).data.shape[0] == 2  # decoded by torchcodec
    table = datasets.load_dataset("parquet", data_files=str(root / "metadata/*.parquet"), split="train",
                                  cache_dir=str(tmp_path / "hf"))
    assert table.num_rows == len(index) and table.column_names == list(index[0])


def test_layout_follows_rebuilt_and_removed_shards(dataset, tmp_path):
    copy = tmp_path / "d"
    shutil.copytree(dataset, copy, ignore=shutil.ignore_patterns("_hub", "README.md"))
    root = upload(str(copy), "o/n", dry_run=True, log=lambda *_: None)
    (copy / "peakclips-000000.tar").unlink()  # a --force rebuild replaces the file (a new inode)
    shutil.copy(dataset / "peakclips-000000.tar", copy / "peakclips-000000.tar")
    upload(str(copy), "o/n", dry_run=True, log=lambda *_: None)
    assert (root / "data/peakclips-000000.tar").samefile(copy / "peakclips-000000.tar")


def test_upload_creates_the_dataset_repo_and_uploads_the_layout(dataset, monkeypatch, capsys):
    import huggingface_hub

    calls = []
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, *a, **k: calls.append(("create", a, k)))
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", lambda self, **k: calls.append(("upload", k)))
    monkeypatch.delattr(huggingface_hub.HfApi, "upload_large_folder", raising=False)
    assert main(["upload", str(dataset), "--repo-id", "org/peakclips", "--private"]) == 0
    assert calls[0] == ("create", ("org/peakclips",), {"repo_type": "dataset", "private": True, "exist_ok": True})
    kind, kwargs = calls[1]
    assert kind == "upload" and kwargs["repo_type"] == "dataset" and kwargs["folder_path"] == dataset / "_hub"
    assert "token" not in kwargs  # huggingface_hub finds it itself
    assert SECRET not in capsys.readouterr().out


def test_bad_repo_id_and_empty_folder_are_clear_errors(tmp_path, capsys):
    assert main(["upload", str(tmp_path), "--repo-id", "no-slash", "--dry-run"]) == 2
    assert main(["upload", str(tmp_path), "--repo-id", "o/n", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "ORG/NAME" in err and "no complete shard" in err


def test_license_and_size_mapping():
    assert hub_license("CC-BY-3.0") == "cc-by-3.0" and hub_license("Some Studio EULA") == "other"
    assert size_category(999) == "n<1K" and size_category(1000) == "1K<n<10K"
    assert json.dumps(size_category(10**12)) == '"n>1B"'


HOSTILE_SOURCE = "Evil | Col\n# Heading\n<script>alert(1)</script> [click](http://e.test) ![i](x) *b*"


def test_manifest_text_cannot_break_the_sources_table(sample_output, tmp_path):
    import io
    import re
    import tarfile

    from peakclips.hub import build_card

    out, _ = sample_output
    copy = tmp_path / "d"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("_hub", "report", "README.md"))
    tar_path = copy / "peakclips-000000.tar"
    with tarfile.open(tar_path) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if info.name.endswith(".json"):
                doc = json.loads(data)
                doc.update(source=HOSTILE_SOURCE, license="CC | BY\n|---|")
                data = json.dumps(doc).encode()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tar_path.write_bytes(buf.getvalue())

    text = str(build_card(str(copy), "peakclips/sample"))
    table = text.split("## Sources")[1].split("\n\n")[1].strip().splitlines()
    assert len(table) == 3, table  # header, rule, the one (hostile) source
    cells = re.split(r"(?<!\\)\|", table[2])
    assert len(cells) == 5 and cells[3].strip() == "4", cells  # | source | license | videos |
    assert "<script>" not in text and "](http://e.test)" not in text and "\n# Heading" not in text
