"""`persam-video export` for editors: object removal, background blur/replace/keep, bad input, one line each."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli, write_frame_folder
from PIL import Image

from persam_video.export import export
from persam_video.export.background import blur_background
from persam_video.export.holes import feather, fill_from_border, grow
from persam_video.export.removal import Remover, inpaint_frame
from persam_video.io.masks import write_label_png

SIZE = (72, 128)
N = 14


def scene():
    """A panning random texture (the true background) with a red square (id 1) moving across it."""
    rng = np.random.default_rng(1)
    texture = cv2.resize(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8), (190, 120), interpolation=cv2.INTER_CUBIC)
    frames, labels, backgrounds = [], [], []
    for t in range(N):
        background = texture[10 + t // 2:10 + t // 2 + SIZE[0], 20 + t:20 + t + SIZE[1]].copy()
        label = np.zeros(SIZE, np.uint8)
        label[20:50, 10 + 6 * t:10 + 6 * t + 26] = 1
        frame = background.copy()
        frame[label == 1] = (220, 20, 20)
        frames.append(frame)
        labels.append(label)
        backgrounds.append(background)
    return np.stack(frames), np.stack(labels), np.stack(backgrounds)


@pytest.fixture
def clip(tmp_path):
    frames, labels, backgrounds = scene()
    video = write_frame_folder(tmp_path / "frames", frames)
    masks = tmp_path / "masks"
    masks.mkdir()
    for t, label in enumerate(labels):
        write_label_png(masks / f"{t:05d}.png", label)
    return video, masks, frames, labels, backgrounds


def psnr(a, b, region):
    error = ((a[region].astype(float) - b[region].astype(float)) ** 2).mean()
    return 10 * np.log10(255.0 ** 2 / max(error, 1e-9))


def read_folder(folder):
    return np.stack([np.array(Image.open(p)) for p in sorted(folder.glob("*.png"))])


def test_removal_fills_the_hole_with_the_background_other_frames_show(clip, tmp_path, capsys):
    video, masks, frames, labels, backgrounds = clip
    out = tmp_path / "clean"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "remove", "--dilate", "2",
                            "--quiet"], capsys)
    assert code == 0, err
    clean = read_folder(out)
    assert clean.shape == frames.shape
    ours, telea = [], []
    for t in range(N):
        hole = grow(labels[t] == 1, 2)
        far = ~grow(hole, 4)
        assert np.array_equal(clean[t][far], frames[t][far])  # only the hole and its seam change
        red = np.abs(clean[t][labels[t] == 1].astype(int) - (220, 20, 20)).sum(axis=1)
        assert np.median(red) > 100  # the red square is gone
        ours.append(psnr(clean[t], backgrounds[t], hole))
        telea.append(psnr(inpaint_frame(frames[t], hole), backgrounds[t], hole))
    assert np.mean(ours) > np.mean(telea) + 6, (ours, telea)


def test_remover_holds_a_bounded_window_and_gives_every_frame_in_order():
    frames, labels, _ = scene()
    remover = Remover(SIZE, reach=3)
    given = []
    for t in range(N):
        given += remover.push(frames[t], labels[t] == 1)
        assert len(remover._slots) <= 2 * 3 + 1
        assert len(given) == max(0, t + 1 - 3)  # a frame comes out once 3 later frames are in
    given += remover.finish()
    assert len(given) == N
    empty = Remover(SIZE, reach=2)
    still = [empty.push(f, np.zeros(SIZE, bool)) for f in frames[:3]]
    assert np.array_equal(sum(still, [])[0], frames[0])  # nothing masked: the frame itself


def test_fill_from_border_is_smooth_and_keeps_known_values():
    field = np.zeros((40, 60, 2), np.float32)
    field[..., 0] = np.linspace(0, 10, 60)[None, :]
    hole = np.zeros((40, 60), bool)
    hole[10:30, 20:40] = True
    filled = fill_from_border(np.where(hole[..., None], 99.0, field).astype(np.float32), hole)
    assert np.array_equal(filled[~hole], field[~hole])
    assert np.abs(filled[hole] - field[hole]).max() < 3.0  # the 99s are gone, the ramp roughly continues


def test_blur_keep_and_replace_change_only_the_background(clip, tmp_path, capsys):
    video, masks, frames, labels, _ = clip
    picture = np.zeros((30, 40, 3), np.uint8)
    picture[:, :, 2] = 200
    Image.fromarray(picture).save(tmp_path / "sky.png")
    runs = {"blur": ["--strength", "20"], "keep": ["--colour", "0,0,255"],
            "replace": ["--background", tmp_path / "sky.png"]}
    for kind, extra in runs.items():
        code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / kind, "--kind", kind,
                                "--feather", "2", "--quiet", *extra], capsys)
        assert code == 0, (kind, err)
    t = 5
    inside = cv2.erode((labels[t] == 1).astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    outside = ~grow(labels[t] == 1, 4)
    for kind in runs:
        result = read_folder(tmp_path / kind)[t]
        assert np.array_equal(result[inside], frames[t][inside]), kind
    blurred = read_folder(tmp_path / "blur")[t]
    expected = blur_background(frames[t], feather(labels[t] == 1, 2), 20)
    assert np.array_equal(blurred, expected)
    assert np.abs(blurred[outside].astype(int) - frames[t][outside]).mean() > 10
    assert (read_folder(tmp_path / "keep")[t][outside] == (0, 0, 255)).all()
    assert (read_folder(tmp_path / "replace")[t][outside] == (0, 0, 200)).all()


def test_bad_input_is_one_line_and_writes_nothing(clip, tmp_path, capsys, monkeypatch):
    video, masks, _, _, _ = clip
    (tmp_path / "broken.png").write_bytes(b"not a picture")
    cases = [
        (["--kind", "remove", "--objects", "7"], "appear in no mask"),
        (["--kind", "replace", "--background", tmp_path / "broken.png"], "cannot read the background"),
        (["--kind", "replace", "--background", tmp_path / "nowhere.jpg"], "background not found"),
        (["--kind", "replace"], "needs --background"),
        (["--kind", "blur", "--strength", "0"], "strength"),
        (["--kind", "remove", "--dilate", "-1"], "--dilate"),
        (["--kind", "keep", "--colour", "red"], "--colour"),
        (["--kind", "remove", "--format", "prores"], "remove export can be written as png or mp4"),
    ]
    for extra, needle in cases:
        out = tmp_path / "out.mp4"
        code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--quiet", *extra], capsys)
        assert_one_line_error(code, err, needle)
        assert not out.exists() and not list(tmp_path.glob(".*tmp*"))
    # an encoder the bundled ffmpeg lacks
    monkeypatch.setattr("persam_video.export.formats.ffmpeg_encoders", lambda: frozenset({"libx264"}))
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / "c.mov", "--kind", "cutout",
                            "--format", "prores", "--quiet"], capsys)
    assert_one_line_error(code, err, "cannot encode prores")
    assert not (tmp_path / "c.mov").exists()


def test_masks_of_another_size_or_count_are_one_line(clip, tmp_path, capsys):
    video, masks, _, labels, _ = clip
    write_label_png(masks / f"{N:05d}.png", labels[0])  # one mask more than frames
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / "o.mp4", "--kind", "remove",
                            "--quiet"], capsys)
    assert_one_line_error(code, err, f"{N:05d}.png", "name no frame")
    (masks / f"{N:05d}.png").unlink()
    (masks / f"{N - 1:05d}.png").unlink()  # one fewer
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / "o.mp4", "--kind", "remove",
                            "--quiet"], capsys)
    assert_one_line_error(code, err, f"{N - 1:05d}", "missing")
    write_label_png(masks / f"{N - 1:05d}.png", np.zeros((SIZE[0] + 2, SIZE[1]), np.uint8))
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", tmp_path / "o.mp4", "--kind", "remove",
                            "--objects", "1", "--quiet"], capsys)
    assert_one_line_error(code, err, f"{SIZE[1]}x{SIZE[0] + 2}")
    assert not (tmp_path / "o.mp4").exists()


def test_removal_library_call_writes_an_mp4(clip, tmp_path):
    video, masks, _, _, _ = clip
    result = export(video, masks, tmp_path / "clean.mp4", kind="remove", objects=[1], fps=12)
    assert result.format == "mp4" and result.frames == N and result.is_video
    assert (tmp_path / "clean.mp4").stat().st_size > 0
