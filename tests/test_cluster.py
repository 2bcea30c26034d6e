"""The sample on a 2-node Ray cluster started on this machine (`ray start --head` +
`ray start --address`), driven through RAY_ADDRESS like a real cluster run; both nodes must
do work. Everything binds to 127.0.0.1."""

import json
import os
import secrets
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, SAMPLE_CONFIG

pytestmark = [pytest.mark.slow, pytest.mark.cluster]
RAY = os.path.join(os.path.dirname(sys.executable), "ray")


@pytest.fixture
def two_node_cluster():
    """Head and worker started with `--block` in their own process groups, so teardown stops
    exactly this cluster (`ray stop` would also stop any other Ray instance on the machine)."""
    import tempfile

    port = _free_port()
    # Short temp dir: Ray's unix socket paths must stay under 108 bytes.
    temp_dir = tempfile.mkdtemp(prefix="pcray", dir="/tmp")
    # Token auth on, as on a real cluster: every process of this cluster shares one fresh token.
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token",
               RAY_AUTH_TOKEN=secrets.token_hex(16))
    common = ["--num-cpus", "1", "--disable-usage-stats", "--block"]
    dashboard_port = _free_port()  # the job server (for `ray job submit`) lives in the dashboard
    procs = [subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1",
                               "--dashboard-port", str(dashboard_port), "--temp-dir", temp_dir, *common],
                              env=env, start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    address = None
    try:
        address = _wait_for_head(port)
        # Its own temp dir: two nodes on one machine must not share runtime_resources, or one
        # node's cleanup deletes the other's copy of a job's working_dir.
        worker_temp = tempfile.mkdtemp(prefix="pcray", dir="/tmp")
        procs.append(subprocess.Popen([RAY, "start", "--address", address, "--temp-dir", worker_temp, *common], env=env,
                                      start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _wait_for_nodes(address, 2, env)
        yield address, env, f"http://127.0.0.1:{dashboard_port}"
    finally:
        for p in reversed(procs):
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_head(port: int, timeout: float = 60) -> str:
    """The head binds to the machine's own address (Ray 2.60); find it from the listening port."""
    import socket

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


def _wait_for_nodes(address: str, n: int, env: dict, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = subprocess.run([RAY, "status", "--address", address], capture_output=True, text=True, env=env).stdout
        if out.count("node_") >= n:
            return
        time.sleep(1)
    raise TimeoutError(f"{n} Ray nodes did not join")


def test_sample_runs_on_two_nodes_and_both_do_work(two_node_cluster, tmp_path):
    address, cluster_env, _ = two_node_cluster
    out = tmp_path / "out"
    env = dict(cluster_env, RAY_ADDRESS=address, HF_HUB_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG),
                           "--manifest", str(REPO / "manifests/sample.jsonl"), "--output", str(out),
                           "--set", "clip.enabled=false", "--set", "shard_size=3"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    nodes = {}
    for shard in (0, 1):
        stats = json.loads((out / f"peakclips-{shard:06d}_stats.json").read_text())
        assert stats["videos"]["total"] == 3
        for node, n in stats["nodes"].items():
            nodes[node] = nodes.get(node, 0) + n
    assert len(nodes) == 2, nodes  # both nodes ran stages


def test_ray_job_submit_runs_the_same_command(two_node_cluster, tmp_path):
    """`ray job submit -- peakclips run ...` works like a direct run (the job gets RAY_ADDRESS)."""
    _, cluster_env, dashboard = two_node_cluster
    out = tmp_path / "out"
    proc = subprocess.run([RAY, "job", "submit", "--address", dashboard, "--working-dir", str(REPO),
                           "--entrypoint-num-cpus", "0", "--", sys.executable, "-m", "peakclips.cli", "run",
                           "pipelines/sample.yaml", "--output", str(out), "--set", "clip.enabled=false"],
                          cwd=REPO, env=dict(cluster_env, HF_HUB_OFFLINE="1"), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr
    stats = json.loads((out / "peakclips-000000_stats.json").read_text())
    assert stats["videos"]["total"] == 6 and stats["videos"]["error"] == 0, stats["errors"]
