"""``segment``'s prompt flags end to end, and every bad prompt as a one-line error with nothing written."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import CLIP_SIZE, assert_one_line_error, run_cli, write_frame_folder, write_seed
from PIL import Image

from persam_video.io.masks import read_label_png, write_label_png

H, W = CLIP_SIZE


@pytest.fixture(scope="module")
def files(clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("prompt_cli")
    frames = write_frame_folder(folder / "frames", clip.frames[:5])
    write_seed(folder / "seed.png", clip.labels[0])
    Image.fromarray(clip.frames[2]).save(folder / "ref.png")
    write_label_png(folder / "ref_mask.png", clip.labels[2])
    write_label_png(folder / "ref_small.png", clip.labels[2][:20, :20])
    write_label_png(folder / "ref_empty.png", np.zeros(CLIP_SIZE, np.uint8))
    return folder, frames


def _run(files, small_checkpoint, tmp_path, capsys, *args):
    folder, frames = files
    args = [str(folder / a) if isinstance(a, str) and a.endswith((".png", ".json")) and "/" not in a else a
            for a in args]
    return run_cli(["segment", frames, "--out", tmp_path / "out", "--checkpoint", small_checkpoint, "--device", "cpu",
                    "--quiet", "--fit-iterations", "5", *args], capsys)


def test_clicks_a_box_and_a_reference_on_a_middle_frame(files, small_checkpoint, tmp_path, capsys, clip):
    code, _, err = _run(files, small_checkpoint, tmp_path, capsys, "--point", "40,30", "--point", "45,35",
                        "--neg-point", "5,5", "--box", "10,10,100,90:3", "--frame", "2",
                        "--ref-image", "ref.png", "--ref-mask", "ref_mask.png", "--objects", "1,3")
    assert code == 0, err
    out = tmp_path / "out"
    assert sorted(p.stem for p in out.glob("*.png")) == [f"{i:05d}" for i in range(5)]  # both directions
    seen = set()
    for p in out.glob("*.png"):
        seen |= set(np.unique(read_label_png(p)).tolist())
    assert seen <= {0, 1, 3} and 3 in seen


def test_a_prompts_file_with_a_correction(files, small_checkpoint, tmp_path, capsys, clip):
    folder, _ = files
    write_label_png(tmp_path / "fix.png", (clip.labels[3] == 2).astype(np.uint8) * 2)
    (tmp_path / "p.json").write_text(json.dumps({"version": 1, "prompts": [
        {"frame": 1, "object": 2, "mask": str(folder / "seed.png")}, {"frame": 3, "object": 2, "mask": "fix.png"}]}))
    code, _, err = _run(files, small_checkpoint, tmp_path, capsys, "--prompts", tmp_path / "p.json")
    assert code == 0, err
    assert np.array_equal(read_label_png(tmp_path / "out" / "00003.png") == 2, clip.labels[3] == 2)
    assert np.array_equal(read_label_png(tmp_path / "out" / "00001.png") == 2, clip.labels[0] == 2)


@pytest.mark.parametrize("args, needles", [
    (["--point", f"{W},10"], ["point", "outside the", f"{W}x{H}"]),
    (["--box", f"0,0,{W + 1},10"], ["box", "outside the"]),
    (["--box", "30,10,30,40"], ["x1 > x0"]),
    (["--point", "10,10", "--frame", "5"], ["--frame 5", "5 frames"]),
    (["--point", "10,10:0"], ["1 to 254"]),
    (["--point", "10,10:255"], ["1 to 254"]),
    (["--point", "10,10:300"], ["1 to 254"]),
    (["--point", "ten,10"], ["--point takes X,Y"]),
    (["--neg-point", "10,10:2"], ["object 2", "only negative points"]),
    (["--mask", "seed.png", "--point", "10,10:1"], ["object 1 on frame 0", "both a mask and points"]),
    (["--ref-image", "ref.png", "--ref-mask", "ref_small.png"], ["20x20", f"{W}x{H}"]),
    (["--ref-image", "ref.png", "--ref-mask", "ref_empty.png"], ["no object"]),
    (["--ref-image", "ref.png"], ["one --ref-mask per --ref-image"]),
    ([], ["nothing to segment"]),
    (["--prompts", "bad.json"], ["prompts[0]", "'points'"]),
    (["--point", "10,10", "--frame", "2", "--start", "1"], ["--start", "--frame"]),
])
def test_bad_prompts_are_one_line_errors_and_write_nothing(files, small_checkpoint, tmp_path, capsys, args, needles):
    (tmp_path / "bad.json").write_text(json.dumps({"version": 1, "prompts": [
        {"frame": 0, "object": 1, "points": [[1, 2, 3]]}]}))
    args = [str(tmp_path / a) if a == "bad.json" else a for a in args]
    code, _, err = _run(files, small_checkpoint, tmp_path, capsys, *args)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()
