"""`persam-video davis run`: every frame of every sequence, resume, workers, --eval, one-line errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import BF16_MACHINES, assert_one_line_error, load_tool, run_cli

from persam_video.cli import main
from persam_video.io.masks import read_label_png, write_label_png

SIZE = (64, 96)
FRAMES = 5


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    """A synthetic DAVIS root with 3 sequences x 5 frames at 64x96; returns (root, names)."""
    root = tmp_path_factory.mktemp("davis")
    names = load_tool("synthetic").write_davis_dataset(root, seed=1, n_sequences=3, n_frames=FRAMES, size=SIZE,
                                                       objects=(1, 2))
    return root, names


def model_args(checkpoint, method="persam"):
    args = ["--checkpoint", checkpoint, "--model-type", "small", "--device", "cpu", "--method", method]
    return args + (["--fit-iterations", "20"] if method == "persam-f" else [])


def davis_run(root, out, checkpoint, *extra, method="persam"):
    return ["davis", "run", "--davis-root", root, "--subset", "val", "--out", out, "--quiet",
            *model_args(checkpoint, method), *extra]


def png_bytes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


@pytest.fixture(scope="module")
def full_run(davis, small_checkpoint, tmp_path_factory):
    """One complete single-worker run of every sequence (PerSAM); returns its results folder."""
    root, _ = davis
    out = tmp_path_factory.mktemp("results") / "run1"
    assert main([str(a) for a in davis_run(root, out, small_checkpoint)]) == 0
    return out


def test_runs_every_sequence_and_writes_every_frame(davis, full_run):
    root, names = davis
    for name in names:
        files = sorted((full_run / name).glob("*.png"))
        assert [f.stem for f in files] == [f"{i:05d}" for i in range(FRAMES)]
        assert not list((full_run / name).glob("*.tmp*"))
        seed = read_label_png(root / "Annotations" / "480p" / name / "00000.png")
        assert np.array_equal(read_label_png(files[0]), seed)
        assert read_label_png(files[-1]).shape == SIZE
        marker = json.loads((full_run / name / ".done").read_text())
        assert marker["frames"] == FRAMES
        assert marker["method"] == "persam" and marker["model_type"] == "small"
        assert marker["objects"] == sorted(int(k) for k in np.unique(seed) if 0 < k < 255)


def test_rerun_redoes_unmarked_sequences_and_skips_done_ones(davis, full_run, small_checkpoint, tmp_path,
                                                              capsys):
    root, names = davis
    out = tmp_path / "resume"
    shutil.copytree(full_run, out)
    # sequence 0: interrupted after two frames (no marker), with a stale frame that a redo must replace
    # and a leftover from some other run that must go
    partial = out / names[0]
    (partial / ".done").unlink()
    for f in sorted(partial.glob("*.png"))[2:]:
        f.unlink()
    bogus = np.full(SIZE, 9, np.uint8)
    write_label_png(partial / "00001.png", bogus)
    write_label_png(partial / "99999.png", bogus)
    done = [f for name in names[1:] for f in sorted((out / name).iterdir())]
    stamps = {f: f.stat().st_mtime_ns for f in done}

    code, _, err = run_cli(davis_run(root, out, small_checkpoint), capsys)
    assert code == 0, err
    assert png_bytes(out) == png_bytes(full_run)
    assert not (partial / "99999.png").exists()
    assert (partial / ".done").is_file()
    assert {f: f.stat().st_mtime_ns for f in done} == stamps


def test_a_rerun_with_other_weights_or_options_names_what_changed(davis, full_run, small_checkpoint, tmp_path,
                                                                   capsys):
    root, names = davis
    out = tmp_path / "changed"
    shutil.copytree(full_run, out)
    other = tmp_path / "same_path_other_weights.pth"  # a retrained file: same type, other bytes
    state = torch.load(small_checkpoint, map_location="cpu")
    state = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, other)
    before = png_bytes(out)
    args = ["davis", "run", "--davis-root", root, "--subset", "val", "--out", out, "--sequences", names[0],
            *model_args(other)]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "done already, skipped (made with other settings: weights_sha256=" in err
    assert png_bytes(out) == before  # skipping keeps the results; the note says how to redo them
    code, _, err = run_cli(davis_run(root, out, small_checkpoint, "--sequences", names[0], "--margin", 5), capsys)
    assert code == 0 and "margin=10" in err and "weights_sha256" not in err
    code, _, err = run_cli(davis_run(root, out, small_checkpoint, "--sequences", names[0], "--anchor", "interior",
                                     "--box-clip"), capsys)
    assert code == 0 and "anchor='box-centre'" in err and "box_clip=False" in err and "margin" not in err
    code, _, err = run_cli(davis_run(root, out, small_checkpoint, "--sequences", names[0], "--precision", "fp16"),
                           capsys)
    assert code == 0 and "precision=" in err and "margin" not in err  # other numerics: not the same masks
    code, _, err = run_cli(davis_run(root, out, small_checkpoint, "--sequences", names[0]), capsys)
    assert code == 0 and "other settings" not in err  # the same settings: skipped silently (--quiet)
    assert png_bytes(out) == before


def test_a_bad_marker_is_not_taken_as_done(davis, full_run, small_checkpoint, tmp_path, capsys):
    root, names = davis
    out = tmp_path / "badmarker"
    shutil.copytree(full_run, out)
    (out / names[1] / ".done").write_text("{half a JSON")
    write_label_png(out / names[1] / "00003.png", np.full(SIZE, 9, np.uint8))
    code, _, err = run_cli(davis_run(root, out, small_checkpoint, "--sequences", names[1]), capsys)
    assert code == 0, err
    assert png_bytes(out) == png_bytes(full_run)
    assert json.loads((out / names[1] / ".done").read_text())["frames"] == FRAMES


@BF16_MACHINES
def test_two_workers_give_the_same_pngs_as_one(machine_bf16, davis, small_checkpoint, tmp_path, capsys):
    root, names = davis
    one, two = tmp_path / "one", tmp_path / "two"
    chosen = ",".join(names[:2])
    for out, workers in ((one, 1), (two, 2)):
        code, _, err = run_cli(davis_run(root, out, small_checkpoint, "--sequences", chosen, "--workers", workers,
                                         "--threads", 1, method="persam-f"), capsys)
        assert code == 0, err
    got = png_bytes(two)
    assert len(got) == 2 * FRAMES
    assert got == png_bytes(one)
    assert not (two / names[2]).exists()


def test_eval_writes_both_csvs_and_prints_the_tables(davis, full_run, small_checkpoint, tmp_path, capsys):
    root, names = davis
    out = tmp_path / "evaluated"
    shutil.copytree(full_run, out)  # every sequence done: --eval alone runs
    code, printed, err = run_cli(davis_run(root, out, small_checkpoint, "--eval"), capsys)
    assert code == 0, err
    assert (out / "global_results-val.csv").is_file()
    per_seq = (out / "per-sequence_results-val.csv").read_text()
    assert all(name in per_seq for name in names)
    assert "J&F-Mean" in printed


def test_log_lines_name_each_sequence(davis, small_checkpoint, tmp_path, capsys):
    root, names = davis
    args = [a for a in davis_run(root, tmp_path / "log", small_checkpoint, "--sequences", names[2]) if a != "--quiet"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert f"{names[2]}: {FRAMES} frames" in err
    code, _, err = run_cli(args, capsys)
    assert code == 0 and f"{names[2]}: done already, skipped" in err


def broken_root(davis, tmp_path, breakage):
    root, names = davis
    copy = tmp_path / "broken"
    shutil.copytree(root, copy)
    breakage(copy, names)
    return copy


@pytest.mark.parametrize("breakage, needle", [
    (lambda root, names: shutil.rmtree(root), "DAVIS root not found"),
    (lambda root, names: (root / "ImageSets" / "2017" / "val.txt").unlink(), "subset file not found"),
    (lambda root, names: shutil.rmtree(root / "JPEGImages" / "480p" / names[1]),
     "frames folder of sequence"),
    (lambda root, names: shutil.rmtree(root / "Annotations" / "480p" / names[1]),
     "first annotation of sequence"),
    (lambda root, names: [p.unlink() for p in (root / "Annotations" / "480p" / names[2]).glob("*.png")],
     "first annotation of sequence"),
], ids=["root", "subset", "sequence-folder", "annotation-folder", "first-annotation"])
def test_bad_dataset_is_a_one_line_error(davis, small_checkpoint, tmp_path, capsys, breakage, needle):
    root = broken_root(davis, tmp_path, breakage)
    code, _, err = run_cli(davis_run(root, tmp_path / "out", small_checkpoint), capsys)
    assert_one_line_error(code, err, needle)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_unknown_sequence_and_bad_workers_are_one_line_errors(davis, small_checkpoint, tmp_path, capsys):
    root, names = davis
    code, _, err = run_cli(davis_run(root, tmp_path / "out", small_checkpoint, "--sequences",
                                     f"{names[0]},nope"), capsys)
    assert_one_line_error(code, err, "nope", "not in subset val")
    code, _, err = run_cli(davis_run(root, tmp_path / "out", small_checkpoint, "--workers", 0), capsys)
    assert_one_line_error(code, err, "--workers")
    code, _, err = run_cli(davis_run(root, tmp_path / "out", small_checkpoint, "--threads", 0), capsys)
    assert_one_line_error(code, err, "--threads must be at least 1")
    code, _, err = run_cli(davis_run(root, tmp_path / "out", small_checkpoint, "--read-ahead", -1), capsys)
    assert_one_line_error(code, err, "--read-ahead must be 0 or more")
