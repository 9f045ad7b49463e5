"""Resume: ``segment`` killed with SIGKILL at a random frame and run again gives the uninterrupted run's
PNGs byte for byte (forward, backward, with a correction); a rerun with other inputs is refused."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BF16_MACHINES, REPO, assert_one_line_error, run_cli, write_frame_folder, write_seed

from persam_video.demo_clip import make_clip
from persam_video.io.masks import write_label_png
from persam_video.resume_file import read_progress

N_FRAMES = 14


@pytest.fixture(scope="module")
def short_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("short_clip")
    clip = make_clip(seed=8, n_frames=N_FRAMES, size=(96, 128), n_objects=2, camera_motion=False)
    frames = write_frame_folder(folder / "frames", clip.frames)
    write_seed(folder / "seed0.png", clip.labels[0])
    write_seed(folder / "seed10.png", clip.labels[10])
    write_label_png(folder / "fix6.png", (clip.labels[6] == 2).astype(np.uint8) * 2)
    (folder / "prompts.json").write_text(json.dumps({"version": 1, "prompts": [
        {"frame": 0, "object": 1, "mask": "seed0.png"}, {"frame": 0, "object": 2, "mask": "seed0.png"},
        {"frame": 6, "object": 2, "mask": "fix6.png"}]}))
    return folder, frames


def _args(frames, out, checkpoint, extra):
    return ["segment", frames, "--out", out, "--checkpoint", checkpoint, "--device", "cpu", "--fit-iterations", "10",
            "--quiet", "--threads", "1", *extra]


def _kill_after(args, out: Path, frames_done: int) -> int:
    """Run ``persam-video ARGS`` in a subprocess and SIGKILL it once ``frames_done`` PNGs exist; returns
    how many PNGs there were when it died."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "persam_video", *map(str, args)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            if out.is_dir() and len(list(out.glob("*.png"))) >= frames_done:
                break
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, f"the run ended by itself before frame {frames_done}: {err[-500:]}"
    return len(list(out.glob("*.png")))


def _pngs(folder: Path) -> dict:
    """Every PNG of ``folder``, temporary files of a killed run included (``.<name>.*.tmp.png``)."""
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


@pytest.mark.parametrize("case, extra, kill_range", [
    ("forward", ["--mask", "seed0.png", "--forward-only"], (2, 10)),
    ("backward", ["--mask", "seed10.png", "--frame", "10"], (6, 11)),  # 10..13 forward, then 9..0 backward
    ("correction", ["--prompts", "prompts.json"], (2, 10)),  # the correction on frame 6
])
@BF16_MACHINES
def test_killed_run_resumes_byte_identical(machine_bf16, short_clip, small_checkpoint, tmp_path, capsys, case, extra,
                                           kill_range):
    folder, frames = short_clip
    extra = [str(folder / e) if e.endswith((".png", ".json")) else e for e in extra]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    code, _, err = run_cli(_args(frames, whole, small_checkpoint, extra), capsys)
    assert code == 0, err
    expected = _pngs(whole)
    assert len(expected) == N_FRAMES
    at = int(np.random.default_rng().integers(*kill_range))
    had = _kill_after(_args(frames, killed, small_checkpoint, extra), killed, at)
    progress = read_progress(killed)
    assert progress is not None and not progress["done"], f"{case}: killed at {had} PNGs, no unfinished progress"
    counted = progress["checkpoint"]["written"]
    code, _, err = run_cli(_args(frames, killed, small_checkpoint, extra), capsys)
    assert code == 0, err
    again = _pngs(killed)
    assert again.keys() == expected.keys()
    differing = [name for name in expected if again[name] != expected[name]]
    assert not differing, f"{case}: killed with {had} PNGs written ({counted} counted): {differing} differ"
    assert read_progress(killed)["done"]


def test_rerun_with_other_inputs_is_refused_until_restart(short_clip, small_checkpoint, tmp_path, capsys):
    folder, frames = short_clip
    out = tmp_path / "out"
    base = _args(frames, out, small_checkpoint, ["--mask", folder / "seed0.png", "--forward-only"])
    code, _, err = run_cli(base, capsys)
    assert code == 0, err
    before = _pngs(out)
    code, _, err = run_cli(base[:-1] + [], capsys)  # both directions now
    assert_one_line_error(code, err, "direction", "--restart")
    code, _, err = run_cli(base + ["--margin", "5"], capsys)
    assert_one_line_error(code, err, "tracker options", "--restart")
    assert _pngs(out) == before  # refused before writing anything
    code, _, err = run_cli([a for a in base if a != "--quiet"], capsys)
    assert code == 0 and "nothing to do" in err, err
    code, _, err = run_cli(base + ["--margin", "5", "--restart"], capsys)
    assert code == 0, err
    assert read_progress(out)["done"] and _pngs(out) != before
