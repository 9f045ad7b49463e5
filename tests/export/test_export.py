"""`persam-video export`: overlay, matte and cut-out pixels, --objects, mp4 output, one-line errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli, write_frame_folder
from PIL import Image

from persam_video.export import contour_mask, matte_frame, overlay_frame
from persam_video.io.frames import open_frames
from persam_video.io.masks import DAVIS_PALETTE, write_label_png

SIZE = (35, 51)  # odd on purpose: the mp4 path must pad to even sizes
N_FRAMES = 4
# id -> (top, bottom, left, right) (inclusive), away from the border and from each other
RECTS = {1: (4, 15, 5, 20), 3: (18, 30, 28, 46)}


def rect_mask(k: int, shrink: int = 0) -> np.ndarray:
    top, bottom, left, right = RECTS[k]
    mask = np.zeros(SIZE, dtype=bool)
    mask[top + shrink:bottom + 1 - shrink, left + shrink:right + 1 - shrink] = True
    return mask


def labels_for(t: int) -> np.ndarray:
    """Two rectangles (ids 1 and 3) and a void band; object 3 is absent from the last frame."""
    labels = np.zeros(SIZE, dtype=np.uint8)
    labels[rect_mask(1)] = 1
    if t < N_FRAMES - 1:
        labels[rect_mask(3)] = 3
    labels[33, :] = 255
    return labels


@pytest.fixture
def data(tmp_path):
    """A lossless frame folder of random pixels and its label PNGs."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (N_FRAMES, *SIZE, 3), dtype=np.uint8)
    video = write_frame_folder(tmp_path / "frames", frames)
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(N_FRAMES):
        write_label_png(masks / f"{t:05d}.png", labels_for(t))
    return video, masks, frames


def expected_overlay(frame: np.ndarray, t: int, ids=(1, 3)) -> np.ndarray:
    """The overlay built by hand: blend inside, plain colour on a 2-px inner ring, frame elsewhere."""
    out = frame.copy()
    labels = labels_for(t)
    for k in ids:
        if not (labels == k).any():
            continue
        colour = DAVIS_PALETTE[k].astype(np.float64)
        whole, core = rect_mask(k), rect_mask(k, shrink=2)
        out[whole] = colour.astype(np.uint8)
        out[core] = np.rint(0.5 * frame[core] + 0.5 * colour).astype(np.uint8)
    return out


def read_pngs(folder: Path):
    files = sorted(folder.glob("*.png"))
    assert [f.stem for f in files] == [f"{t:05d}" for t in range(N_FRAMES)]
    assert not list(folder.glob("*.tmp*"))
    images = []
    for f in files:
        with Image.open(f) as image:
            images.append((image.mode, np.array(image)))
    return images


def test_overlay_png_folder_is_the_exact_blend_with_contours(data, tmp_path, capsys):
    video, masks, frames = data
    out = tmp_path / "overlay"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "overlay", "--quiet"], capsys)
    assert code == 0, err
    for t, (mode, image) in enumerate(read_pngs(out)):
        assert mode == "RGB"
        assert np.array_equal(image, expected_overlay(frames[t], t)), t
        assert np.array_equal(image[33], frames[t][33])  # void is not an object
    # object 3 vanished in the last frame: its place shows the plain frame there
    last = read_pngs(out)[-1][1]
    assert np.array_equal(last[rect_mask(3)], frames[-1][rect_mask(3)])


def test_overlay_objects_picks(data, tmp_path, capsys):
    video, masks, frames = data
    out = tmp_path / "overlay3"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "overlay",
                            "--objects", "3", "--quiet"], capsys)
    assert code == 0, err
    image = read_pngs(out)[0][1]
    assert np.array_equal(image, expected_overlay(frames[0], 0, ids=(3,)))
    assert np.array_equal(image[rect_mask(1)], frames[0][rect_mask(1)])


def test_contour_is_a_two_pixel_inner_band_also_between_touching_objects():
    labels = np.zeros((20, 20), dtype=np.uint8)
    labels[2:18, 2:10] = 1
    labels[2:18, 10:18] = 2
    band = contour_mask(labels)
    assert not band[labels == 0].any()
    assert band[5, 8] and band[5, 9] and not band[5, 7]   # 1's side of the shared edge
    assert band[5, 10] and band[5, 11] and not band[5, 12]  # 2's side
    assert band[2, 5] and band[3, 5] and not band[4, 5]


def test_matte_is_0_255_on_the_objects_and_objects_picks(data, tmp_path, capsys):
    video, masks, _ = data
    out_all, out_one = tmp_path / "matte", tmp_path / "matte1"
    for out, extra in ((out_all, []), (out_one, ["--objects", "1"])):
        code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "matte", "--quiet",
                                *extra], capsys)
        assert code == 0, err
    for t, ((mode, everything), (_, one)) in enumerate(zip(read_pngs(out_all), read_pngs(out_one))):
        assert mode == "L" and everything.dtype == np.uint8
        labels = labels_for(t)
        assert np.array_equal(everything, np.where((labels == 1) | (labels == 3), 255, 0))
        assert np.array_equal(one, np.where(labels == 1, 255, 0))


def test_feathered_matte_is_smooth(data, tmp_path, capsys):
    video, masks, _ = data
    out = tmp_path / "soft"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "matte",
                            "--feather", "3", "--quiet"], capsys)
    assert code == 0, err
    soft = read_pngs(out)[0][1].astype(int)
    hard = matte_frame(labels_for(0))
    between = (soft > 0) & (soft < 255)
    assert between.sum() > 50  # soft edges exist
    assert not between[rect_mask(1, shrink=4)].any() and (soft[rect_mask(1, shrink=4)] == 255).all()
    assert (soft[:, :2] == 0).all()  # far from every object
    assert np.abs(np.diff(soft, axis=1)).max() < 128 and np.abs(np.diff(soft, axis=0)).max() < 128
    assert np.abs(np.diff(hard.astype(int), axis=1)).max() == 255


def test_cutout_alpha_is_the_matte_and_rgb_the_frame(data, tmp_path, capsys):
    video, masks, frames = data
    out = tmp_path / "cutout"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "cutout",
                            "--objects", "3", "--feather", "1.5", "--quiet"], capsys)
    assert code == 0, err
    for t, (mode, image) in enumerate(read_pngs(out)):
        assert mode == "RGBA"
        assert np.array_equal(image[..., :3], frames[t])
        assert np.array_equal(image[..., 3], matte_frame(labels_for(t), [3], feather=1.5))
    assert (read_pngs(out)[0][1][rect_mask(3, shrink=3), 3] == 255).all()
    assert (read_pngs(out)[-1][1][..., 3] == 0).all()  # object 3 is gone in the last frame


def test_mp4_overlay_has_every_frame(data, tmp_path, capsys):
    video, masks, frames = data
    out = tmp_path / "out" / "overlay.mp4"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "overlay",
                            "--fps", "10"], capsys)
    assert code == 0, err
    assert "overlay" in err and str(out) in err
    assert not list(out.parent.glob("*.tmp*"))
    back = open_frames(out)
    assert len(back) == N_FRAMES
    assert back.size == (36, 52)  # padded to even sizes for yuv420p
    for frame in back.frames():
        want = expected_overlay(frames[frame.index], frame.index).astype(int)
        got = frame.image[:SIZE[0], :SIZE[1]].astype(int)
        core = rect_mask(1, shrink=3)  # lossy: compare the mean colour over a flat-ish area
        assert np.abs(got[core].mean(axis=0) - want[core].mean(axis=0)).max() < 12


def test_overlay_frame_leaves_unchosen_pixels_alone():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    labels = np.zeros((10, 12), dtype=np.uint8)
    labels[2:8, 2:9] = 5
    out = overlay_frame(image, labels, objects=[2])
    assert np.array_equal(out, image)


def test_missing_mask_png_is_one_line_naming_the_frame(data, tmp_path, capsys):
    video, masks, _ = data
    (masks / "00002.png").unlink()
    out = tmp_path / "o"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "matte"], capsys)
    assert_one_line_error(code, err, "00002", "missing")
    assert not out.exists() or not list(out.iterdir())


def test_frames_before_the_first_mask_are_left_out(data, tmp_path, capsys):
    """After `segment --start 2` there are no masks for frames 0-1: export starts at frame 2."""
    video, masks, frames = data
    for name in ("00000", "00001"):
        (masks / f"{name}.png").unlink()
    out = tmp_path / "o"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "cutout", "--quiet"],
                           capsys)
    assert code == 0, err
    files = sorted(out.glob("*.png"))
    assert [f.stem for f in files] == [f"{t:05d}" for t in range(2, N_FRAMES)]
    with Image.open(files[0]) as image:
        assert np.array_equal(np.array(image)[..., :3], frames[2])


def test_mask_size_mismatch_is_one_line(data, tmp_path, capsys):
    video, masks, _ = data
    write_label_png(masks / "00001.png", np.zeros((SIZE[0], SIZE[1] + 2), dtype=np.uint8))
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / "o", "--kind", "overlay",
                            "--quiet"], capsys)
    assert_one_line_error(code, err, "00001.png", f"{SIZE[1] + 2}x{SIZE[0]}")
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / "o.mp4", "--kind", "overlay",
                            "--quiet"], capsys)
    assert_one_line_error(code, err, "00001.png")
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("extra, needle", [
    (["--kind", "cutout", "--out", "{tmp}/m.mp4"], "cannot be video files"),
    (["--kind", "matte", "--out", "{tmp}/m", "--fps", "5"], "frame rate applies only to an export written as a video"),
    (["--kind", "overlay", "--out", "{tmp}/o.mp4", "--fps", "0"], "frame rate must be above 0"),
    (["--kind", "overlay", "--out", "{tmp}/o", "--feather", "2"], "feathering applies to matte, cutout"),
    (["--kind", "cutout", "--out", "{tmp}/c", "--objects", "1,x"], "--objects"),
    (["--kind", "matte", "--out", "{tmp}/blocker/sub"], "cannot write"),
    (["--kind", "overlay", "--out", "{tmp}/blocker/o.mp4"], "cannot write"),
])
def test_bad_options_and_unwritable_outputs_are_one_line(data, tmp_path, capsys, extra, needle):
    video, masks, _ = data
    (tmp_path / "blocker").write_text("a file, not a folder")
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    code, _, err = run_cli(["export", video, "--masks", masks, "--quiet", *extra], capsys)
    assert_one_line_error(code, err, needle)


def test_missing_masks_folder_is_one_line(data, tmp_path, capsys):
    video, _, _ = data
    code, _, err = run_cli(["export", video, "--masks", tmp_path / "nope", "--out", tmp_path / "o",
                            "--kind", "matte"], capsys)
    assert_one_line_error(code, err, "masks folder not found")
