"""Commands typed in a terminal finish as they do without one (SPEC section 7, issue 17).

Ray starts its workers in the terminal's session but in process groups of their own, i.e. as
background jobs of the terminal: one that touches the terminal is stopped by SIGTTOU and the run
hangs. PySceneDetect runs the ffmpeg CLI when imported, and ffmpeg configures a terminal on its
stdin; so these tests need ffmpeg on PATH (make test installs it) and a real pseudo-terminal.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.conftest import REPO, SAMPLE_CONFIG, SAMPLE_MANIFEST
from tests.pty_run import kill_session, run_in_pty

pytestmark = pytest.mark.slow

ENV = dict(os.environ, HF_HUB_OFFLINE="1", RAY_USAGE_STATS_ENABLED="0", TERM="xterm")


def _explain(result) -> str:
    return f"exit {result.returncode}; stopped processes: {result.stopped}\n{result.output[-3000:]}"


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory):
    """`peakclips run` of the sample, typed in a terminal."""
    assert shutil.which("ffmpeg"), "these tests need the ffmpeg CLI on PATH (make sysdeps installs it)"
    out = tmp_path_factory.mktemp("pty") / "out"
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(SAMPLE_MANIFEST),
           "--output", str(out)]
    return out, run_in_pty(cmd, timeout_s=420, cwd=str(REPO), env=ENV)


def test_the_sample_run_finishes_in_a_terminal(terminal_run):
    out, result = terminal_run
    assert result.returncode == 0, _explain(result)
    assert "done in" in result.output and "1 shard(s) built" in result.output
    assert (out / "peakclips-000000_stats.json").exists()


def test_a_reader_command_finishes_in_a_terminal(terminal_run):
    out, _ = terminal_run
    cmd = [sys.executable, "-m", "peakclips.cli", "frames", str(out), "--video-id", "sintel_10s", "--query", "0",
           "--k", "4", "--json"]
    result = run_in_pty(cmd, timeout_s=120, cwd=str(REPO), env=ENV)
    assert result.returncode == 0, _explain(result)
    assert '"timestamps_s"' in result.output


def test_peakclips_train_finishes_in_a_terminal(terminal_run, tmp_path):
    out, _ = terminal_run
    cmd = [sys.executable, "-m", "peakclips.train.cli", "sft1", "--config", "pipelines/train/sft1.yaml",
           f"run.output_dir={tmp_path}", f"data.shards={out}", "model.tiny=true", "data.num_frames=8",
           "data.max_pixels=1568", "data.min_pixels=784", "data.num_workers=1", "data.shuffle_buffer=4",
           "optim.batch_size=1", "optim.grad_accum=1", "optim.max_steps=2", "optim.save_steps=2"]
    result = run_in_pty(cmd, timeout_s=300, cwd=str(REPO), env=ENV)
    assert result.returncode == 0, _explain(result)
    assert (tmp_path / "sft1" / "final").is_dir()


def test_a_background_job_that_touches_the_terminal_is_noticed():
    """The mechanism itself, and the watch that catches it: a child in its own process group (as
    a Ray worker is) runs the ffmpeg CLI with the terminal on stdin, is stopped by SIGTTOU, and
    StoppedWatch says so instead of waiting forever."""
    assert shutil.which("ffmpeg")
    script = textwrap.dedent("""
        import subprocess, sys, threading
        from peakclips.terminal import StoppedWatch
        noticed = threading.Event()
        def on_stopped(message):
            print("NOTICED:", message, flush=True)
            noticed.set()
        with StoppedWatch(on_stopped, interval_s=0.5):
            child = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.call(['ffmpeg', '-v', 'quiet'])"],
                                     process_group=0)
            noticed.wait(30)
        child.kill()
        sys.exit(0 if noticed.is_set() else 1)
    """)
    result = run_in_pty([sys.executable, "-c", script], timeout_s=60, cwd=str(REPO), env=ENV)
    assert result.returncode == 0, _explain(result)
    assert "NOTICED: process" in result.output and "stopped" in result.output


def test_a_stopped_worker_ends_the_run_with_one_sentence(tmp_path):
    """Should a Ray worker of `peakclips run` still end up stopped, the run ends within a minute
    with one sentence (exit 1) instead of hanging. Here a decode worker is stopped by hand."""
    cmd = [sys.executable, "-m", "peakclips.cli", "run", str(SAMPLE_CONFIG), "--manifest", str(SAMPLE_MANIFEST),
           "--output", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        worker = None
        while worker is None and time.monotonic() < deadline and proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                try:
                    if child.cmdline()[:1] and child.cmdline()[0].startswith("ray::"):
                        worker = child
                except psutil.Error:
                    continue
            time.sleep(0.2)
        assert worker is not None, "no Ray task worker appeared"
        worker.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        _, err = proc.communicate(timeout=120)
        assert time.monotonic() - stopped_at < 60
        assert proc.returncode == 1, err[-2000:]
        lines = [line for line in err.splitlines() if line.startswith("peakclips: error:")]
        assert len(lines) == 1 and f"process {worker.pid}" in lines[0] and "stopped" in lines[0]
    finally:
        kill_session(proc.pid)
        proc.wait()
