"""Run the benchmarks: `python -m benchmarks.run [NAME ...]` (all by default).

Each `benchmarks/bench_<name>.py` has `main(out_dir) -> str`: it measures, writes its raw
numbers to `out_dir/<name>.json`, and returns a Markdown table for docs/benchmarks.md. This
runner prints the machine and date first, so a pasted result always says where it came from.
"""

from __future__ import annotations

import datetime
import importlib
import os
import platform
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} CPUs, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    from peakclips.terminal import detach_stdin

    detach_stdin()  # nothing the benchmarks start may inherit a terminal (peakclips/terminal.py)
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    out = Path("bench-out")
    out.mkdir(exist_ok=True)
    print(f"# PeakClips benchmarks, {datetime.date.today().isoformat()}\n\nMachine: {machine()}\n")
    for name in names:
        module = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"## {name}\n")
        print(module.main(out))
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
