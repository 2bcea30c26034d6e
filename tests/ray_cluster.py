"""A Ray cluster of several nodes on this machine, for tests and benchmarks.

Each node is `ray start --block` in its own process group, so `stop()` ends exactly these
processes (`ray stop` would end every Ray instance on the machine). Token auth is on, as on a
real cluster (one fresh token shared by the nodes); everything binds to 127.0.0.1 or the
machine's own address (Ray 2.60).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RAY = os.path.join(os.path.dirname(sys.executable), "ray")


class LocalCluster:
    """A head and `add_worker()` nodes of `num_cpus` each; `dashboard` is the job server URL."""

    def __init__(self, env: dict | None = None, num_cpus: int = 1):
        self.num_cpus = num_cpus
        self.procs: list[subprocess.Popen] = []
        self.temps: list[str] = []
        self.env = dict(env if env is not None else os.environ, RAY_USAGE_STATS_ENABLED="0",
                        RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
        port, dashboard_port = free_port(), free_port()
        self.dashboard = f"http://127.0.0.1:{dashboard_port}"  # the job server lives in the dashboard
        try:
            self._start(["--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                         "--dashboard-port", str(dashboard_port)])
            self.address = wait_for_head(port)
            self._wait(1)
        except BaseException:
            self.stop()
            raise

    @property
    def head_temp_dir(self) -> str:
        return self.temps[0]

    def add_worker(self) -> None:
        self._start(["--address", self.address])
        self._wait(len(self.procs))

    def _start(self, args: list[str]) -> None:
        # Short temp dirs (unix socket paths stay under 108 bytes), one per node: two nodes must
        # not share runtime_resources, or one node's cleanup deletes the other's copy of a job's
        # working_dir. Agents on ports of their own: the defaults (52365, ...) are shared by
        # every Ray instance on the machine, and an agent that cannot bind its HTTP port leaves
        # the head with "No available agent" for job submissions.
        temp = tempfile.mkdtemp(prefix="pcray", dir="/tmp")
        self.temps.append(temp)
        ports = ["--dashboard-agent-listen-port", str(free_port()), "--dashboard-agent-grpc-port", str(free_port()),
                 "--runtime-env-agent-port", str(free_port()), "--metrics-export-port", str(free_port())]
        self.procs.append(subprocess.Popen(
            [RAY, "start", *args, "--temp-dir", temp, *ports, "--num-cpus", str(self.num_cpus),
             "--disable-usage-stats", "--block"],
            env=self.env, start_new_session=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def _wait(self, n: int, timeout: float = 240) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            out = subprocess.run([RAY, "status", "--address", self.address], capture_output=True, text=True,
                                 env=self.env).stdout
            if out.count("node_") >= n:
                return
            time.sleep(1)
        raise TimeoutError(f"{n} Ray nodes did not join")

    def stop(self) -> None:
        for p in reversed(self.procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        for temp in self.temps:
            shutil.rmtree(temp, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_head(port: int, timeout: float = 180) -> str:
    """The head binds to the machine's own address (Ray 2.60); find it from the listening port."""
    deadline = time.time() + timeout
    host = socket.gethostbyname(socket.gethostname())
    while time.time() < deadline:
        for candidate in (host, "127.0.0.1"):
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex((candidate, port)) == 0:
                    return f"{candidate}:{port}"
        time.sleep(0.5)
    raise TimeoutError("the Ray head did not start")
