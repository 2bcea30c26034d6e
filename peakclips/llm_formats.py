"""The response-format ladder: how the annotator asks an OpenAI-compatible server for JSON.

Servers differ in the `response_format` they accept (docs/annotator.md, "Servers"):

  json_schema  {"type": "json_schema", "json_schema": {"name", "schema"}}: OpenAI, Azure OpenAI,
               vLLM, SGLang, Ollama, llama.cpp's llama-server, Gemini.
  json_object  {"type": "json_object", "schema", "value"}, and the schema in the prompt:
               llama-cpp-python enforces `schema` with a grammar (and refuses json_schema), TGI
               reads `value`, others give JSON mode and ignore both.
  prompt       no response_format: the schema in the prompt only.
  guided_json  vLLM's older extra_body field {"guided_json": schema}, and the schema in the
               prompt. Only when asked for: a server that does not know the field ignores it,
               so no probe can tell whether it works.

Every reply is validated with its pydantic model whatever was sent (peakclips/llm.py).
`auto` walks json_schema, json_object, prompt once per run, on the driver, before any work
(`choose`): one small request per rung, with a reply schema that uses every JSON Schema keyword
the real ones use, until the server accepts one; the workers get the rung it chose.

A request refused because of its format is not an outage: `refusal_hooks` (httpx response hooks
on the openai client) mark such a response `x-should-retry: false`, which the client's own retry
logic obeys, so a refusal costs one request instead of max_retries + 1.
"""

from __future__ import annotations

import json
from collections.abc import Callable

LADDER = ("json_schema", "json_object", "prompt")  # what `auto` tries, best first
SCHEMA_IN_PROMPT = frozenset({"json_object", "prompt", "guided_json"})
REFUSED = "x-peakclips-format-refused"  # set on a refused response, read by llm.request_error
# A refusal names what it refuses; these statuses mean something else whatever the body says.
FORMAT_WORDS = ("response_format", "json_schema", "json_object", "guided_json", "schema", "grammar")
OTHER_STATUSES = frozenset({401, 403, 404, 408, 409, 429})
# What json_object, the rung llama.cpp-family servers take, asks their grammars to enforce
# (`_for_grammar`); replies are still validated against the full schema. llama-cpp-python
# (0.3.36) turns a string's maxLength into nested grammar rules: its grammar parser fails above
# about 1,100 of them, which crashes the server (a segfault), and each token costs more the
# longer the bound (one measurement on 2 busy cores, Gemma 3 270M: 1.45 s a token under a
# 1000-character bound, 0.8 s under a 500 one). An unbounded string lets a small model ramble until the context is full. So
# strings are bounded at GRAMMAR_MAX_LENGTH characters (captions of one or two sentences and
# summaries of two to four fit). It ignores minimum/maximum: bounded integers become an enum.
GRAMMAR_MAX_LENGTH = 500
GRAMMAR_MAX_ENUM = 1000
PROBE_TEXT = ('This request only checks the reply format. Reply with exactly this JSON: '
              '{"scores": [{"score": 3, "reason": "A format check."}]}')


def request_fields(fmt: str, name: str, schema: dict) -> dict:
    """The chat-completion arguments, besides model and messages, that ask for `schema` in `fmt`."""
    if fmt == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": schema}}}
    if fmt == "json_object":
        # `schema`: llama.cpp and llama-cpp-python; `value`: TGI (which reads json_object as its
        # `json` grammar). Servers that know neither give JSON mode and ignore them.
        enforced = _for_grammar(schema)
        return {"response_format": {"type": "json_object", "schema": enforced, "value": enforced}}
    if fmt == "guided_json":
        return {"extra_body": {"guided_json": schema}}
    return {}


def _for_grammar(node):
    """A copy of the schema `node` that grammar-based servers enforce in full: every string at
    most GRAMMAR_MAX_LENGTH characters, every bounded integer also an enum of its values."""
    if isinstance(node, list):
        return [_for_grammar(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _for_grammar(v) for k, v in node.items()}
    if out.get("type") == "string":
        out["maxLength"] = min(out.get("maxLength", GRAMMAR_MAX_LENGTH), GRAMMAR_MAX_LENGTH)
    lo, hi = out.get("minimum"), out.get("maximum")
    if out.get("type") == "integer" and isinstance(lo, int) and isinstance(hi, int) and hi - lo < GRAMMAR_MAX_ENUM:
        out["enum"] = list(range(lo, hi + 1))
    return out


def schema_text(schema: dict) -> str:
    """The schema as the prompt quotes it (json_object, prompt, guided_json): compact, stable."""
    return json.dumps(schema, separators=(",", ":"), sort_keys=True)


def is_refusal(status: int, body: str, request_body: bytes) -> bool:
    """A 4xx/5xx answer to a request that asked for a format, whose body names the format.

    llama-cpp-python answers json_schema with HTTP 500, TGI with 422, vLLM and Gemini with 400
    (e.g. an unsupported schema keyword); all say `response_format`, `schema` or `grammar`.
    """
    if status < 400 or status in OTHER_STATUSES:
        return False
    try:
        sent = json.loads(request_body or b"{}")
    except ValueError:
        return False
    if not isinstance(sent, dict) or not ({"response_format", "guided_json"} & set(sent)):
        return False
    text = body.lower()
    return any(word in text for word in FORMAT_WORDS)


def _mark(response) -> None:
    if is_refusal(response.status_code, response.text, response.request.content):
        response.headers["x-should-retry"] = "false"  # the openai client's own retry switch
        response.headers[REFUSED] = "1"


def _mark_sync(response) -> None:
    if response.status_code >= 400:
        response.read()
        _mark(response)


async def _mark_async(response) -> None:
    if response.status_code >= 400:
        await response.aread()
        _mark(response)


def refusal_hooks(asynchronous: bool) -> dict:
    """httpx `event_hooks` for the openai client's HTTP client."""
    return {"response": [_mark_async if asynchronous else _mark_sync]}


def probe_schema() -> dict:
    """The reply schema of one relevance window of one scene: $defs/$ref, additionalProperties,
    integer bounds, string lengths and pinned array lengths, as every real request has."""
    from peakclips.prompts import RelevanceReply, reply_schema

    return reply_schema(RelevanceReply, pin={"scores": 1})


def choose(create: Callable, fmt: str, log: Callable[[str], None]) -> str:
    """The format the run's requests use: `fmt` itself, or for `auto` the first rung of LADDER
    the server accepts. `create(**fields)` sends one small chat request (the openai client's
    retries included) and raises what the client raises; a refused one is marked REFUSED.
    Says in one line what `auto` chose and why."""
    import openai

    if fmt != "auto":
        return fmt
    refused = []
    schema = probe_schema()
    for rung in LADDER[:-1]:  # the last rung sends no format, so nothing about it can be refused
        try:
            create(messages=[{"role": "user", "content": PROBE_TEXT}],
                   **request_fields(rung, "format_check", schema))
        except openai.APIStatusError as e:
            if not e.response.headers.get(REFUSED):
                raise
            refused.append(f"{rung} refused with HTTP {e.status_code}")
            continue
        chosen = rung
        break
    else:
        chosen = LADDER[-1]
    log(f"annotator: response_format auto chose {chosen} ("
        + ("; ".join(refused) if refused else "the server accepted it") + ")")
    return chosen
