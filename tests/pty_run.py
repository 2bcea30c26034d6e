"""Run a command the way a user types it: in a real pseudo-terminal, as the terminal's
foreground job (Python's `pty.fork`: the child is a session leader whose controlling terminal is
the pty). Every test and benchmark otherwise runs without a terminal, which hides the class of
bug where a background process of the terminal's session is stopped by SIGTTOU/SIGTTIN.
"""

from __future__ import annotations

import os
import pty
import select
import signal
import time
from dataclasses import dataclass


@dataclass
class PtyResult:
    returncode: int | None
    """None when the command did not finish within the timeout (it was killed)."""
    output: str
    stopped: list[str]
    """Processes of the command's session found stopped (state T) when it timed out."""


def session_processes(sid: int) -> list:
    import psutil

    found = []
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == sid:
                found.append(p)
        except (ProcessLookupError, PermissionError):
            continue
    return found


def kill_session(sid: int) -> None:
    """SIGKILL every process of session `sid` (Ray workers live in their own process groups)."""
    import psutil

    for p in session_processes(sid):
        try:
            p.kill()
        except psutil.Error:
            continue


def run_in_pty(cmd: list[str], timeout_s: float, cwd: str | None = None, env: dict | None = None) -> PtyResult:
    pid, fd = pty.fork()
    if pid == 0:  # the child: session leader, foreground job of the pty
        try:
            if cwd:
                os.chdir(cwd)
            os.execvpe(cmd[0], cmd, env if env is not None else os.environ)
        finally:
            os._exit(127)
    output, status = bytearray(), None
    deadline = time.monotonic() + timeout_s
    try:
        while status is None and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: every holder of the terminal has closed it
                    data = b""
                output += data
                if data:
                    continue
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = raw
        stopped = []
        if status is None:
            import psutil

            for p in session_processes(pid):
                try:
                    if p.status() == psutil.STATUS_STOPPED:
                        stopped.append(f"{p.pid} {' '.join(p.cmdline())[:100]}")
                except psutil.Error:
                    continue
    finally:
        kill_session(pid)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        while True:  # what the command printed last
            try:
                ready, _, _ = select.select([fd], [], [], 0.1)
                data = os.read(fd, 65536) if ready else b""
            except OSError:
                data = b""
            if not data:
                break
            output += data
        os.close(fd)
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    return PtyResult(code, output.decode(errors="replace"), stopped)
