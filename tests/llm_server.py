"""FakeLLMServer: the project's own local OpenAI-compatible HTTP server, for tests and benchmarks.

The annotator talks to any OpenAI-compatible endpoint through the real ``openai`` client; offline
it talks to this server instead (SPEC §6). It binds 127.0.0.1 only, serves requests concurrently
(one thread each), fabricates replies that conform to the JSON schema sent as
``response_format`` and injects faults from a deterministic plan.

Tests::

    with FakeLLMServer(script=["429", "ok"], retry_after_s=0.05) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="test", max_retries=2)
        ...
        assert srv.count() == 2 and srv.count("429") == 1

or, in a conftest: ``llm_server = llm_server_fixture(latency_s=0.0)``.

Benchmarks run it standalone and point OPENAI_BASE_URL at the printed URL::

    python -m tests.llm_server --port 8000 --latency 0.2 --faults 429=0.1,500=0.1

Fault kinds (FAULT_KINDS): 429 (with Retry-After and retry-after-ms), 500, 503 (also with
Retry-After), 408, 401 (its message echoes the key sent, as the worst real servers do), drop
(connection closed, no response), slow (sleeps ``slow_s`` before a normal
reply), malformed_json, out_of_range, wrong_length, extra_key (200 replies whose content breaks the
schema). Faults apply to chat completions only; every request that reaches the handler is recorded.

Response formats, as real servers differ in them: the reply follows the schema of a json_schema
response_format, of a json_object one that carries ``schema`` (as llama.cpp enforces it), or of
vLLM's ``guided_json``. ``refuse={"json_schema": 500}`` answers every request that asks for that
format with that status and a body naming it, as llama-cpp-python does (recorded with fault
"refused"; refusals do not use up the fault plan).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import signal
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"  # loopback only, ever: never a parameter
FAULT_KINDS = ("429", "500", "503", "408", "drop", "slow",
               "malformed_json", "out_of_range", "wrong_length", "extra_key", "401")
STATUS_FAULTS = {"429": 429, "500": 500, "503": 503, "408": 408, "401": 401}
CONTENT_FAULTS = ("malformed_json", "out_of_range", "wrong_length", "extra_key")
CHARS_PER_TOKEN = 4  # deterministic token estimate, close to real tokenizers on English text
IMAGE_TOKENS = 85  # what OpenAI charges a low-detail image; a fixed, predictable number
MAX_DEPTH = 8  # recursive $refs (trees) stop growing here
ReplyFn = Callable[[dict], "dict | list | str | None"]


class _SchemaFaker:
    """Deterministic JSON-schema instance generator, plus the corruptions used by content faults."""

    def __init__(self, root: dict, rng: random.Random, name: str):
        self.root, self.rng, self.name, self.n = root, rng, name, 0

    def _lookup(self, ref: str) -> dict:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node: Any = self.root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def resolve(self, s: Any) -> dict:
        """Follow $ref/allOf; take the first non-null anyOf/oneOf branch (pydantic's Optional)."""
        for _ in range(64):
            if not isinstance(s, dict):
                return {}
            rest = dict(s)
            if "$ref" in rest:
                s = {**self._lookup(rest.pop("$ref")), **rest}
                continue
            if "allOf" in rest:
                merged: dict = {}
                for part in rest.pop("allOf"):
                    merged.update(self.resolve(part))
                s = {**merged, **rest}
                continue
            for key in ("anyOf", "oneOf"):
                if key in rest:
                    opts = rest.pop(key)
                    real = [o for o in opts if self.resolve(o).get("type") != "null"]
                    s = {**rest, **(real or opts)[0]}
                    break
            else:
                return s
        raise ValueError("$ref chain too deep")

    @staticmethod
    def _type(s: dict) -> str:
        t = s.get("type")
        if isinstance(t, list):
            t = next((x for x in t if x != "null"), "null")
        if t:
            return t
        return "object" if "properties" in s else "array" if "items" in s else "string"

    @staticmethod
    def _bounds(s: dict, step: float) -> tuple[float, float]:
        lo = s.get("minimum", s["exclusiveMinimum"] + step if "exclusiveMinimum" in s else None)
        hi = s.get("maximum", s["exclusiveMaximum"] - step if "exclusiveMaximum" in s else None)
        lo = lo if lo is not None else (hi - 10 if hi is not None else 0)
        return lo, hi if hi is not None else lo + 10

    def gen(self, schema: Any, field: str = "value", depth: int = 0) -> Any:
        s = self.resolve(schema)
        if "const" in s:
            return s["const"]
        if "enum" in s:
            return self.rng.choice(s["enum"])
        t = self._type(s)
        if t == "object":
            props = s.get("properties") or {}
            out = {k: self.gen(v, k, depth + 1) for k, v in props.items()}
            extra = s.get("additionalProperties")
            if not props and isinstance(extra, dict) and depth < MAX_DEPTH:  # dict[str, X]
                out = {f"{field}_{i}": self.gen(extra, field, depth + 1) for i in range(2)}
            return out
        if t == "array":
            prefix = s.get("prefixItems") or []
            lo = max(s.get("minItems", 0), len(prefix))
            hi = min(s.get("maxItems", lo + 3), lo + 3)
            n = lo if depth >= MAX_DEPTH else self.rng.randint(lo, max(lo, hi))
            return [self.gen(prefix[i] if i < len(prefix) else s.get("items", {}), field, depth + 1)
                    for i in range(n)]
        if t == "integer":
            lo, hi = self._bounds(s, 1)
            return self.rng.randint(math.ceil(lo), max(math.ceil(lo), math.floor(hi)))
        if t == "number":
            lo, hi = self._bounds(s, 1e-3)
            return round(self.rng.uniform(lo, hi), 3)
        if t == "boolean":
            return self.rng.random() < 0.5
        if t == "null":
            return None
        return self._string(s, field)

    def _string(self, s: dict, field: str) -> str:
        fmt = s.get("format")
        if fmt in ("date-time", "date", "time"):
            return {"date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01",
                    "time": "00:00:00"}[fmt]
        self.n += 1
        text = f"synthetic {field} {self.n} for {self.name}"
        text += "." * max(0, s.get("minLength", 0) - len(text))
        return text[: s["maxLength"]] if "maxLength" in s else text

    def corrupt(self, value: Any, schema: Any, kind: str) -> Any:
        """Break `value` the way a content fault says; the result still parses as JSON."""
        s = self.resolve(schema)
        if isinstance(value, dict):
            props = s.get("properties") or {}
            for k in list(value):
                if k in props:
                    value[k] = self.corrupt(value[k], props[k], kind)
            # An extra key wherever extras are not explicitly allowed (strict schemas say False;
            # pydantic models without extra="forbid" say nothing).
            if kind == "extra_key" and s.get("additionalProperties", False) is False:
                value["unexpected_extra"] = "synthetic extra value"
            return value
        if isinstance(value, list):
            prefix, items = s.get("prefixItems") or [], s.get("items", {})
            value = [self.corrupt(x, prefix[i] if i < len(prefix) else items, kind)
                     for i, x in enumerate(value)]
            if kind == "wrong_length":
                if s.get("minItems", 0) > 0:
                    value = value[: s["minItems"] - 1]
                elif "maxItems" in s:
                    missing = s["maxItems"] + 1 - len(value)
                    value += [self.gen(items, "extra", 1) for _ in range(missing)]
            return value
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if kind == "out_of_range" and is_number:
            if "maximum" in s or "exclusiveMaximum" in s:
                return s.get("maximum", s.get("exclusiveMaximum")) + 2  # e.g. a 1-5 score -> 7
            if "minimum" in s or "exclusiveMinimum" in s:
                return s.get("minimum", s.get("exclusiveMinimum")) - 2
        return value


def _text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _prompt_tokens(messages: Any) -> int:
    total = 0
    for m in messages if isinstance(messages, list) else []:
        total += 4  # per-message framing, as OpenAI's own estimate counts it
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            total += _text_tokens(content)
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "image_url":
                    total += IMAGE_TOKENS  # never the data-URL length
                elif isinstance(part, dict):
                    total += _text_tokens(str(part.get("text") or ""))
    return total


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client's pool expects
    timeout = 60  # idle keep-alive connections do not pin a thread forever
    # Headers and body go out in two writes; with Nagle on, the second waits for the client's
    # delayed ACK (~40 ms a request), which would skew throughput benchmarks.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # tests stay quiet; `.requests` is the log

    def _send_json(self, status: int, obj: Any, headers: dict | None = None) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (timeout) or the server is stopping
            self.close_connection = True

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._send_json(status, {"error": {"message": message, "type": "fake_llm_error",
                                           "code": str(status)}}, headers)

    def do_GET(self) -> None:
        fake = self.server.fake
        path = self.path.split("?")[0].rstrip("/")
        fake._record("GET", self.path, None, self.headers, chat=False)
        fake._sleep(fake.latency_s)
        if path.endswith("/models"):
            model = {"id": fake.model, "object": "model", "created": 0, "owned_by": "peakclips"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route for GET {path}")

    def do_POST(self) -> None:
        fake = self.server.fake
        path = self.path.split("?")[0].rstrip("/")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        is_chat = path.endswith("/chat/completions")
        refused = fake._refused_format(body) if is_chat else None
        record = fake._record("POST", self.path, body, self.headers, chat=is_chat and not refused)
        fault = record["fault"] = "refused" if refused else record["fault"]
        fake._sleep(fake.latency_s)
        if not is_chat:
            return self._error(404, f"no route for POST {path}")
        if refused:  # in llama-cpp-python's words: the server cannot make that format
            return self._error(fake.refuse[refused], f"response_format type '{refused}' is not supported; "
                               "expected 'text' or 'json_object'")
        if fault == "drop":
            # Close without a byte of response: the client sees "server disconnected".
            self.close_connection = True
            _abort(self.connection)
            return None
        if fault in STATUS_FAULTS:
            headers = {}
            if fault in ("429", "503"):  # the statuses that carry Retry-After in the wild
                headers = {"Retry-After": f"{fake.retry_after_s:g}",
                           "retry-after-ms": str(int(fake.retry_after_s * 1000))}
            message = f"injected fault {fault}"
            if fault == "401":  # the worst a real server does: echo the key it refused
                message = f"Incorrect API key provided: {self.headers.get('Authorization')}"
            return self._error(STATUS_FAULTS[fault], message, headers)
        if fault == "slow":
            fake._sleep(fake.slow_s)
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            return self._error(400, "body must be a JSON object with a 'messages' list")
        completion = fake._completion(body, fault)
        record["usage"] = completion["usage"]  # what this reply bills, for accounting checks
        self._send_json(200, completion)
        return None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # 16+ clients connect at once; the stdlib default backlog is 5

    def __init__(self, fake: FakeLLMServer, port: int):
        self.fake = fake
        super().__init__((HOST, port), _Handler)

    # Track connections from accept to close, so stop() can abort them and wait until they are gone.
    def process_request(self, request: Any, client_address: Any) -> None:
        self.fake._track(request, True)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        try:
            super().shutdown_request(request)
        finally:
            self.fake._track(request, False)


def _abort(conn: socket.socket) -> None:
    """Wake any reader with EOF now; the close that follows sends RST, not FIN, so no TIME_WAIT
    is left on our port (a server closing first would otherwise hold it for a minute)."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class FakeLLMServer:
    """A local OpenAI-compatible server with scripted replies and deterministic faults.

    faults: {kind: rate} — request i of /chat/completions gets a kind from a hash of (seed, i).
    script: explicit kinds ("ok" or a FAULT_KINDS entry) for requests 0, 1, ...; "ok" after it
    runs out. Overrides `faults`. reply_fn(request_json) -> dict | list | str | None overrides
    fabrication (None falls back); content faults still corrupt a dict/list it returns.
    refuse: {format: status} — requests asking for a response_format type (or "guided_json")
    are answered with that status and a message naming the format.
    """

    def __init__(self, *, port: int = 0, latency_s: float = 0.0,
                 faults: dict[str, float] | None = None, seed: int = 0,
                 script: list[str] | None = None, retry_after_s: float = 0.1,
                 slow_s: float = 5.0, reply_fn: ReplyFn | None = None, model: str = "fake-llm",
                 refuse: dict[str, int] | None = None):
        faults = dict(faults or {})
        for kind in [*faults, *(script or [])]:
            if kind not in FAULT_KINDS and kind != "ok":
                raise ValueError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")
        if sum(faults.values()) > 1 + 1e-9 or any(r < 0 for r in faults.values()):
            raise ValueError("fault rates must be >= 0 and sum to <= 1")
        self.port, self.latency_s, self.faults, self.seed = port, latency_s, faults, seed
        self.script = list(script) if script is not None else None
        self.retry_after_s, self.slow_s = retry_after_s, slow_s
        self.reply_fn, self.model, self.refuse = reply_fn, model, dict(refuse or {})
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._chat_index = 0
        self._conns: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeLLMServer:
        if self._httpd is None:
            self._stopping.clear()
            self._httpd = _HTTPServer(self, self.port)
            # a short poll interval so stop() returns promptly
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="FakeLLMServer",
                                            kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers, close every connection and free the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:  # handlers blocked reading a keep-alive connection see EOF and exit
            _abort(conn)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until every handler has closed its socket
            with self._lock:
                if not self._conns:
                    break
            time.sleep(0.005)

    def __enter__(self) -> FakeLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> tuple[str, int]:
        if self._httpd is None:
            raise RuntimeError("FakeLLMServer is not running")
        return self._httpd.server_address[:2]

    @property
    def base_url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/v1"

    # -- recording ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[dict]:
        """A snapshot of {index, method, path, query, body, fault, time (monotonic s), headers
        (without the key), auth_sha256 (of the Authorization or api-key header), usage (of a 200
        reply, else None)}."""
        with self._lock:
            return list(self._records)

    def count(self, fault: str | None = None, path: str | None = None) -> int:
        """Requests recorded, optionally only those with this fault ("ok" too) or path suffix."""
        return sum(1 for r in self.requests if (fault is None or r["fault"] == fault)
                   and (path is None or r["path"].endswith(path)))

    def reset(self) -> None:
        """Forget recorded requests and restart the fault plan/script from request 0."""
        with self._lock:
            self._records.clear()
            self._chat_index = 0

    def plan(self, n: int) -> list[str]:
        """The fault kinds the next-from-reset chat requests 0..n-1 will get."""
        return [self._fault_for(i) for i in range(n)]

    # -- internals ---------------------------------------------------------------------------
    def _fault_for(self, i: int) -> str:
        if self.script is not None:
            return self.script[i] if i < len(self.script) else "ok"
        # Hash (seed, i) rather than draw from a shared RNG: request i's fault does not depend
        # on which thread got there first.
        digest = hashlib.sha256(f"{self.seed}:{i}".encode()).digest()
        u, acc = int.from_bytes(digest[:8], "big") / 2**64, 0.0
        for kind in FAULT_KINDS:
            acc += self.faults.get(kind, 0.0)
            if u < acc:
                return kind
        return "ok"

    def _refused_format(self, body: Any) -> str | None:
        """The format this request asks for if `refuse` lists it."""
        if not isinstance(body, dict):
            return None
        fmt = body.get("response_format")
        kind = fmt.get("type") if isinstance(fmt, dict) else ("guided_json" if "guided_json" in body else None)
        return kind if kind in self.refuse else None

    def _record(self, method: str, target: str, body: Any, headers: Any, *, chat: bool) -> dict:
        path, _, query = target.partition("?")
        with self._lock:
            fault = "ok"
            if chat:
                fault, self._chat_index = self._fault_for(self._chat_index), self._chat_index + 1
            # OpenAI's clients send the key as a bearer token, Azure's as `api-key`.
            auth = headers.get("Authorization") or headers.get("api-key")
            record = {
                "index": len(self._records), "method": method, "path": path.rstrip("/"), "query": query,
                "body": body, "fault": fault, "time": time.monotonic(),
                # The key is never kept: records may end up in assertion messages. Its hash
                # lets a test check which key was sent.
                "headers": {k.lower(): v for k, v in headers.items()
                            if k.lower() not in ("authorization", "api-key")},
                "auth_sha256": hashlib.sha256(auth.encode()).hexdigest() if auth else None,
                "usage": None,  # set when a 200 reply is sent
            }
            self._records.append(record)
            return record

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)  # stop() wakes sleepers instead of waiting them out

    def _completion(self, body: dict, fault: str) -> dict:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        digest = hashlib.sha256(canonical + f"|{self.seed}".encode()).hexdigest()
        fmt = body.get("response_format") if isinstance(body.get("response_format"), dict) else {}
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") if fmt.get("type") == "json_schema" else None
        if fmt.get("type") == "json_object" and isinstance(fmt.get("schema"), dict):
            schema = fmt["schema"]  # as llama.cpp and llama-cpp-python enforce it
        if schema is None and isinstance(body.get("guided_json"), dict):
            schema = body["guided_json"]  # vLLM's older field
        faker = _SchemaFaker(schema or {}, random.Random(digest), str(spec.get("name") or "reply"))
        value = self.reply_fn(body) if self.reply_fn is not None else None
        if value is None:
            if schema is not None:
                value = faker.gen(schema)
            elif fmt.get("type") == "json_object":
                value = {"result": faker._string({}, "result")}
            else:
                value = f"synthetic reply {faker.rng.randint(1, 999)} from {self.model}"
        if fault in CONTENT_FAULTS and fault != "malformed_json" and not isinstance(value, str):
            value = faker.corrupt(value, schema or {}, fault)
        content = value if isinstance(value, str) else json.dumps(value)
        if fault == "malformed_json":  # fenced and cut short: json.loads fails on any schema
            content = "```json\n" + content[: max(1, len(content) * 2 // 3)]
        finish, completion_tokens = "stop", _text_tokens(content)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and completion_tokens > limit:  # as a real server truncates
            content, finish = content[: limit * CHARS_PER_TOKEN], "length"
            completion_tokens = _text_tokens(content)
        prompt_tokens = _prompt_tokens(body.get("messages"))
        return {
            "id": f"chatcmpl-fake-{digest[:16]}", "object": "chat.completion",
            "created": int(time.time()), "model": str(body.get("model") or self.model),
            "choices": [{"index": 0, "finish_reason": finish, "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }


def fabricate(schema: dict, seed: int = 0, name: str = "reply") -> Any:
    """An instance of `schema`, made as the server makes replies (e.g. for a reply_fn that plays
    a model following a schema it read in the prompt)."""
    return _SchemaFaker(schema, random.Random(seed), name).gen(schema)


def llm_server_fixture(scope: str = "function", **kwargs: Any):
    """A pytest fixture yielding a started FakeLLMServer(**kwargs); in conftest:
    ``llm_server = llm_server_fixture(latency_s=0.0)``."""
    import pytest

    @pytest.fixture(scope=scope)
    def _llm_server():
        with FakeLLMServer(**kwargs) as srv:
            yield srv

    return _llm_server


def _parse_faults(text: str) -> dict[str, float]:
    pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
    return {k.strip(): float(v) for k, v in pairs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.llm_server",
                                description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="127.0.0.1 port (0: pick a free one)")
    p.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    p.add_argument("--faults", type=_parse_faults, default={}, help="e.g. 429=0.1,500=0.1")
    p.add_argument("--script", type=lambda s: [x.strip() for x in s.split(",")], default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--retry-after", type=float, default=0.1)
    p.add_argument("--slow", type=float, default=5.0)
    p.add_argument("--model", default="fake-llm")
    p.add_argument("--refuse", type=lambda t: {k: int(v) for k, v in _parse_faults(t).items()}, default={},
                   help="response formats to refuse, e.g. json_schema=500 (as llama-cpp-python)")
    a = p.parse_args(argv)
    srv = FakeLLMServer(port=a.port, latency_s=a.latency, faults=a.faults, script=a.script,
                        seed=a.seed, retry_after_s=a.retry_after, slow_s=a.slow, model=a.model,
                        refuse=a.refuse)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with srv:
        print(srv.base_url, flush=True)
        try:
            while not done.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
    counts = {k: srv.count(k) for k in ("ok", "refused", *FAULT_KINDS) if srv.count(k)}
    print(f"served {srv.count()} requests: {counts}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
