"""The annotator's client: the `openai` package against any OpenAI-compatible server, with a
response cache, one re-ask on an invalid reply, and token/cost accounting.

Used by stage 4 (peakclips/stages/annotate.py), one client per annotator actor. Retries with
backoff on 408/409/429/5xx, `Retry-After` and dropped connections are the `openai` client's
own (`max_retries`); we only add what it does not do: validation of every reply with pydantic,
a re-ask, the SQLite cache, turning persistent failures into a per-video error code instead of
an exception, and the response format each server accepts (peakclips/llm_formats.py: a
refused format is not retried, and `auto` picks one at preflight).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from peakclips.config import AnnotatorConfig
from peakclips.errors import VideoError
from peakclips.llm_formats import LADDER, REFUSED, choose, refusal_hooks, request_fields
from peakclips.redact import redact_text, redact_uri

BUSY_TIMEOUT_S = 60.0  # a writer waits this long for another process's write to finish


def default_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "peakclips", "annotator.sqlite")


class ResponseCache:
    """Validated replies keyed by a hash of (model, prompt id and hash, messages, schema, and
    the response format where it is not json_schema).

    Many annotator actors (processes) on one node share one file: SQLite in WAL mode lets
    readers run beside the one writer, every write is its own short transaction (autocommit),
    and a writer that finds the file locked waits up to BUSY_TIMEOUT_S instead of failing.
    `synchronous=NORMAL`: a power cut may lose the last replies (they are asked again), never
    corrupt the file. The file must be on a local disk (SQLite locking does not hold on NFS),
    so on a cluster each node has its own cache. Only validated replies are stored, so a cached
    reply never needs a re-ask.
    """

    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()  # one connection per process, used from worker threads
        self._db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                                   isolation_level=None)
        self._set_up()

    def _set_up(self) -> None:
        """WAL is a property of the file: set it once, then every connection sees it. Switching
        needs the file to itself, and SQLite answers "database is locked" at once (no busy wait)
        while another process is opening it in the old mode, so many actors starting together
        retry here until BUSY_TIMEOUT_S."""
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT NOT NULL)")
                return
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01 + random.random() * 0.05)  # jitter: the openers do not collide again

    @staticmethod
    def key(model: str, prompt_id: str, prompt_sha: str, messages: list, schema: dict,
            response_format: str = "json_schema") -> str:
        # json_schema replies keep the keys they had before there were other formats, so
        # existing caches stay valid; the other formats send other requests, so they add theirs.
        parts = [model, prompt_id, prompt_sha, messages, schema]
        if response_format != "json_schema":
            parts.append(response_format)
        blob = json.dumps(parts, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, reply))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]


class Secret:
    """The API key on its way from the driver to the workers: it never shows itself in a repr,
    a log line or a traceback."""

    __slots__ = ("_value",)

    def __init__(self, value: str | None):
        self._value = value

    def get(self) -> str | None:
        return self._value

    def __repr__(self) -> str:
        return "Secret(***)"

    __str__ = __repr__

    @classmethod
    def from_env(cls, cfg: AnnotatorConfig) -> Secret:
        """The driver's key for the workers (none for backends that send no requests)."""
        return cls(os.environ.get(cfg.api_key_env) if cfg.backend == "openai" else None)


@dataclass
class Usage:
    """What one video cost. Retries inside the openai client are not calls: only answered
    requests are billed, and only those are counted."""

    calls: int = 0  # requests answered by the server (re-asks included, cache hits not)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def columns(self) -> dict:
        """The row columns the index and `_stats.json` are built from."""
        return {"llm_calls": self.calls, "llm_cache_hits": self.cache_hits,
                "prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "cost_usd": self.cost_usd}


def api_key(cfg: AnnotatorConfig, secret: Secret | None = None) -> str:
    # The driver's key (shipped as a Secret) wins over the worker's environment: on a cluster,
    # workers do not see the shell the run was started from. Local servers (vLLM, llama.cpp)
    # accept any key; the openai client insists on one.
    return (secret.get() if secret else None) or os.environ.get(cfg.api_key_env) or "EMPTY"


def base_url(cfg: AnnotatorConfig) -> str | None:
    env = "AZURE_OPENAI_ENDPOINT" if cfg.azure_api_version else "OPENAI_BASE_URL"
    return cfg.base_url or os.environ.get(env)


def make_client(cfg: AnnotatorConfig, key: str, *, asynchronous: bool, timeout: float, max_retries: int):
    """The openai client for the endpoint (Azure's when `azure_api_version` is set: deployment
    URLs, `api-version`, the `api-key` header), with the hooks that keep refused formats from
    being retried."""
    import openai

    http = (openai.DefaultAsyncHttpxClient if asynchronous else openai.DefaultHttpxClient)(
        event_hooks=refusal_hooks(asynchronous))
    common = {"api_key": key, "timeout": timeout, "max_retries": max_retries, "http_client": http}
    if cfg.azure_api_version:
        azure = openai.AsyncAzureOpenAI if asynchronous else openai.AzureOpenAI
        return azure(azure_endpoint=base_url(cfg), api_version=cfg.azure_api_version, **common)
    return (openai.AsyncOpenAI if asynchronous else openai.OpenAI)(base_url=base_url(cfg), **common)


class LLMClient:
    """One per worker. `ask()` returns a validated reply model or raises VideoError."""

    def __init__(self, cfg: AnnotatorConfig, secret: Secret | None = None):
        self.cfg = cfg
        self.model = cfg.model or "default"
        # The pipeline's preflight decides `auto` once per run and hands the workers its choice;
        # a stage used on its own, without that preflight, asks with the ladder's top rung.
        self.format = LADDER[0] if cfg.response_format == "auto" else cfg.response_format
        self.client = make_client(cfg, api_key(cfg, secret), asynchronous=True,
                                  timeout=cfg.timeout_s, max_retries=cfg.max_retries)
        self.cache = ResponseCache(cfg.cache or default_cache_path())
        self.price = cfg.prices.get(self.model)

    async def ask(
        self,
        prompt_id: str,
        prompt_sha: str,
        messages: list[dict],
        reply_model: type[BaseModel],
        schema: dict,
        usage: Usage,
        check=None,
    ) -> BaseModel:
        """Send one request (or answer it from the cache), validate, re-ask once if invalid.

        `check(reply)` may raise ValueError for rules a schema cannot express (array lengths
        on servers that ignore the schema, chapter starts in range).
        """
        key = ResponseCache.key(self.model, prompt_id, prompt_sha, messages, schema, self.format)
        cached = await asyncio.to_thread(self.cache.get, key)  # the event loop never waits on a lock
        if cached is not None:
            try:
                reply = _validate(reply_model, cached, check)
                usage.cache_hits += 1
                return reply
            except (ValidationError, ValueError):
                pass  # written by an older reply model: ask again
        conversation = list(messages)
        for attempt in range(2):
            content = await self._complete(prompt_id, conversation, schema, usage)
            try:
                reply = _validate(reply_model, content, check)
            except (ValidationError, ValueError) as e:
                if attempt == 1:
                    raise VideoError("invalid_reply", f"{prompt_id}: {_short(e)}") from None
                conversation = conversation + [
                    {"role": "assistant", "content": content},
                    {"role": "user", "content": f"That reply was invalid ({_short(e)}). "
                     "Reply again with JSON that matches the schema exactly."},
                ]
                continue
            await asyncio.to_thread(self.cache.put, key, reply.model_dump_json())
            return reply
        raise AssertionError("unreachable")

    async def _complete(self, prompt_id: str, messages: list[dict], schema: dict, usage: Usage) -> str:
        import openai

        try:
            resp = await self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=0,
                **request_fields(self.format, prompt_id.replace(".", "_"), schema))
        except openai.APIError as e:  # the base of every error the client raises for a request
            raise request_error(e, prompt_id, self.cfg, self.format) from None
        usage.calls += 1
        if resp.usage is not None:
            usage.prompt_tokens += resp.usage.prompt_tokens
            usage.completion_tokens += resp.usage.completion_tokens
            if self.price is not None:
                usage.cost_usd += (
                    resp.usage.prompt_tokens * self.price.input_per_mtok
                    + resp.usage.completion_tokens * self.price.output_per_mtok
                ) / 1e6
        if not resp.choices or resp.choices[0].message.content is None:
            return ""
        return resp.choices[0].message.content


def request_error(e: Exception, prompt_id: str, cfg: AnnotatorConfig, fmt: str) -> VideoError:
    """The row error for a request the openai client gave up on (after its own retries; a
    refused format gets none).

    Server messages are left out (an auth error may echo part of the key), except for 400,
    where the message is what tells people the prompt was too long, and a refused format.
    """
    import openai

    if isinstance(e, openai.APIStatusError) and e.response.headers.get(REFUSED):
        return VideoError("llm_format_refused", f"{prompt_id}: the server refused response_format {fmt} "
                          f"(HTTP {e.status_code}: {str(e.message)[:200]}); set annotator.response_format "
                          "to auto or another format")
    if isinstance(e, openai.APITimeoutError):  # before its base class, APIConnectionError
        return VideoError("llm_timeout", f"{prompt_id}: no reply within {cfg.timeout_s} s")
    if isinstance(e, openai.APIConnectionError):
        return VideoError("llm_unreachable", f"{prompt_id}: connection failed after retries")
    if isinstance(e, openai.RateLimitError):
        return VideoError("llm_rate_limited", f"{prompt_id}: still rate-limited (HTTP 429) after retries")
    if isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return VideoError("llm_auth_failed", f"{prompt_id}: HTTP {e.status_code}: check {cfg.api_key_env}")
    if isinstance(e, openai.BadRequestError):
        return VideoError("llm_bad_request", f"{prompt_id}: HTTP 400: {str(e.message)[:300]}")
    if isinstance(e, openai.APIStatusError) and e.status_code == 408:
        return VideoError("llm_timeout", f"{prompt_id}: the server timed out (HTTP 408) after retries")
    if isinstance(e, openai.InternalServerError):
        return VideoError("llm_server_error", f"{prompt_id}: HTTP {e.status_code} after retries")
    if isinstance(e, openai.APIStatusError):
        return VideoError("llm_http_error", f"{prompt_id}: HTTP {e.status_code}")
    return VideoError("llm_bad_response", f"{prompt_id}: {type(e).__name__}")  # unparseable 200


def _validate(reply_model: type[BaseModel], content: str, check) -> BaseModel:
    # strict=False lets raw control characters (a newline in a caption) stand inside strings:
    # llama-cpp-python's JSON grammar lets them through, and they change nothing the model meant.
    reply = reply_model.model_validate(json.loads(content, strict=False))
    if check is not None:
        check(reply)
    return reply


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        first = e.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(e)[:200]


def preflight(cfg: AnnotatorConfig, log=print, timeout_s: float = 3.0, who: str = "annotator",
              url_key: str = "annotator.base_url", model_key: str = "annotator.model") -> str:
    """Fail in seconds, with one sentence naming what to set, when the endpoint is unusable.
    Returns the response format the run's requests use: `auto` is decided here, once per run,
    with one small request per format tried (peakclips/llm_formats.py); a format set by hand
    sends no check. `who` and the key names say whose endpoint it is (`peakclips eval` checks
    its VLM's with its own option names)."""
    import openai

    from peakclips.config import ConfigError

    url = base_url(cfg)
    if not url:
        env = "AZURE_OPENAI_ENDPOINT" if cfg.azure_api_version else "OPENAI_BASE_URL"
        if who == "annotator":
            raise ConfigError(
                "annotator.backend is 'openai' but no endpoint is configured: "
                f"set annotator.base_url in the config (or --set annotator.base_url=...) or {env}."
            )
        raise ConfigError(f"no {who} endpoint is configured: set {url_key} or {env}.")
    if not cfg.model:
        raise ConfigError(f"{model_key} is not set: set it to the model name your server serves.")
    key = api_key(cfg)
    client = make_client(cfg, key, asynchronous=False, timeout=timeout_s, max_retries=0)
    shown = redact_uri(url)  # a base_url may carry user:password@ or ?api-key=
    try:
        client.models.list()
    except openai.AuthenticationError:
        raise ConfigError(
            f"the {who} endpoint {shown} rejected the API key: set {cfg.api_key_env}."
        ) from None
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise ConfigError(
            f"the {who} endpoint {shown} is not reachable: start the server or set "
            f"{url_key} / OPENAI_BASE_URL to one that is."
        ) from None
    except openai.APIStatusError:
        pass  # reachable; some servers do not implement /models
    # The format check is a real chat request: as patient as the run's own requests.
    client = make_client(cfg, key, asynchronous=False, timeout=cfg.timeout_s, max_retries=cfg.max_retries)
    try:
        return choose(lambda **fields: client.chat.completions.create(model=cfg.model, temperature=0, **fields),
                      cfg.response_format, log)
    except openai.APIError as e:
        failure = request_error(e, "the response-format check", cfg, cfg.response_format)
        raise ConfigError(f"the annotator endpoint {shown} failed {redact_text(failure.detail)}.") from None
