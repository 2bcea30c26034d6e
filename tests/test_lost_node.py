"""A node lost mid-run (SPEC section 7): a 3-node cluster on this machine (tests/ray_cluster.py:
a head and two workers of one CPU each, 127.0.0.1), driven through RAY_ADDRESS like a real
cluster run; every process of one worker node is SIGKILLed while videos are in flight (one of
its workers is held, suspended, on a video until others are staged, so there always is one). The run
finishes by itself, its shards are byte for byte those of an uninterrupted build, and the videos
already staged when the node died are not processed again (their staged files stay untouched
until their shard is finalized). What happens when the head dies: docs/architecture.md."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time

import psutil
import pytest

from peakclips.config import load_config
from peakclips.verify import verify
from tests.conftest import REPO, SAMPLE_CONFIG
from tests.ray_cluster import LocalCluster
from tests.shards import (
    build_in_process,
    leftovers,
    run_command,
    small_manifest,
    snapshot,
    staged_files,
)

pytestmark = [pytest.mark.slow, pytest.mark.cluster, pytest.mark.faults]


@pytest.fixture
def three_node_cluster():
    cluster = LocalCluster()
    try:
        cluster.add_worker()
        cluster.add_worker()
        yield cluster
    finally:
        cluster.stop()


class StagedFiles(threading.Thread):
    """Watches the staged files that exist at `freeze()`: each must keep its inode until it is
    removed (a file written again would be a new inode: atomic writes rename a new file in)."""

    def __init__(self, out):
        super().__init__(daemon=True)
        self.out, self.halt, self.frozen, self.rewritten = out, threading.Event(), {}, []

    def current(self) -> dict:
        found = {}
        for p in staged_files(self.out, "*"):
            try:
                found[p] = p.stat().st_ino
            except FileNotFoundError:
                continue
        return {p: ino for p, ino in found.items() if ".tmp-" not in p.name}

    def freeze(self) -> None:
        """The files of the videos staged now (a record, and candidate frames if it has them)."""
        now = self.current()
        staged = {p.with_suffix("") for p in now if p.suffix == ".json"}
        self.frozen = {p: ino for p, ino in now.items() if p.with_suffix("") in staged}
        self.start()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            now = self.current()
            self.rewritten = sorted(set(self.rewritten) | {p.name for p, ino in self.frozen.items()
                                                           if p in now and now[p] != ino})


def hold_a_video(cluster: LocalCluster):
    """Suspend (SIGSTOP) a worker process of node 1 or 2 that holds a video (faults.guarded names
    the stage and video in its title): that video stays in flight on the node, however fast the
    others go, until the node is killed. Returns (node, process), or None when none holds one now."""
    for node in (1, 2):
        for p in cluster.node_processes(node):
            try:
                if not (p.cmdline() or [""])[0].startswith("ray::peakclips"):
                    continue
                p.suspend()
                if (p.cmdline() or [""])[0].startswith("ray::peakclips"):  # still on it once stopped
                    return node, p
                p.resume()  # it finished the video meanwhile
            except Exception:  # noqa: BLE001 - exited meanwhile
                continue
    return None


def test_a_worker_node_killed_mid_run_changes_nothing_in_the_output(three_node_cluster, tmp_path):
    cluster = three_node_cluster
    manifest, overrides = small_manifest(tmp_path)
    # Without the query-dedup embedder the highlights actor starts in a second, not in 10-20 s
    # (importing its model on a loaded machine): the test takes half as long.
    overrides.append("highlights.filters.dedup_queries=false")
    baseline, out = tmp_path / "baseline", tmp_path / "out"
    build_in_process(load_config(SAMPLE_CONFIG, overrides), manifest, baseline)

    env = dict(cluster.env, RAY_ADDRESS=cluster.address, HF_HUB_OFFLINE="1")
    log = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen(run_command(manifest, out, overrides, "--progress", "5"), cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    staged = StagedFiles(out)
    held, killed = None, None
    deadline = time.monotonic() + 600
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if held is None:
                held = hold_a_video(cluster)
            elif killed is None and staged_files(out, "*.json"):  # others went on and were staged
                staged.freeze()  # videos staged before the node dies
                killed = cluster.kill_node(held[0])
            time.sleep(0.05)
        proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
        if held and not killed:
            with contextlib.suppress(psutil.Error):  # the assertion below says what went wrong
                held[1].resume()
        staged.halt.set()
        log.close()
    text = (tmp_path / "run.log").read_text()
    assert killed, f"held {held}, but no video was staged before the run ended: nothing was tested\n{text[-3000:]}"
    assert proc.returncode == 0, text[-4000:]
    assert staged.frozen and staged.rewritten == [], f"{staged.rewritten}\n{text[-4000:]}"
    assert snapshot(out) == snapshot(baseline)  # sample by sample, byte for byte; index; stats
    assert leftovers(out) == [] and verify(str(out)) == (4, [])
