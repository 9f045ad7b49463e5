"""`persam-video segment` end to end, and every bad input as a one-line error."""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import CLIP_SIZE, assert_one_line_error, relabel, run_cli, write_frame_folder, write_mp4, write_seed
from PIL import Image

from persam_video.cli import main
from persam_video.cli.common import add_method_options, tracker_options
from persam_video.demo_clip import make_clip
from persam_video.io.masks import DAVIS_PALETTE, read_label_png
from persam_video.resume_file import RESUME_NAME


@pytest.fixture(scope="module")
def video50(tmp_path_factory):
    """A 50-frame synthetic mp4 with two objects seeded as ids 3 and 7."""
    folder = tmp_path_factory.mktemp("video50")
    clip = make_clip(seed=5, n_frames=50, size=CLIP_SIZE, n_objects=2, camera_motion=False)
    video = write_mp4(folder / "clip.mp4", clip.frames)
    seed = write_seed(folder / "seed.png", relabel(clip.labels[0], {1: 3, 2: 7}))
    return video, seed, clip


def test_segment_follows_two_objects_through_a_50_frame_mp4(video50, small_checkpoint, tmp_path, capsys):
    video, seed, _ = video50
    out = tmp_path / "masks"
    code, _, err = run_cli(["segment", video, "--mask", seed, "--out", out, "--checkpoint", small_checkpoint,
                            "--device", "cpu", "--fit-iterations", "50"], capsys)
    assert code == 0, err
    files = sorted(out.glob("*.png"))
    assert [f.stem for f in files] == [f"{i:05d}" for i in range(50)]
    assert not list(out.glob("*.tmp*"))
    with Image.open(files[10]) as image:
        assert image.mode == "P"
        assert np.array_equal(np.array(image.getpalette()[:768]).reshape(256, 3), DAVIS_PALETTE)
    assert np.array_equal(read_label_png(files[0]), read_label_png(seed))
    seen = set()
    for f in files:
        seen |= set(np.unique(read_label_png(f)).tolist())
    assert seen == {0, 3, 7}
    assert "50 masks" in err and "image encoder" in err and "frames/s" in err


def test_objects_start_and_state_files(video50, small_checkpoint, tmp_path, capsys):
    video, seed, clip = video50
    frames = write_frame_folder(tmp_path / "frames", clip.frames[:8])
    seed5 = write_seed(tmp_path / "seed5.png", relabel(clip.labels[5], {1: 3, 2: 7}))
    common = ["--checkpoint", small_checkpoint, "--device", "cpu", "--fit-iterations", "20", "--quiet"]
    code, _, err = run_cli(["segment", frames, "--mask", seed5, "--out", tmp_path / "a", "--objects", "7",
                            "--start", "5", "--save-state", tmp_path / "s.pt"] + common, capsys)
    assert code == 0, err
    assert sorted(f.stem for f in (tmp_path / "a").glob("*.png")) == ["00005", "00006", "00007"]
    assert set(np.unique(read_label_png(tmp_path / "a" / "00005.png"))) == {0, 7}
    assert (tmp_path / "s.pt").is_file()
    code, _, err = run_cli(["segment", frames, "--mask", seed5, "--out", tmp_path / "b", "--objects", "7",
                            "--start", "5", "--load-state", tmp_path / "s.pt"] + common, capsys)
    assert code == 0, err
    for name in ("00006", "00007"):
        assert np.array_equal(read_label_png(tmp_path / "a" / f"{name}.png"),
                              read_label_png(tmp_path / "b" / f"{name}.png"))


@pytest.fixture
def inputs(tmp_path, clip):
    frames = write_frame_folder(tmp_path / "frames", clip.frames[:6])
    seed = write_seed(tmp_path / "seed.png", clip.labels[0])
    return frames, seed


def bad(args, capsys, small_checkpoint, *needles):
    code, _, err = run_cli(list(args) + ["--checkpoint", small_checkpoint, "--device", "cpu", "--quiet"], capsys)
    assert_one_line_error(code, err, *needles)


def test_missing_video(tmp_path, inputs, capsys, small_checkpoint):
    bad(["segment", tmp_path / "nope.mp4", "--mask", inputs[1], "--out", tmp_path / "o"], capsys,
        small_checkpoint, "video not found")


def test_corrupt_video(tmp_path, inputs, capsys, small_checkpoint):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(5000))
    bad(["segment", broken, "--mask", inputs[1], "--out", tmp_path / "o"], capsys, small_checkpoint,
        "cannot open video")


def test_folder_without_images(tmp_path, inputs, capsys, small_checkpoint):
    (tmp_path / "empty").mkdir()
    bad(["segment", tmp_path / "empty", "--mask", inputs[1], "--out", tmp_path / "o"], capsys,
        small_checkpoint, "no JPEG or PNG")


def test_mask_size_differs(tmp_path, inputs, capsys, small_checkpoint):
    small = write_seed(tmp_path / "small.png", np.ones((10, 10), np.uint8))
    bad(["segment", inputs[0], "--mask", small, "--out", tmp_path / "o"], capsys, small_checkpoint,
        "10x10", f"{CLIP_SIZE[1]}x{CLIP_SIZE[0]}")


def test_mask_without_object(tmp_path, inputs, capsys, small_checkpoint):
    empty = np.zeros(CLIP_SIZE, np.uint8)
    empty[:5] = 255
    bad(["segment", inputs[0], "--mask", write_seed(tmp_path / "e.png", empty), "--out", tmp_path / "o"],
        capsys, small_checkpoint, "no object")


def test_unknown_object_id(tmp_path, inputs, capsys, small_checkpoint):
    bad(["segment", inputs[0], "--mask", inputs[1], "--out", tmp_path / "o", "--objects", "1,9"], capsys,
        small_checkpoint, "9", "not in")


def test_missing_checkpoint(tmp_path, inputs, capsys):
    code, _, err = run_cli(["segment", inputs[0], "--mask", inputs[1], "--out", tmp_path / "o",
                            "--checkpoint", tmp_path / "none.pth", "--quiet"], capsys)
    assert_one_line_error(code, err, "checkpoint not found")


def test_checkpoint_of_the_wrong_type(tmp_path, inputs, capsys, small_checkpoint):
    code, _, err = run_cli(["segment", inputs[0], "--mask", inputs[1], "--out", tmp_path / "o",
                            "--checkpoint", small_checkpoint, "--model-type", "vit_b", "--quiet"], capsys)
    assert_one_line_error(code, err, "small", "vit_b")


def test_unwritable_output_folder(tmp_path, inputs, capsys, small_checkpoint):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    bad(["segment", inputs[0], "--mask", inputs[1], "--out", blocker / "out"], capsys, small_checkpoint,
        "cannot write to output folder")


def test_frame_that_fails_to_decode_midway(tmp_path, inputs, capsys, small_checkpoint):
    frames, seed = inputs
    (frames / "00003.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    out = tmp_path / "o"
    bad(["segment", frames, "--mask", seed, "--out", out, "--method", "persam"], capsys, small_checkpoint,
        "frame 3", "00003")
    written = sorted(f.stem for f in out.glob("*.png"))
    assert written == ["00000", "00001", "00002"]
    for f in out.glob("*.png"):
        assert read_label_png(f).shape == CLIP_SIZE  # complete, readable files
    assert not [p for p in out.iterdir() if p.suffix != ".png" and p.name != RESUME_NAME]  # + the progress file


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["segment", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--mask", "--out", "--method", "--model-type", "--checkpoint", "--device", "--objects",
                   "--start", "--save-state", "--load-state", "--guided-attention", "--semantic-prompt",
                   "--anchor", "--box-clip"):
        assert option in text


def test_top_level_help_lists_every_environment_variable_the_package_reads(capsys):
    import persam_video

    names = set()
    for path in Path(persam_video.__file__).parent.rglob("*.py"):
        names |= set(re.findall(r"PERSAM_VIDEO_[A-Z0-9_]+", path.read_text()))
    names.discard("PERSAM_VIDEO_EAGER_IMPORTS")  # a developer's switch for start-up measurements
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert len(names) >= 5 and [n for n in sorted(names) if n not in text] == []


def test_method_options_reach_the_tracker():
    parser = argparse.ArgumentParser()
    add_method_options(parser)
    plain = tracker_options(parser.parse_args([]))
    assert (plain.anchor, plain.box_clip, plain.margin) == ("box-centre", False, 10)  # the public recipe
    tuned = tracker_options(parser.parse_args(["--anchor", "interior", "--box-clip", "--margin", "5"]))
    assert (tuned.anchor, tuned.box_clip, tuned.margin) == ("interior", True, 5)


def test_broken_pipe_exits_quietly(tmp_path):
    """`persam-video ... | head -1`: the reader goes away; no traceback."""
    import subprocess
    import sys
    script = tmp_path / "spam.py"
    script.write_text(
        "import sys\n"
        "from persam_video import cli\nfrom persam_video.cli import segment as cli_segment\n"
        "def spam(args):\n"
        "    for _ in range(200000):\n"
        "        print('x' * 80)\n"
        "cli_segment.run = spam\n"
        "sys.exit(cli.main(['segment', 'v.mp4', '--mask', 'm.png', '--out', 'o']))\n")
    proc = subprocess.run(f"{sys.executable} {script} | head -1", shell=True, capture_output=True, text=True,
                          timeout=120)
    assert proc.stdout == "x" * 80 + "\n"
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr, proc.stderr


@pytest.mark.parametrize("option, needle", [(["--threads", "0"], "--threads must be at least 1"),
                                            (["--margin", "-1"], "--margin must be a number of pixels"),
                                            (["--fit-iterations", "-1"], "--fit-iterations must be"),
                                            (["--read-ahead", "-1"], "--read-ahead must be 0 or more")])
def test_bad_numbers_are_one_line_errors_before_anything_is_written(tmp_path, inputs, capsys, small_checkpoint,
                                                                  option, needle):
    bad(["segment", inputs[0], "--mask", inputs[1], "--out", tmp_path / "o", *option], capsys, small_checkpoint,
        needle)
    assert not (tmp_path / "o").exists()
