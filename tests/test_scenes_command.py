"""`peakclips scenes VIDEO`: JSON and text output, frames written by timestamp, errors as codes
(exit 1: the video was examined and the pipeline would reject it)."""

import json

from peakclips.cli import main
from tests import media


def test_json_output_and_frames_dir(tmp_path, capsys):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[30, 60], n_frames=90)
    out_dir = tmp_path / "frames"
    rc = main(["scenes", info.path, "--json", "--frames-dir", str(out_dir),
               "--set", "frames.num_candidates=16", "--set", "frames.per_scene=2"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    assert report["probe"]["width"] == 320 and report["probe"]["codec"] == "h264"
    assert report["detector"] == "combined" and report["decoded_frames"] == 90
    assert [(s["start_frame"], s["end_frame"]) for s in report["scenes"]] == [(0, 30), (30, 60), (60, 90)]
    assert {"start_s", "end_s"} <= set(report["scenes"][0])
    candidates = sorted((out_dir / "candidates").iterdir())
    assert len(candidates) == 16 and candidates[0].name == f"000_{report['candidate_times_s'][0]:09.3f}s.jpg"
    scene_files = sorted(p.name for p in (out_dir / "scenes").iterdir())
    assert len(scene_files) == 3 * 2 and scene_files[0].startswith("0000_0_")


def test_text_output_and_detector_choice(tmp_path, capsys):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[30], n_frames=60)
    assert main(["scenes", info.path, "--detector", "histogram"]) == 0
    out = capsys.readouterr().out
    assert "2 scenes (histogram detector" in out and "frames 30 - 60" in out


def test_bad_file_is_an_error_code_not_a_crash(tmp_path, capsys):
    info = media.make_audio_only(tmp_path / "a.mp4")
    assert main(["scenes", info.path, "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "ingest:no_video_stream"
    one = media.make_one_frame_clip(tmp_path / "one.mp4")
    assert main(["scenes", one.path]) == 1
    assert "scenes:too_few_frames" in capsys.readouterr().err
