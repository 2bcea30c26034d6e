"""The shot detectors: CombinedDetector's score equals ContentDetector's, and each of its rules
does what its docstring says on clips with known content (synthetic and the bundled CC-BY ones)."""

import numpy as np
import pytest
import scenedetect
from scenedetect.common import FrameTimecode, Timecode

from peakclips.detect import DETECTORS, CombinedDetector, make_detector
from peakclips.video import Scaler, iter_frames
from tests import media
from tests.conftest import REPO

VIDEOS = REPO / "manifests" / "videos"


def detect(path, name="combined", width=256) -> list[float]:
    """Cut times from one of our detectors, fed the way the scenes stage feeds it."""
    scaler, det, cuts, tc = Scaler(), make_detector(name, None, 0.6, 24.0), [], None
    for d in iter_frames(str(path)):
        size = (width, round(d.frame.height * width / d.frame.width / 2) * 2)
        tc = FrameTimecode(Timecode(pts=d.pts, time_base=d.time_base), fps=24.0)
        cuts += det.process_frame(tc, scaler.array(d.frame, *size))
    cuts += det.post_process(tc)
    return [c.seconds for c in cuts]


def test_score_is_content_detectors_content_val():
    rng = np.random.default_rng(0)
    frames = [rng.integers(40, 255, (36, 64, 3), dtype=np.uint8) for _ in range(4)]
    stats = scenedetect.StatsManager()
    content = scenedetect.ContentDetector()
    content.stats_manager = stats
    ours = CombinedDetector()
    for i, img in enumerate(frames):
        tc = FrameTimecode(i, fps=24.0)
        content.process_frame(tc, img)
        ours.process_frame(tc, img)
    for i in range(1, 4):
        expected = stats.get_metrics(FrameTimecode(i, fps=24.0), ["content_val"])[0]
        assert ours._ring[i].score == pytest.approx(expected, abs=1e-6)


def test_hard_cuts_are_exact(tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[24, 60, 100], n_frames=130)
    assert detect(info.path) == pytest.approx([24 / 24, 60 / 24, 100 / 24])


def test_fade_through_black_is_one_cut_mid_black(tmp_path):
    for fade_len, black_len in [(8, 6), (4, 10)]:
        info = media.make_fade_clip(tmp_path / "f.mp4", fade_len=fade_len, black_len=black_len)
        cuts = detect(info.path)
        assert len(cuts) == 1 and abs(cuts[0] - info.cut_times_s[0]) <= 2 / 24 + 1e-6, (fade_len, cuts)


def test_flash_and_fast_motion_are_not_cuts(tmp_path):
    for n in (1, 2, 3):
        assert detect(media.make_flash_clip(tmp_path / f"fl{n}.mp4", flash_len=n).path) == []
    assert detect(media.make_fast_motion_clip(tmp_path / "fast.mp4", pan_px=40).path) == []


def test_similar_colours_cut_is_found(tmp_path):
    info = media.make_similar_colours_clip(tmp_path / "s.mp4")
    assert detect(info.path) == pytest.approx(info.cut_times_s)
    assert detect(info.path, "content") == []  # what the adaptive rule adds


def test_sintel_cuts_that_content_detector_misses():
    cuts = detect(VIDEOS / "sintel_10s_640x360.mp4")
    truth = [2.42, 3.17, 4.00, 4.92, 5.83, 7.33, 8.71]  # manifests/reference/sintel_10s.yaml
    assert len(cuts) == len(truth) and all(abs(c - t) < 0.05 for c, t in zip(cuts, truth))


def test_a_car_passing_the_lens_is_not_a_cut():
    path = VIDEOS / "caminandes1_10s_640x360.mp4"  # one static shot (reference annotations)
    assert detect(path) == []
    assert any(abs(c - 4.29) < 0.05 for c in detect(path, "content"))  # ContentDetector's false cut


@pytest.mark.parametrize("name", DETECTORS)
def test_every_detector_runs(name, tmp_path):
    info = media.make_cuts_clip(tmp_path / "c.mp4", cut_frames=[30], n_frames=60)
    cuts = detect(info.path, name)
    assert any(abs(c - 30 / 24) <= 2 / 24 for c in cuts), (name, cuts)


def test_unknown_detector_is_a_programming_error():
    with pytest.raises(ValueError, match="combined"):
        make_detector("nope", None, 0.6, 24.0)
