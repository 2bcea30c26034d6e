"""`peakclips eval` from the command line: the three outputs, offline, in seconds without CLIP; one
line and exit code 2 for what a user must change."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from peakclips.cli import main
from tests.conftest import REPO


def peakclips(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "peakclips.cli", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def test_eval_writes_the_three_outputs(needle_set, tmp_path):
    out, items = needle_set
    proc = peakclips("eval", str(out / "benchmark.jsonl"), "--format", "needle", "--selectors", "uniform,oracle",
                     "--k", "2,4", "--output", str(tmp_path / "e"), "--limit", "5")
    assert proc.returncode == 0, proc.stderr
    assert "| uniform |" in proc.stdout and "results.png" in proc.stdout
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["num_items"] == 5 and results["vlm"] is None
    assert {(r["selector"], r["k"]) for r in results["runs"]} == {(s, k) for s in ("uniform", "oracle") for k in (2, 4)}
    assert all(r["accuracy"] is None and r["selected"] == 5 for r in results["runs"])
    assert (tmp_path / "e" / "results.md").read_text().startswith("# peakclips eval")
    assert (tmp_path / "e" / "results.png").stat().st_size > 1000


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_what_to_change_is_one_line(needle_set, tmp_path, capsys):
    out, _ = needle_set
    bench = str(out / "benchmark.jsonl")
    cases = [
        (["--selectors", "uniform,topk"], "unknown selector 'topk'"),
        (["--selectors", "uniform", "--k", "8,x"], "--k expects budgets"),
        (["--selectors", "uniform", "--vlm-base-url", f"http://127.0.0.1:{free_port()}/v1", "--vlm-model", "m"],
         "the VLM endpoint http://127.0.0.1:"),
        (["--selectors", "uniform", "--vlm-base-url", "http://127.0.0.1:9/v1"], "--vlm-model is not set"),
    ]
    for extra, message in cases:  # in this process: the CLI's main, as the console script calls it
        code = main(["eval", bench, "--format", "needle", "--output", str(tmp_path / "e"), *extra])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.strip().count("\n") == 0, (extra, err)
    proc = peakclips("eval", str(tmp_path / "none.json"), "--format", "mlvu", "--output", str(tmp_path / "e"))
    assert proc.returncode == 2 and "benchmark annotations not found" in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr


@pytest.mark.model
def test_clip_that_does_not_load_is_one_line(needle_set, tmp_path, capsys):
    out, _ = needle_set  # SigLIP's tokenizer comes from the hub, which is offline here
    code = main(["eval", str(out / "benchmark.jsonl"), "--format", "needle", "--output", str(tmp_path / "e"),
                 "--selectors", "uniform,bolt"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "the CLIP selectors (bolt) need the open_clip model ViT-B-16-SigLIP (webli), which could not be loaded" in err
    assert " and)" not in err and "; pass --clip-pretrained" in err  # the hub's sentences whole, not cut mid-word
    # A run that could not start records no settings: the same folder takes another model.
    assert not (tmp_path / "e" / "eval.json").exists()
    code = main(["eval", str(out / "benchmark.jsonl"), "--format", "needle", "--output", str(tmp_path / "e"),
                 "--selectors", "uniform,bolt", "--k", "2", "--limit", "2", "--clip-model", "ViT-B-32",
                 "--clip-pretrained", "none"])
    assert code == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["selectors"]["bolt"]
