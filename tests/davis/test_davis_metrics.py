"""The DAVIS J and F measures and their statistics against hand-computed values."""
from __future__ import annotations

import numpy as np
import pytest

from persam_video.davis.metrics import (
    boundary_map,
    decay_bins,
    dilate_stack,
    disk_kernel,
    disk_radius,
    f_measure,
    frame_windows,
    j_measure,
    summarise,
    support_window,
)


def rect(shape, rows, cols) -> np.ndarray:
    """A boolean mask with the inclusive rectangle rows[0]..rows[1] x cols[0]..cols[1] set."""
    mask = np.zeros(shape, bool)
    mask[rows[0]:rows[1] + 1, cols[0]:cols[1] + 1] = True
    return mask


def grid(text: str) -> np.ndarray:
    """A boolean 2-D array from rows of 0/1 characters."""
    return np.array([[c == "1" for c in row.split()] for row in text.strip().splitlines()])


def test_boundary_map_of_an_inner_square():
    mask = grid("""
        0 0 0 0
        0 1 1 0
        0 1 1 0
        0 0 0 0""")
    expected = grid("""
        1 1 1 0
        1 0 1 0
        1 1 1 0
        0 0 0 0""")
    np.testing.assert_array_equal(boundary_map(mask), expected)


def test_boundary_map_at_the_bottom_right_border():
    # Last row: right neighbour only; last column: lower neighbour only; corner never.
    # (Counting the outside as 0 there would mark (2,3) and (3,2) too.)
    mask = grid("""
        0 0 0 0
        0 0 0 0
        0 0 1 1
        0 0 1 1""")
    expected = grid("""
        0 0 0 0
        0 1 1 1
        0 1 0 0
        0 1 0 0""")
    np.testing.assert_array_equal(boundary_map(mask), expected)
    np.testing.assert_array_equal(boundary_map(np.stack([mask, mask])), np.stack([expected] * 2))


def test_a_full_frame_has_no_boundary():
    assert not boundary_map(np.ones((4, 4), bool)).any()


def test_disk_radius_and_kernel():
    assert disk_radius(480, 854) == 8  # ceil(0.008 * 979.65) = ceil(7.84)
    assert disk_radius(48, 64) == 1  # ceil(0.008 * 80) = ceil(0.64)
    assert disk_radius(1080, 1920) == 18  # ceil(0.008 * 2202.9) = ceil(17.6)
    np.testing.assert_array_equal(disk_kernel(1), [[0, 1, 0], [1, 1, 1], [0, 1, 0]])
    assert disk_kernel(8).shape == (17, 17) and disk_kernel(8).sum() == 197


def test_dilation_stays_inside_its_frame():
    maps = np.zeros((2, 3, 5), bool)
    maps[0, 2, 2] = True  # last row of frame 0: must not reach the first row of frame 1
    dilated = dilate_stack(maps, 2)
    assert not dilated[1].any()
    np.testing.assert_array_equal(dilated[0], [[0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [1, 1, 1, 1, 1]])


def test_j_and_f_of_empty_and_full_masks():
    empty, square, full = np.zeros((8, 8), bool), rect((8, 8), (2, 4), (2, 4)), np.ones((8, 8), bool)
    assert j_measure(empty, empty)[0] == 1.0 and f_measure(empty, empty)[0] == 1.0
    # no result boundary, a ground-truth one: P=1, R=0 -> F=0
    assert j_measure(empty, square)[0] == 0.0 and f_measure(empty, square)[0] == 0.0
    # a result boundary, none in the ground truth: P=0, R=1 -> F=0
    assert j_measure(square, empty)[0] == 0.0 and f_measure(square, empty)[0] == 0.0
    # full frames have no boundary at all: P=R=1
    assert j_measure(full, full)[0] == 1.0 and f_measure(full, full)[0] == 1.0
    assert j_measure(full, square)[0] == 9 / 64 and f_measure(full, square)[0] == 0.0


def test_f_of_a_shifted_square_by_hand():
    # 8x8 frame: r = ceil(0.008 * 11.3) = 1, a plus-shaped disk. The 2x2 ground truth at
    # rows 2-3, cols 2-3 has the ring of rows 1-3, cols 1-3 (8 pixels) as boundary; the
    # result, shifted right by 2, the ring of rows 1-3, cols 3-5. Five pixels of each ring
    # lie within 1 of the other: the shared column 3 and its two horizontal neighbours.
    gt, res = rect((8, 8), (2, 3), (2, 3)), rect((8, 8), (2, 3), (4, 5))
    assert j_measure(res, gt)[0] == 0.0
    assert f_measure(res, gt)[0] == pytest.approx(5 / 8, abs=1e-15)


def test_f_of_a_widened_rectangle_by_hand():
    # 48x64 frame, r = 1. Ground truth: 10x10 at rows 10-19, cols 10-19, ring 11x11 = 40
    # pixels. Result: 10x15 at cols 10-24, ring 11x16 = 50 pixels. Precision: 12 + 12 on
    # the top and bottom rows (cols 9..20) + 9 on the left column = 33/50. Recall: 11 + 11
    # + 9 + 2 (ends of the right column) = 33/40. F = 2PR/(P+R) = 11/15.
    gt, res = rect((48, 64), (10, 19), (10, 19)), rect((48, 64), (10, 19), (10, 24))
    assert j_measure(res, gt)[0] == pytest.approx(100 / 150, abs=1e-15)
    assert f_measure(res, gt)[0] == pytest.approx(11 / 15, abs=1e-15)


def test_windows_do_not_change_j_or_f():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:60, :90]
    res = np.stack([(yy - rng.uniform(0, 60)) ** 2 + (xx - rng.uniform(0, 90)) ** 2 < rng.uniform(20, 400)
                    for _ in range(6)])
    gts = np.stack([(yy - rng.uniform(0, 60)) ** 2 + (xx - rng.uniform(0, 90)) ** 2 < rng.uniform(20, 400)
                    for _ in range(6)])
    gts[2] = False
    res[4] = False
    res[5, -3:, :] = True  # touches the bottom border
    window = support_window(res | gts)
    np.testing.assert_array_equal(j_measure(res[window], gts[window]), j_measure(res, gts))
    full_f = f_measure(res, gts)
    np.testing.assert_array_equal(f_measure(res[window], gts[window], radius=disk_radius(60, 90)), full_f)
    a, b = frame_windows(boundary_map(res), boundary_map(gts))
    assert a.sum() == boundary_map(res).sum() and b.sum() == boundary_map(gts).sum()


def test_decay_bins_for_3_and_10_frames():
    # n=3: linspace = 1, 1.5, 2, 2.5, 3 -> rounded (ties up) 1, 2, 2, 3, 3 -> minus 1
    np.testing.assert_array_equal(decay_bins(3), [0, 1, 1, 2, 2])
    # n=10: linspace = 1, 3.25, 5.5, 7.75, 10 -> 1, 3, 6, 8, 10 -> minus 1
    np.testing.assert_array_equal(decay_bins(10), [0, 2, 5, 7, 9])


def test_decay_bins_for_300_frames_do_not_wrap():
    # linspace(1, 300, 5) = 1, 75.75, 150.5, 225.25, 300 -> 1, 76, 151, 225, 300 -> minus 1
    bins = decay_bins(300)
    np.testing.assert_array_equal(bins, [0, 75, 150, 224, 299])
    # The official uint8 cast turns 299 into 43: the last bin x[224:44] is empty, Decay NaN.
    wrapped = bins.astype(np.uint8)
    np.testing.assert_array_equal(wrapped, [0, 75, 150, 224, 43])
    x = (np.arange(300) < 150).astype(float)  # 1 for the first half, 0 after
    assert x[wrapped[3]:wrapped[4] + 1].size == 0
    assert summarise(x)[2] == 1.0  # ours: mean(x[0:76]) - mean(x[224:300]) = 1 - 0


def test_summarise_by_hand():
    # n=4: bins 0, 1, 2, 2, 3 -> first bin x[0:2], last x[2:4]
    mean, recall, decay = summarise([0.2, 0.6, 0.8, 1.0])
    assert mean == pytest.approx(0.65) and recall == 0.75 and decay == pytest.approx(0.4 - 0.9)
    mean, recall, _ = summarise([0.2, np.nan, 1.0])
    assert mean == pytest.approx(0.6) and recall == pytest.approx(1 / 3)
    assert summarise([0.7]) == (0.7, 1.0, 0.0)
