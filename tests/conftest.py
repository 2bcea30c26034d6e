"""Shared fixtures: offline settings, one local Ray instance per session, the sample run.

Test media is made, not downloaded (tests/media.py); the bundled CC-BY clips live in
manifests/videos. The OpenAI-compatible server the annotator tests talk to is tests/llm_server.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_MANIFEST = REPO / "manifests" / "sample.jsonl"
SAMPLE_CONFIG = REPO / "pipelines" / "sample.yaml"


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray instance shared by the whole session (starting one costs seconds)."""
    import ray

    from peakclips.terminal import RAY_RUNTIME_ENV

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=RAY_RUNTIME_ENV)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def sample_output(ray_local, tmp_path_factory):
    """The sample dataset, built once per session on real local Ray (CLIP off: offline)."""
    from peakclips.config import load_config
    from peakclips.pipeline import run

    out = tmp_path_factory.mktemp("sample") / "out"
    cfg = load_config(SAMPLE_CONFIG, [f"annotator.reference_dir={REPO / 'manifests/reference'}",
                                      f"ingest.allowed_roots=[{REPO / 'manifests/videos'}]"])
    summary = run(cfg, str(SAMPLE_MANIFEST), str(out))
    return out, summary


@pytest.fixture(scope="session")
def moto_server():
    """moto's S3 server on 127.0.0.1 for the whole session (tests/s3_server.py), stopped by PID."""
    from tests.s3_server import MotoServer

    with MotoServer() as server:
        yield server


@pytest.fixture
def s3(moto_server, monkeypatch):
    """A fresh bucket on the session's S3 server (tests/s3_server.py, `Bucket`), with the standard
    AWS variables pointing at the server, for this process and every process it starts."""
    import s3fs

    from tests.s3_server import CLEARED, Bucket

    for name in CLEARED:
        monkeypatch.delenv(name, raising=False)
    for name, value in moto_server.env().items():
        monkeypatch.setenv(name, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield Bucket.create(moto_server)
    s3fs.S3FileSystem.clear_instance_cache()
