"""The shape of `peakclips`: library functions raise typed errors, only peakclips/cli.py prints
them; exit codes 0 ok, 1 the thing checked failed, 2 a usage or input error (one line on stderr,
no traceback); programming errors keep their traceback."""

from __future__ import annotations

import pytest

from peakclips.cli import main
from tests import media
from tests.shards import video_row, write_dataset


@pytest.fixture
def dataset(tmp_path):
    hl = [{"start_s": 0.0, "end_s": 5.0, "priority": "P1", "scene_ids": [0], "reason": "r"}]
    return write_dataset(tmp_path / "ds", [(video_row("v0", [0.0, 5.0], 10.0, [
        {"query": "the first half", "llm": [5, 1], "highlights": hl}]), None)])


def test_ok_is_0_and_the_result_goes_to_stdout(dataset, capsys):
    assert main(["frames", str(dataset), "--video-id", "v0", "--query", "0", "--k", "3"]) == 0
    out = capsys.readouterr()
    assert "mode=focused" in out.out and len(out.out.splitlines()) == 4 and out.err == ""


@pytest.mark.parametrize("argv, message", [
    (["frames", "{ds}", "--video-id", "nope", "--query", "0", "--k", "3"], "video nope is not in"),
    (["frames", "{ds}", "--video-id", "v0", "--query", "0", "--k", "0"], "k must be a positive integer"),
    (["select", "{video}", "--query", "q", "--checkpoint", "{ds}/no-such-checkpoint"], "is not a folder"),
    (["run", "{ds}/no-such.yaml"], "config file not found"),
])
def test_input_errors_are_one_line_and_exit_2(dataset, tmp_path, capsys, argv, message):
    video = media.make_cuts_clip(tmp_path / "v.mp4", cut_frames=[12], n_frames=24).path
    code = main([a.format(ds=dataset, video=video) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("peakclips: error: ") and message in err and err.count("\n") == 1, err


def test_verify_defects_exit_1(dataset, capsys):
    assert main(["verify", str(dataset)]) == 0
    (dataset / "peakclips-000000.tar.tmp-deadbeef").write_bytes(b"left by a killed writer")
    assert main(["verify", str(dataset)]) == 1
    assert "temporary file peakclips-000000.tar.tmp-deadbeef left" in capsys.readouterr().out


def test_programming_errors_keep_their_traceback(dataset, monkeypatch):
    import peakclips.stats

    def broken(output):
        raise KeyError("a bug, not the user's input")

    monkeypatch.setattr(peakclips.stats, "dataset_stats", broken)
    with pytest.raises(KeyError, match="a bug"):
        main(["stats", str(dataset)])
