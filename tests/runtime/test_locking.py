"""One writer per output folder (issue 22): a second run into a folder in use exits 2 with one line
naming the folder and the process holding it, having written nothing; the kernel drops the lock of
a run that dies, so a killed run never blocks the next."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import assert_one_line_error, run_cli, write_frame_folder, write_seed

from persam_video.runtime.locking import LOCK_NAME, output_lock

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks")


@pytest.fixture(scope="module")
def frames(clip, tmp_path_factory):
    """The conftest clip (12 frames) as a folder of PNGs and its first frame's mask."""
    folder = tmp_path_factory.mktemp("locking")
    return write_frame_folder(folder / "frames", clip.frames), write_seed(folder / "seed.png", clip.labels[0])


def segment_args(frames, out, checkpoint):
    return ["segment", frames[0], "--mask", frames[1], "--out", out, "--checkpoint", checkpoint, "--device", "cpu",
            "--threads", "1", "--quiet", "--method", "persam"]


def masks(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def test_runs_into_a_locked_folder_exit_2_having_written_nothing(frames, small_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    with output_lock(out):
        code, _, err = run_cli(segment_args(frames, out, small_checkpoint), capsys)
        assert_one_line_error(code, err, f"output folder {out} is in use", f"process {os.getpid()}")
        davis = ["davis", "run", "--davis-root", tmp_path / "no-davis", "--out", out, "--quiet"]
        code, _, err = run_cli(davis, capsys)
        assert_one_line_error(code, err, f"output folder {out} is in use", f"process {os.getpid()}")
        assert [p.name for p in out.iterdir()] == [LOCK_NAME]
    assert not out.exists()  # the lock made the folder, and nothing was written in it


def test_second_segment_run_into_the_same_folder_is_refused_and_the_first_is_untouched(
        frames, small_checkpoint, tmp_path, capsys):
    alone = tmp_path / "alone"
    code, _, err = run_cli(segment_args(frames, alone, small_checkpoint), capsys)
    assert code == 0, err
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "persam_video",
                              *map(str, segment_args(frames, out, small_checkpoint))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 120
        while not any(out.glob("*.png")) and first.poll() is None:  # the first run is writing
            assert time.monotonic() < end
            time.sleep(0.01)
        code, _, err = run_cli(segment_args(frames, out, small_checkpoint), capsys)
        assert first.poll() is None, "the first run ended before the second started: no overlap tested"
        assert_one_line_error(code, err, f"output folder {out} is in use", f"process {first.pid}")
        assert first.wait(120) == 0, first.stderr.read()
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        first.stderr.close()
    assert masks(out) == masks(alone) and len(masks(out)) == 12  # complete, the same bytes as a run alone
    assert not list(out.glob(".*.tmp*")) and not (out / LOCK_NAME).exists()


def test_a_lock_left_by_a_killed_run_does_not_block_the_next(frames, small_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    killed = subprocess.run([sys.executable, "-c",
                             "import os, signal; from persam_video.runtime.locking import output_lock\n"
                             f"with output_lock({str(out)!r}):\n"
                             "    print(os.getpid(), flush=True)\n"
                             "    os.kill(os.getpid(), signal.SIGKILL)"], capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (out / LOCK_NAME).read_text().split() == killed.stdout.split()  # the stale file stays, its lock does not
    code, _, err = run_cli(segment_args(frames, out, small_checkpoint), capsys)
    assert code == 0, err
    assert len(list(out.glob("*.png"))) == 12 and not (out / LOCK_NAME).exists()
