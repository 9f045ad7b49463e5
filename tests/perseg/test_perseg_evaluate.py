"""`perseg eval`: eval_miou.py's measures on hand-computed folders, its reading of masks, one-line errors."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image

from persam_video.io.masks import write_label_png
from persam_video.perseg.evaluate import evaluate, read_binary

SIZE = (6, 8)


def box(y0, y1, x0, x1):
    mask = np.zeros(SIZE, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def write_grey(path, mask):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def make_perseg(root, objects):
    """objects: name -> list of (stem, truth, prediction); truths as palette PNGs (index 1), like PerSeg's."""
    for name, photos in objects.items():
        for stem, truth, predicted in photos:
            (root / "Images" / name).mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.zeros(SIZE + (3,), np.uint8)).save(root / "Images" / name / f"{stem}.jpg")
            (root / "Annotations" / name).mkdir(parents=True, exist_ok=True)
            write_label_png(root / "Annotations" / name / f"{stem}.png", truth.astype(np.uint8))
            write_grey(root / "results" / name / f"{stem}.png", predicted)


@pytest.fixture
def perseg(tmp_path):
    wrong_reference = box(0, 6, 0, 8)  # the reference's prediction is never scored
    objects = {
        "dog": [("00", box(0, 2, 0, 2), wrong_reference),
                ("01", box(0, 4, 0, 4), box(0, 4, 0, 2)),      # I 8, U 16, T 16
                ("02", box(2, 4, 2, 6), box(2, 4, 4, 8))],     # I 4, U 12, T 8
        "cat": [("00", box(0, 1, 0, 1), wrong_reference),
                ("01", box(1, 3, 1, 3), box(1, 3, 1, 3)),      # I 4, U 4, T 4
                ("100", box(0, 2, 0, 4), np.zeros(SIZE, bool))],  # I 0, U 8, T 8 (scored: not the reference)
    }
    make_perseg(tmp_path, objects)
    return tmp_path


def test_counts_are_summed_per_object_and_averaged_over_objects(perseg):
    report = evaluate(perseg, perseg / "results")
    scores = {o.name: o for o in report.objects}
    dog, cat = scores["dog"], scores["cat"]
    assert (dog.photos, dog.intersection, dog.union, dog.target) == (2, 12, 28, 24)
    assert (cat.photos, cat.intersection, cat.union, cat.target) == (2, 4, 12, 12)
    assert dog.iou == pytest.approx(12 / 28) and dog.accuracy == pytest.approx(12 / 24)
    assert report.miou == pytest.approx((12 / 28 + 4 / 12) / 2)
    assert report.macc == pytest.approx((12 / 24 + 4 / 12) / 2)


def test_the_command_prints_percentages_and_chooses_objects(perseg, capsys):
    code, out, err = run_cli(["perseg", "eval", "--root", perseg, "--results", perseg / "results"], capsys)
    assert code == 0, err
    assert f"mIoU: {100 * (12 / 28 + 4 / 12) / 2:.2f}, mAcc: {100 * (12 / 24 + 4 / 12) / 2:.2f}" in out
    code, out, _ = run_cli(["perseg", "eval", "--root", perseg, "--results", perseg / "results", "--objects", "cat"],
                           capsys)
    assert code == 0 and f"mIoU: {100 * 4 / 12:.2f}" in out and "dog" not in out


def test_masks_are_read_as_opencv_grey_above_zero(tmp_path):
    colour = np.zeros(SIZE + (3,), np.uint8)
    colour[0, 0] = (128, 0, 0)  # the DAVIS / PerSeg index 1 red: grey 38
    colour[0, 1] = (0, 0, 1)    # a blue of 1: grey rounds to 0, not foreground
    colour[0, 2] = (0, 2, 0)    # a green of 2: grey 1
    Image.fromarray(colour).save(tmp_path / "m.png")
    mask = read_binary(tmp_path / "m.png")
    assert mask[0, :3].tolist() == [True, False, True] and mask.sum() == 2


def test_a_missing_reference_prediction_is_an_error_not_a_shift(perseg, capsys):
    (perseg / "results" / "dog" / "00.png").unlink()
    code, _, err = run_cli(["perseg", "eval", "--root", perseg, "--results", perseg / "results"], capsys)
    assert_one_line_error(code, err, "object dog", "2 result file(s) for 3 annotation(s)")


@pytest.mark.parametrize("breakage, needle", [
    ("no_annotations", "is not a PerSeg folder"),
    ("no_results", "no results for object"),
    ("unknown_object", "no object ghost"),
])
def test_bad_folders_are_one_line_errors(perseg, capsys, breakage, needle):
    args = ["perseg", "eval", "--root", perseg, "--results", perseg / "results"]
    if breakage == "no_annotations":
        (perseg / "Annotations").rename(perseg / "Moved")
    elif breakage == "no_results":
        (perseg / "results" / "cat").rename(perseg / "results" / "kitten")
    else:
        args += ["--objects", "ghost"]
    code, _, err = run_cli(args, capsys)
    assert_one_line_error(code, err, needle)
