"""The run's progress display (peakclips/progress.py): what a line says, a live bar on a terminal,
plain lines elsewhere, and log lines that never share a line with the bar. The whole command
under a pseudo-terminal is tested in tests/test_terminal.py."""

from __future__ import annotations

import io
import os
import time

from peakclips.progress import Progress, format_duration


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_line_has_counts_rate_eta_shards_and_llm_usage():
    clock = Clock()
    p = Progress(total=10, shards=4, done=2, stream=io.StringIO(), clock=clock)
    for status in ("ok", "ok", "dropped", "error"):
        p.video_done(status, llm_calls=5, cost_usd=0.01)
    p.shard_done()
    clock.now += 120  # 4 videos in 2 minutes: 2/min; 4 left: 2 minutes
    assert p.line() == ("6/10 videos 60% | ok 2 dropped 1 error 1 | 2.0/min | ETA 2m00s | shards 1/4 | "
                        "LLM 20 calls $0.04 | 2m00s")


def test_plain_lines_when_not_a_terminal():
    out, logged = io.StringIO(), []
    with Progress(total=3, shards=1, stream=out, interval_s=0.05, log=logged.append) as p:
        p.video_done("ok")
        time.sleep(0.3)
        p.log("a line of the run's log")
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and all(line.startswith("progress: ") for line in lines)
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert lines[-1].startswith("progress: 1/3 videos 33% | ok 1 dropped 0 error 0")  # the final counts
    assert logged == ["a line of the run's log"]


def test_a_live_bar_on_a_terminal_and_log_lines_on_their_own():
    leader, follower = os.openpty()
    try:
        with open(follower, "w", closefd=False) as tty:
            logged = []

            def log(message):
                logged.append((message, screen()))

            def screen(until: str = "\x1b[K"):
                # The pty hands written bytes to the reader asynchronously (the kernel's line
                # discipline runs later): read until the expected ending is there, or 5 s.
                os.set_blocking(leader, False)
                text, deadline = "", time.monotonic() + 5
                while not text.endswith(until) and time.monotonic() < deadline:
                    try:
                        text += os.read(leader, 65536).decode()
                    except BlockingIOError:
                        time.sleep(0.01)
                return text

            with Progress(total=4, shards=2, stream=tty, interval_s=60, log=log) as p:
                assert p.live and p.interval_s == 1.0  # a terminal is redrawn every second
                time.sleep(1.3)
                drawn = screen()
                p.video_done("ok")
                p.log("shard 0 done")
            final = screen(until="\r\n")
    finally:
        os.close(leader)
        os.close(follower)
    assert drawn.startswith("\r[") and drawn.endswith("\x1b[K") and "0/4 videos" in drawn
    message, before = logged[0]
    assert message == "shard 0 done" and before == "\r\x1b[K"  # the bar is wiped before the line
    assert "1/4 videos 25%" in final and final.endswith("\r\n")  # redrawn, then left on its own line


def test_durations_read_as_a_person_would():
    assert [format_duration(s) for s in (5, 75, 3 * 3600 + 14 * 60)] == ["5s", "1m15s", "3h14m"]
