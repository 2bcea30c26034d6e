"""Helpers shared by the benchmarks: cached synthetic media, and running a command as a child
process while recording its wall time, CPU time and peak memory (its own `wait4` rusage, so
each run is measured alone)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def cached_media(path: Path, make) -> dict:
    """`make(path)` -> tests.media.MediaInfo, once; later runs read its JSON next to the file."""
    meta = path.with_suffix(path.suffix + ".json")
    if not (path.exists() and meta.exists()):
        path.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(make(path).as_dict()))
    return json.loads(meta.read_text())


def measure(cmd: list[str], **kw) -> dict:
    """Run `cmd` to completion: wall seconds, CPU seconds (user + sys, all threads), peak RSS MiB."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err, **kw)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: {stderr[-2000:]}")
    # ru_maxrss: Linux carries the parent's peak RSS into the child across fork and exec, so it
    # is only the child's own peak when this process is small (bench_preprocess reads VmHWM).
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
            "stdout": stdout}


def tool(name: str) -> str:
    """A console script of this virtual environment (the venv need not be activated)."""
    return str(Path(sys.executable).parent / name)


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
