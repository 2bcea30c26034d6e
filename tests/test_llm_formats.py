"""The response-format ladder (peakclips/llm_formats.py) against the project's test server in
the dialects of real ones: what each format sends, a refused format costs one request (not the
client's retries), `auto` decides once at preflight with one request per rung, and the Azure
client's URLs and header. The real third-party server is tests/test_thirdparty_llm.py."""

from __future__ import annotations

import hashlib
import json

import pytest

from peakclips.config import AnnotatorConfig, ConfigError
from peakclips.llm import ResponseCache, preflight
from peakclips.llm_formats import GRAMMAR_MAX_LENGTH, is_refusal, probe_schema
from peakclips.stages.annotate import Annotate
from tests.llm_server import FakeLLMServer, fabricate
from tests.stages.test_annotate import PROMPTS, _answered, _cfg, _row, annotate

CHAT = "/chat/completions"
KEY = "sk-peakclips-azure-MARKER-2c41d7"


def _chat(srv) -> list[dict]:
    return [r for r in srv.requests if r["path"].endswith(CHAT)]


def _user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    return content if isinstance(content, str) else content[-1]["text"]


def follows_the_prompt(body: dict):
    """A model without structured output that reads the schema quoted at the end of the prompt."""
    return fabricate(json.loads(_user_text(body).rstrip("\n").rsplit("\n", 1)[-1]))


@pytest.mark.parametrize("status", [500, 422, 400])  # llama-cpp-python, TGI, vLLM / Gemini
def test_a_refused_format_costs_one_request_not_the_retries(tmp_path, status):
    with FakeLLMServer(refuse={"json_schema": status}) as srv:
        cfg = _cfg(srv, tmp_path, response_format="json_schema", max_retries=4, max_concurrency=1)
        out = annotate(Annotate(cfg, PROMPTS, {}), _row(3))
        assert out["error"] == "annotate:llm_format_refused", out["error_detail"]
        assert "response_format json_schema" in out["error_detail"] and f"HTTP {status}" in out["error_detail"]
        assert srv.count() == 1 and srv.count("refused") == 1  # not 1 + max_retries; no other scene sent


def test_outages_are_still_retried_whatever_the_format(tmp_path):
    with FakeLLMServer(script=["500", "500", "ok"]) as srv:
        out = annotate(Annotate(_cfg(srv, tmp_path, response_format="json_object", max_concurrency=1,
                                     queries_per_video=1), PROMPTS, {}), _row(1))
        assert out["error"] is None and srv.count() == 2 + 4  # two retries, then 4 answered


@pytest.mark.parametrize("refuse, chosen, sent", [
    ({}, "json_schema", ["json_schema"]),
    ({"json_schema": 500}, "json_object", ["json_schema", "json_object"]),
    ({"json_schema": 422, "json_object": 400}, "prompt", ["json_schema", "json_object"]),
])
def test_auto_decides_at_preflight_with_one_request_per_rung(tmp_path, refuse, chosen, sent):
    lines = []
    with FakeLLMServer(refuse=refuse) as srv:
        cfg = _cfg(srv, tmp_path, response_format="auto", max_retries=4)
        assert preflight(cfg, log=lines.append) == chosen
        assert [r["body"]["response_format"]["type"] for r in _chat(srv)] == sent  # each once
        assert srv.count("refused") == len(refuse) and all(r["usage"] is None for r in _chat(srv)[:-1])
        # the check asks for the real requests' schema keywords in that rung's form
        assert _chat(srv)[0]["body"]["response_format"]["json_schema"]["schema"] == probe_schema()
    assert len(lines) == 1 and lines[0].startswith(f"annotator: response_format auto chose {chosen} (")
    if refuse:
        assert "json_schema refused with HTTP" in lines[0]


def test_an_explicit_format_sends_no_check(tmp_path):
    lines = []
    with FakeLLMServer(refuse={"json_schema": 500}) as srv:
        assert preflight(_cfg(srv, tmp_path, response_format="json_object"), log=lines.append) == "json_object"
        assert srv.count(path=CHAT) == 0 and lines == []


def test_a_check_that_meets_an_outage_stops_the_run_in_one_sentence(tmp_path):
    with FakeLLMServer(faults={"503": 1.0}, retry_after_s=0.01) as srv:
        with pytest.raises(ConfigError, match=r"failed the response-format check: HTTP 503 after retries\.$"):
            preflight(_cfg(srv, tmp_path, response_format="auto", max_retries=2), log=print)
        assert srv.count(path=CHAT) == 3  # the client's own retries: an outage is not a refusal


def test_json_object_sends_the_schema_twice_and_bounded_for_grammars(tmp_path):
    with FakeLLMServer(refuse={"json_schema": 500}) as srv:  # as llama-cpp-python
        out = annotate(Annotate(_cfg(srv, tmp_path, response_format="json_object", queries_per_video=1),
                                PROMPTS, {}), _row(2))
        assert out["error"] is None, out["error_detail"]
        assert srv.count() == srv.count("ok") == 2 + 1 + 1 + 1 == out["llm_calls"]
        for r in srv.requests:
            fmt, text = r["body"]["response_format"], _user_text(r["body"])
            assert fmt["type"] == "json_object" and fmt["schema"] == fmt["value"]  # llama.cpp's key, TGI's
            quoted = json.loads(text.rstrip("\n").rsplit("\n", 1)[-1])  # the full schema, in the prompt
            assert "matches this JSON schema" in text and quoted["title"] == fmt["schema"]["title"]
        chapters = next(r["body"] for r in srv.requests if "Group the scenes" in _user_text(r["body"]))
        sent, quoted = chapters["response_format"]["schema"], json.loads(_user_text(chapters).rstrip().rsplit("\n", 1)[-1])
        assert quoted["properties"]["summary"]["maxLength"] == 2000  # what the reply is validated against
        assert sent["properties"]["summary"]["maxLength"] == GRAMMAR_MAX_LENGTH  # what a grammar can take
        assert sent["$defs"]["ChapterItem"]["properties"]["first_scene"]["enum"] == [0, 1]
        captions = [r["body"] for r in srv.requests if isinstance(r["body"]["messages"][-1]["content"], list)]
        assert len(captions) == 2 and all(c["messages"][-1]["content"][-1]["type"] == "text" for c in captions)


def test_prompt_and_guided_json_formats(tmp_path):
    with FakeLLMServer(reply_fn=follows_the_prompt) as srv:
        out = annotate(Annotate(_cfg(srv, tmp_path, response_format="prompt", queries_per_video=1), PROMPTS, {}),
                       _row(2))
        assert out["error"] is None, out["error_detail"]
        assert srv.count() == 5 and all("response_format" not in r["body"] for r in srv.requests)
    with FakeLLMServer() as srv:  # vLLM's older field, which the test server follows
        out = annotate(Annotate(_cfg(srv, tmp_path / "g", response_format="guided_json", queries_per_video=1),
                                PROMPTS, {}), _row(2))
        assert out["error"] is None, out["error_detail"]
        assert all("response_format" not in r["body"] and r["body"]["guided_json"]["type"] == "object"
                   for r in srv.requests)
        assert all("matches this JSON schema" in _user_text(r["body"]) for r in srv.requests)


def test_replies_are_cached_per_format(tmp_path):
    base = dict(model="m", prompt_id="relevance.v1", prompt_sha="a", messages=[{"role": "user", "content": "x"}],
                schema={"type": "object"})
    keys = {f: ResponseCache.key(**base, response_format=f) for f in ("json_schema", "json_object", "prompt")}
    assert keys["json_schema"] == ResponseCache.key(**base)  # the keys caches already hold
    assert len(set(keys.values())) == 3
    with FakeLLMServer() as srv:
        for fmt in ("json_schema", "json_object", "json_object"):
            annotate(Annotate(_cfg(srv, tmp_path, response_format=fmt, queries_per_video=1), PROMPTS, {}), _row(1))
        assert len(_answered(srv)) == 4 + 4  # the second json_object run is answered by the cache


def test_azure_openai_deployment_urls_api_version_and_api_key_header(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    with FakeLLMServer() as srv:
        host, port = srv.address
        cfg = AnnotatorConfig(backend="openai", base_url=f"http://{host}:{port}", model="my-deployment",
                              azure_api_version="2024-10-21", cache=str(tmp_path / "c.sqlite"), timeout_s=60)
        assert preflight(cfg, log=lambda line: None) == "json_schema"
        from peakclips.llm import Secret

        out = annotate(Annotate(cfg.model_copy(update={"queries_per_video": 1}), PROMPTS, {}, Secret(KEY)), _row(1))
        assert out["error"] is None, out["error_detail"]
        paths = {r["path"] for r in srv.requests}
        assert paths == {"/openai/models", "/openai/deployments/my-deployment/chat/completions"}
        assert {r["query"] for r in srv.requests} == {"api-version=2024-10-21"}
        assert {r["auth_sha256"] for r in srv.requests} == {hashlib.sha256(KEY.encode()).hexdigest()}  # api-key
        assert all("api-key" not in r["headers"] and "authorization" not in r["headers"] for r in srv.requests)


@pytest.mark.parametrize("status, body, sent, refused", [
    (500, "Input should be 'text' or 'json_object' (loc: response_format.type)", {"response_format": {}}, True),
    (422, "unknown variant `json_schema`, expected `json` or `regex`", {"response_format": {}}, True),
    (400, 'Unknown name "additionalProperties" at generation_config.response_schema', {"response_format": {}}, True),
    (400, "failed to parse grammar", {"guided_json": {}}, True),
    (400, "This model's maximum context length is 8192 tokens", {"response_format": {}}, False),
    (503, "overloaded", {"response_format": {}}, False),
    (401, "invalid key for response_format", {"response_format": {}}, False),  # auth, whatever it says
    (429, "json_schema requests are rate limited", {"response_format": {}}, False),
    (500, "response_format", {"messages": []}, False),  # asked for no format: nothing to refuse
])
def test_what_counts_as_a_refused_format(status, body, sent, refused):
    assert is_refusal(status, body, json.dumps(sent).encode()) is refused
