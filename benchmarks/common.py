"""Helpers shared by the benchmarks: cached synthetic media, running a command as a child
process while recording its wall time, CPU time and peak memory (its own `wait4` rusage, so
each run is measured alone), and sampling the memory of a process tree (a run and its Ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
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


class TreeSampler(threading.Thread):
    """Peak memory of a process tree, sampled every `period` seconds until `stop()`: the root's
    (the driver's) RSS; the sums over the Ray worker processes (`ray::...`) of RSS and of PSS
    (RSS counts the object store's shared pages once per process that touched them; PSS shares
    them out, so its sum is what the workers hold together); Ray's daemons' RSS; the object
    store's pages in use (the tmpfs blocks of the raylet's plasma file); how many distinct
    worker processes ran."""

    KEYS = ("driver_rss", "workers_rss", "workers_pss", "daemons_rss", "workers", "object_store")

    def __init__(self, pid: int, period: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.period, self.halt = pid, period, threading.Event()
        self.peak = dict.fromkeys(self.KEYS, 0)
        self.series: list[tuple] = []
        self.by_title: dict[str, float] = {}  # peak summed RSS of the workers with one process title
        self.worker_pids: set[int] = set()

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        started = time.perf_counter()
        while not self.halt.wait(self.period):
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return
            now = dict.fromkeys(self.KEYS, 0)
            titles: dict[str, int] = {}
            for p in procs:
                try:
                    if p.pid == self.pid:
                        now["driver_rss"] = p.memory_info().rss
                    elif (title := (p.cmdline() or [""])[0]).startswith("ray::"):
                        mem = p.memory_full_info()
                        titles[title] = titles.get(title, 0) + mem.rss
                        now["workers_rss"] += mem.rss
                        now["workers_pss"] += mem.pss
                        now["workers"] += 1
                        self.worker_pids.add(p.pid)
                    else:
                        now["daemons_rss"] += p.memory_info().rss
                        if "raylet" in title:
                            now["object_store"] += plasma_bytes(p.pid)
                except psutil.Error:  # exited between listing and reading
                    continue
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
            for title, rss in titles.items():
                self.by_title[title] = max(self.by_title.get(title, 0), rss / 2**20)
            self.series.append((round(time.perf_counter() - started, 1),
                                *(round(now[k] / 2**20) for k in ("driver_rss", "workers_rss", "workers_pss"))))

    def stop(self) -> dict:
        self.halt.set()
        self.join()
        return {k: (v / 2**20 if k != "workers" else v) for k, v in self.peak.items()}


def plasma_bytes(raylet_pid: int) -> int:
    """Bytes of the object store's shared-memory file that hold pages (tmpfs allocates a page when
    it is first written), found through the raylet's open file descriptors."""
    total = 0
    fds = f"/proc/{raylet_pid}/fd"
    try:
        names = os.listdir(fds)
    except OSError:
        return 0
    for fd in names:
        try:
            if "plasma" in os.readlink(f"{fds}/{fd}"):
                total += os.stat(f"{fds}/{fd}").st_blocks * 512
        except OSError:
            continue
    return total


def tool(name: str) -> str:
    """A console script of this virtual environment (the venv need not be activated)."""
    return str(Path(sys.executable).parent / name)


def median(values: list[float]) -> float:
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2
