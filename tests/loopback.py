"""A real HTTP server on 127.0.0.1 for download tests: each test says how to answer a GET.

Tests talk to loopback only (SPEC section 7); names that should resolve elsewhere are answered by
a stubbed resolver, never by connecting anywhere else.
"""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable, Iterator


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    answer: Callable = None  # set per server
    seen: list = None

    def log_message(self, *a):
        pass

    def do_GET(self):
        self.seen.append({"path": self.path, "headers": dict(self.headers)})
        try:
            type(self).answer(self)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client hung up: what several tests want it to do


@contextlib.contextmanager
def serve(answer: Callable[[http.server.BaseHTTPRequestHandler], None], host: str = "127.0.0.1",
          port: int = 0) -> Iterator[tuple[str, list]]:
    """Yields (base URL, the requests seen). `answer(handler)` writes the response."""
    handler = type("Handler", (_Handler,), {"answer": staticmethod(answer), "seen": []})
    srv = http.server.ThreadingHTTPServer((host, port), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{srv.server_address[1]}", handler.seen
    finally:
        srv.shutdown()
        srv.server_close()


def send(handler, body: bytes, status: int = 200, headers: dict | None = None) -> None:
    """A whole response with a Content-Length."""
    handler.send_response(status)
    for k, v in {"Content-Length": str(len(body)), **(headers or {})}.items():
        handler.send_header(k, v)
    handler.end_headers()
    handler.wfile.write(body)
