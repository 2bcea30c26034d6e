"""Secrets and machine paths never reach a message, a log line, the index or `_stats.json`
(SPEC section 7): one redaction rule for every URI (userinfo, query and fragment dropped), the
annotator's endpoint redacted in the preflight errors, operational keys kept out of published
stats, and local paths outside the dataset's inputs not published."""

import logging

import pytest

from peakclips.config import ConfigError, IngestConfig, load_config
from peakclips.pipeline import run_info
from peakclips.redact import redact_text, redact_uri
from peakclips.stages.ingest import Ingest
from tests.conftest import REPO
from tests.loopback import send, serve

CLIP = REPO / "manifests/videos/sintel_10s_640x360.mp4"
SECRETS = ("hunter2", "SECRETSIG", "SECRETFRAG", "s3cr3tkey")


def assert_clean(text: str) -> None:
    assert not [s for s in SECRETS if s in text], text


@pytest.mark.parametrize("uri, shown", [
    ("https://ann:hunter2@cdn.test:8443/v/a.mp4?X-Amz-Signature=SECRETSIG#SECRETFRAG", "https://cdn.test:8443/v/a.mp4"),
    ("http://ann@cdn.test/a.mp4", "http://cdn.test/a.mp4"),
    ("http://[::1/a.mp4?k=SECRETSIG", "http://[::1/a.mp4"),  # unparseable: cut by hand
    ("http://ann:hunter2@[::1/a.mp4", "http://[::1/a.mp4"),
    ("/data/videos/a.mp4", "/data/videos/a.mp4"),
])
def test_one_redaction_rule_for_every_uri(uri, shown):
    assert redact_uri(uri) == shown
    assert redact_text(f"GET {uri} failed; see {uri}") == f"GET {shown} failed; see {shown}"


@pytest.mark.parametrize("status", [404, 500])
def test_credentials_in_a_video_url_never_reach_the_row(tmp_path, status):
    with serve(lambda h: send(h, b"nope", status)) as (base, seen):
        url = base.replace("http://", "http://ann:hunter2@") + "/v.mp4?X-Amz-Signature=SECRETSIG#SECRETFRAG"
        row = {"uri": url, "shard_id": 0, "key": "k", "error": None}
        out = Ingest(IngestConfig(allow_hosts=["127.0.0.1"]), str(tmp_path))(row)
    assert out["error"] == "ingest:http_error" and "/v.mp4" in out["error_detail"]
    assert_clean(out["error_detail"])
    assert seen[0]["headers"]["Authorization"].startswith("Basic ")  # the server still got them


def test_request_urls_in_library_logs_are_redacted(tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with serve(lambda h: send(h, CLIP.read_bytes())) as (base, _):
        row = {"uri": base + "/v.mp4?X-Amz-Signature=SECRETSIG", "shard_id": 0, "key": "k", "error": None}
        out = Ingest(IngestConfig(allow_hosts=["127.0.0.1"]), str(tmp_path))(row)
    assert out["error"] is None
    assert any("/v.mp4" in r.getMessage() for r in caplog.records)  # httpx did log the request
    assert_clean("\n".join(r.getMessage() for r in caplog.records))


def _answer_401(h):
    send(h, b'{"error": {"message": "bad key"}}', 401, {"Content-Type": "application/json"})


def test_the_annotator_preflight_never_prints_credentials_in_its_url():
    from peakclips.llm import preflight

    with serve(_answer_401) as (base, _):
        url = base.replace("http://", "http://ann:hunter2@") + "/v1?api-key=s3cr3tkey"
        cfg = load_config(None, ["annotator.backend=openai", f"annotator.base_url={url}", "annotator.model=m"])
        with pytest.raises(ConfigError) as rejected:
            preflight(cfg.annotator)
    with pytest.raises(ConfigError) as unreachable:  # the server is gone now
        preflight(cfg.annotator)
    for e in (rejected, unreachable):
        assert "127.0.0.1" in str(e.value)
        assert_clean(str(e.value))


def test_published_run_facts_hold_no_operational_key_and_no_machine_path(tmp_path):
    ckpt = tmp_path / "weights" / "siglip-ft.bin"
    cfg = load_config(REPO / "pipelines/sample.yaml", [
        "ingest.allow_hosts=[mirror.internal.corp, 10.1.2.3]", f"ingest.allowed_roots=[{tmp_path}]",
        f"clip.pretrained={ckpt}", f"annotator.reference_dir={REPO / 'manifests/reference'}"])
    note = f"open_clip model ViT-B-16-SigLIP ({ckpt}) could not be loaded: FileNotFoundError: {ckpt}"
    info = run_info(cfg, note, str(tmp_path / "_scratch"))
    published = info.model_dump_json(include={"config", "clip_model", "clip_note", "annotator"})
    assert "mirror.internal.corp" not in published and "allow_hosts" not in published
    assert str(tmp_path) not in published and "siglip-ft.bin" in published
    assert info.config_hash != run_info(load_config(REPO / "pipelines/sample.yaml", [
        f"clip.pretrained={tmp_path / 'other' / 'siglip-ft.bin'}",
        f"annotator.reference_dir={REPO / 'manifests/reference'}"]), note, "").config_hash
