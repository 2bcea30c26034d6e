"""A real S3 API on 127.0.0.1 for tests and benchmarks: moto's server (`moto[server]`), run as a
child process on a free port and stopped by its PID.

PeakClips talks HTTP to it through s3fs/botocore, configured only by the standard variables
(`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`), as it
would talk to AWS; nothing is mocked inside the test process. The server logs one line per
request it answers (`"GET /bucket/key HTTP/1.1" 200`), which `requests()` reads back: a test
counts what reached the server.

    with MotoServer() as s3:
        s3.env()                 # the variables to set (the `s3_env` fixture sets them)
        s3.requests("videos/")   # request lines whose path holds "videos/"
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

# Test credentials: moto accepts any; these only make botocore sign its requests.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "peakclips-test", "AWS_SECRET_ACCESS_KEY": "peakclips-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}
# Variables that would point botocore somewhere else or at other credentials.
CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CONFIG_FILE",
           "AWS_SHARED_CREDENTIALS_FILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE")
_REQUEST = re.compile(r'"(?:\x1b\[[0-9;]*m)*([A-Z]+) (\S+) HTTP/[0-9.]+(?:\x1b\[[0-9;]*m)*" (\d{3})')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    def __init__(self):
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="moto-", suffix=".log")[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        # No instance-metadata lookups (they would leave loopback); no config files of this machine.
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_EC2_METADATA_DISABLED": "true",
                "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull, **CREDENTIALS}

    def start(self, timeout: float = 60) -> MotoServer:
        for _ in range(3):  # a port taken between free_port() and the bind: try another
            self.port = free_port()
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                              str(self.port)], stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2).close()
                    return self
                except OSError:
                    time.sleep(0.2)
            self.stop()
        raise RuntimeError(f"moto's server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def requests(self, contains: str = "") -> list[tuple[str, str, int]]:
        """(method, path, status) of every request answered so far whose path holds `contains`."""
        text = self.log.read_text(errors="replace")
        return [(m, p, int(s)) for m, p, s in _REQUEST.findall(text) if contains in p]

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
        self.log.unlink(missing_ok=True)


@dataclass
class Bucket:
    """A bucket on a MotoServer (the `s3` fixture makes a fresh one per test)."""

    name: str
    fs: object  # an s3fs.S3FileSystem talking to the server
    server: MotoServer

    @classmethod
    def create(cls, server: MotoServer) -> Bucket:
        import s3fs

        name = f"peakclips-{uuid.uuid4().hex[:10]}"
        fs = s3fs.S3FileSystem(use_listings_cache=False)
        fs.mkdir(name)
        return cls(name, fs, server)

    def url(self, key: str = "") -> str:
        return f"s3://{self.name}/{key}"

    def requests(self, contains: str = "") -> list[tuple[str, str, int]]:
        """The server's answered requests to this bucket whose path holds `contains`."""
        return [r for r in self.server.requests(contains) if r[1].startswith(f"/{self.name}")]

    def keys(self) -> list[str]:
        """Every object's key, sorted."""
        return sorted(p.split("/", 1)[1] for p in self.fs.find(self.name))
