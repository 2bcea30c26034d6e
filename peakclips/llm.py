"""The annotator's client: the `openai` package against any OpenAI-compatible server, with a
response cache, one re-ask on an invalid reply, and token/cost accounting.

Retries with backoff on 408/409/429/5xx, `Retry-After` and dropped connections are the
`openai` client's own (`max_retries`); we only add what it does not do: validation of every
reply with pydantic, a re-ask, the SQLite cache, and turning persistent failures into a
per-video error code instead of an exception.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from peakclips.config import AnnotatorConfig
from peakclips.errors import VideoError


def default_cache_path() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "peakclips", "annotator.sqlite")


class ResponseCache:
    """Replies keyed by a hash of (model, prompt id and hash, messages, schema).

    SQLite in WAL mode with a busy timeout: many worker processes on one node may share a file.
    Only validated replies are stored, so a cached reply never needs a re-ask.
    """

    def __init__(self, path: str):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=60, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS replies (key TEXT PRIMARY KEY, reply TEXT)")
        self._db.commit()

    @staticmethod
    def key(model: str, prompt_id: str, prompt_sha: str, messages: list, schema: dict) -> str:
        blob = json.dumps([model, prompt_id, prompt_sha, messages, schema], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM replies WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, reply: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO replies VALUES (?, ?)", (key, reply))
            self._db.commit()


@dataclass
class Usage:
    calls: int = 0  # requests answered by the server (cache hits are not calls)
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    by_prompt: dict[str, int] = field(default_factory=dict)


def api_key(cfg: AnnotatorConfig) -> str:
    # Local servers (vLLM, llama.cpp) accept any key; the openai client insists on one.
    return os.environ.get(cfg.api_key_env) or "EMPTY"


def base_url(cfg: AnnotatorConfig) -> str | None:
    return cfg.base_url or os.environ.get("OPENAI_BASE_URL")


class LLMClient:
    """One per worker. `ask()` returns a validated reply model or raises VideoError."""

    def __init__(self, cfg: AnnotatorConfig):
        import openai

        self.cfg = cfg
        self.model = cfg.model or "default"
        self.client = openai.AsyncOpenAI(
            base_url=base_url(cfg),
            api_key=api_key(cfg),
            timeout=cfg.timeout_s,
            max_retries=cfg.max_retries,
        )
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

        `check(reply)` may raise ValueError for rules a schema cannot express (scene ids in order).
        """
        key = ResponseCache.key(self.model, prompt_id, prompt_sha, messages, schema)
        cached = self.cache.get(key)
        if cached is not None:
            usage.cache_hits += 1
            return reply_model.model_validate_json(cached)
        conversation = list(messages)
        for attempt in range(2):
            content = await self._complete(prompt_id, conversation, schema, usage)
            try:
                reply = reply_model.model_validate_json(content)
                if check is not None:
                    check(reply)
            except (ValidationError, ValueError) as e:
                if attempt == 1:
                    raise VideoError("invalid_reply", f"{prompt_id}: {_short(e)}") from None
                conversation = conversation + [
                    {"role": "assistant", "content": content},
                    {"role": "user", "content": f"That reply was invalid ({_short(e)}). "
                     "Reply again with JSON that matches the schema exactly."},
                ]
                continue
            self.cache.put(key, reply.model_dump_json())
            return reply
        raise AssertionError("unreachable")

    async def _complete(self, prompt_id: str, messages: list[dict], schema: dict, usage: Usage) -> str:
        import openai

        try:
            resp = await self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": prompt_id.replace(".", "_"), "schema": schema},
                },
                temperature=0,
            )
        except openai.APITimeoutError:
            raise VideoError("llm_timeout", f"{prompt_id}: no reply within {self.cfg.timeout_s} s") from None
        except openai.RateLimitError:
            raise VideoError("llm_rate_limited", f"{prompt_id}: still rate-limited after retries") from None
        except openai.APIConnectionError:
            raise VideoError("llm_unreachable", f"{prompt_id}: connection failed after retries") from None
        except openai.APIStatusError as e:
            raise VideoError("llm_http_error", f"{prompt_id}: HTTP {e.status_code}") from None
        usage.calls += 1
        usage.by_prompt[prompt_id] = usage.by_prompt.get(prompt_id, 0) + 1
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


def _short(e: Exception) -> str:
    if isinstance(e, ValidationError):
        first = e.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(e)[:200]


def preflight(cfg: AnnotatorConfig, timeout_s: float = 3.0) -> None:
    """Fail in seconds, with one sentence naming what to set, when the endpoint is unusable."""
    import openai

    from peakclips.config import ConfigError

    url = base_url(cfg)
    if not url:
        raise ConfigError(
            "annotator.backend is 'openai' but no endpoint is configured: "
            "set annotator.base_url in the config (or --set annotator.base_url=...) or OPENAI_BASE_URL."
        )
    if not cfg.model:
        raise ConfigError("annotator.model is not set: set it to the model name your server serves.")
    client = openai.OpenAI(base_url=url, api_key=api_key(cfg), timeout=timeout_s, max_retries=0)
    try:
        client.models.list()
    except openai.AuthenticationError:
        raise ConfigError(
            f"the annotator endpoint {url} rejected the API key: set {cfg.api_key_env}."
        ) from None
    except (openai.APIConnectionError, openai.APITimeoutError):
        raise ConfigError(
            f"the annotator endpoint {url} is not reachable: start the server or set "
            "annotator.base_url / OPENAI_BASE_URL to one that is."
        ) from None
    except openai.APIStatusError:
        pass  # reachable; some servers do not implement /models
