"""Short commands exit with their own exit code, also under load: no thread of a native library
outlives the interpreter and aborts the process at exit ("terminate called without an active
exception", exit 134). The culprit was Arrow's IO thread pool releasing a buffer over Python bytes
during interpreter finalization (peakclips/dataset.py, `read_index`)."""

import json
import subprocess
import sys

from tests.conftest import REPO
from tests.shards import one_sample_dataset
from tests.train.shards import make_sample

THREADS = """
import os, sys
import pyarrow.parquet  # its import starts jemalloc's and OpenBLAS's threads: they are not counted
from peakclips.dataset import read_index
def native_threads():
    return len(os.listdir("/proc/self/task"))
before = native_threads()
rows = read_index(sys.argv[1], "peakclips-000000").to_pylist()
print(json.dumps({"rows": len(rows), "before": before, "after": native_threads()}))
"""


def _dataset(tmp_path):
    doc, mp4 = make_sample("v0", [(0.0, 2.0, "red"), (2.0, 4.0, "green")], {"the red screen": [(0.0, 2.0, "P1")]})
    return one_sample_dataset(tmp_path / "d", doc, mp4)


def test_reading_an_index_starts_no_native_thread(tmp_path):
    out = _dataset(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "import json\n" + THREADS, str(out)], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=True)
    found = json.loads(proc.stdout)
    assert found["rows"] == 1 and found["after"] == found["before"], found


def test_commands_run_three_at_once_exit_cleanly(tmp_path):
    out = _dataset(tmp_path)
    cmd = [sys.executable, "-m", "peakclips.cli", "frames", str(out), "--video-id", "v0", "--query", "0",
           "--k", "4", "--json"]
    codes = []
    for _ in range(8):
        procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(3)]
        for p in procs:
            stdout, stderr = p.communicate(timeout=120)
            codes.append(p.returncode)
            assert p.returncode == 0, (p.returncode, stderr.decode()[-2000:])
            assert len(json.loads(stdout)["timestamps_s"]) == 4
    assert codes == [0] * 24
