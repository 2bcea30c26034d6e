"""The sample on a 2-node Ray cluster started on this machine (`ray start --head` +
`ray start --address`), driven through RAY_ADDRESS like a real cluster run; both nodes must
do work. Everything binds to 127.0.0.1."""

import glob
import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, SAMPLE_CONFIG
from tests.ray_cluster import RAY, LocalCluster

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def two_node_cluster():
    """Head and worker of one CPU each (tests/ray_cluster.py); teardown stops exactly these."""
    cluster = LocalCluster()
    try:
        cluster.add_worker()
        yield cluster.address, cluster.env, cluster.dashboard, cluster.head_temp_dir
    finally:
        cluster.stop()


def test_sample_runs_on_two_nodes_and_both_do_work(two_node_cluster, tmp_path):
    address, cluster_env, _, _ = two_node_cluster
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
    _, cluster_env, dashboard, head_temp = two_node_cluster
    out = tmp_path / "out"
    command = [RAY, "job", "submit", "--address", dashboard, "--working-dir", str(REPO),
               "--entrypoint-num-cpus", "0", "--", sys.executable, "-m", "peakclips.cli", "run",
               "pipelines/sample.yaml", "--output", str(out), "--set", "clip.enabled=false"]
    # The head's job agent registers some seconds after the node is up (longer on a loaded
    # machine); until then Ray refuses the submission with "No available agent", and no job exists.
    deadline = time.time() + 120
    while True:
        proc = subprocess.run(command, cwd=REPO, env=dict(cluster_env, HF_HUB_OFFLINE="1"),
                              capture_output=True, text=True, timeout=900)
        if "No available agent" not in proc.stdout + proc.stderr or time.time() > deadline:
            break
        time.sleep(5)
    agent_log = next(iter(sorted(glob.glob(f"{head_temp}/session_*/logs/dashboard_agent.log"))), None)
    assert proc.returncode == 0, (proc.stdout[-3000:] + proc.stderr[-3000:]
                                  + (open(agent_log).read()[-3000:] if agent_log else "no agent log"))
    assert "succeeded" in proc.stdout + proc.stderr
    stats = json.loads((out / "peakclips-000000_stats.json").read_text())
    assert stats["videos"]["total"] == 6 and stats["videos"]["error"] == 0, stats["errors"]
