"""`persam-video demo`: the synthetic clip end to end, and missing bundled weights as one plain line."""
from __future__ import annotations

import re

import numpy as np
import pytest
from conftest import assert_one_line_error

from persam_video.cli import main
from persam_video.cli.demo import DEMO_SIZE, Score, format_scores, score_masks
from persam_video.io.frames import open_frames
from persam_video.io.masks import read_label_png
from persam_video.model import loading as models


def test_demo_writes_clip_truth_masks_overlay_and_prints_scores(small_checkpoint, tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--frames", "8", "--checkpoint", str(small_checkpoint),
                 "--model-type", "small", "--device", "cpu", "--fit-iterations", "20", "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    text = captured.out
    # random weights: the value means nothing, but it is printed and is a score
    match = re.search(r"J&F mean: ([0-9.]+) \(J ([0-9.]+), F ([0-9.]+)\)", text)
    assert match, text
    jf, j, f = (float(v) for v in match.groups())
    assert 0.0 <= j <= 1.0 and 0.0 <= f <= 1.0 and 0.0 <= jf <= 1.0
    assert abs(jf - (j + f) / 2) < 2e-3
    rows = re.findall(r"^\s+(\d+)\s+([0-9.]+)\s+([0-9.]+)\s+([0-9.]+)$", text, flags=re.M)
    assert len(rows) >= 2, text  # one row per object
    names = [f"{i:05d}" for i in range(8)]
    for folder in ("masks", "ground_truth"):
        assert sorted(p.stem for p in (out / folder).glob("*.png")) == names
    for video in ("clip.mp4", "overlay.mp4"):
        assert str(out / video) in text
        source = open_frames(out / video)
        assert len(source) == 8 and source.size == DEMO_SIZE
    truth = read_label_png(out / "ground_truth" / "00000.png")
    assert truth.shape == DEMO_SIZE
    assert np.array_equal(read_label_png(out / "masks" / "00000.png"), truth)  # the seed frame


def test_demo_without_bundled_weights_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "no-weights")
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--frames", "5", "--device", "cpu", "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, "bundled small weights are missing")
    assert not (out / "masks").exists()  # nothing ran


@pytest.mark.parametrize("option, message", [(["--quality-gate", "2"], "--quality-gate must be a ratio in [0, 1]"),
                                             (["--box-growth", "0.5"], "--box-growth must be a factor >= 1"),
                                             (["--margin", "-5"], "--margin must be a number of pixels >= 0"),
                                             (["--keep-box-frames", "-1"],
                                              "--keep-box-frames must be a number of frames"),
                                             (["--redetect-ratio", "-1"], "--redetect-ratio must be a ratio in [0, 1]"),
                                             (["--fit-iterations", "-5"], "--fit-iterations must be a number of steps"),
                                             (["--threads", "0"], "--threads must be at least 1, not 0"),
                                             (["--threads", "-3"], "--threads must be at least 1, not -3")])
def test_demo_with_a_bad_method_option_writes_nothing(tmp_path, capsys, option, message):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--frames", "5", *option, "--quiet"])
    assert_one_line_error(code, capsys.readouterr().err, message)
    assert not out.exists()


def test_scores_leave_out_first_and_last_frame():
    truth = [np.zeros((20, 20), np.uint8) for _ in range(4)]
    for t in truth:
        t[5:15, 5:15] = 1
    perfect = [t.copy() for t in truth]
    perfect[0][:] = 0  # first and last are not scored
    perfect[-1][:] = 0
    (score,) = score_masks(perfect, truth, [1])
    assert score.j == 1.0 and score.f == 1.0
    half = [t.copy() for t in truth]
    half[1][5:15, 10:15] = 0  # J 0.5 on frame 1, 1.0 on frame 2
    (score,) = score_masks(half, truth, [1])
    assert abs(score.j - 0.75) < 1e-9 and score.f < 1.0
    assert "J&F mean: 0.500 (J 0.500, F 0.500)" in format_scores([Score(1, 0.25, 0.75), Score(2, 0.75, 0.25)])
