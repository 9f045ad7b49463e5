"""Writing behind (issue 20): the label PNGs written on a background thread while the tracker works on
the next frame give the same files as writing in line; a frame's progress is saved only once its PNG is
in place; a failed write stops the run with the plain writer's one-line error and nothing later counted;
an interrupted run leaves only complete files and resumes byte-identical; at most 2 frames wait."""
from __future__ import annotations

import errno
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BF16_MACHINES, assert_one_line_error, run_cli, write_frame_folder, write_seed

import persam_video.io.writer as writer_module
import persam_video.resume_file as resume_module
from persam_video.cli import segment as segment_cli
from persam_video.errors import PersamError
from persam_video.io.files import leftover_temporaries
from persam_video.io.masks import read_label_png
from persam_video.io.prompts import Prompt, PromptSet
from persam_video.io.writer import LabelWriter, WriteBehind
from persam_video.options import TrackerOptions
from persam_video.pipeline import segment_video
from persam_video.resume_file import read_progress
from persam_video.tracking.segmenter import VideoSegmenter

N_FRAMES = 8
OPTIONS = TrackerOptions(method="persam")
REAL_SAVE = writer_module.write_label_png


@pytest.fixture(scope="module")
def frames(tmp_path_factory, clip):
    """The shared clip's first 8 frames as a folder, and its first frame's labels as a seed PNG."""
    folder = tmp_path_factory.mktemp("write_behind")
    write_frame_folder(folder / "frames", clip.frames[:N_FRAMES])
    write_seed(folder / "seed.png", clip.labels[0])
    return folder / "frames", folder / "seed.png", clip.labels[0]


def mask_prompts(labels: np.ndarray) -> PromptSet:
    return PromptSet([Prompt(frame=0, obj_id=k, mask=labels == k) for k in (1, 2)], [])


def pngs(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def frame_name(index: int) -> str:
    return f"{index:05d}"


def slow_save(seconds: float, fail_at: str = "", watch=lambda path, when: None):
    """A label writer's save that sleeps ``seconds`` first and fails like a full disk on frame ``fail_at``;
    ``watch(path, "start" / "end")`` is called around it."""
    def save(path, labels):
        watch(Path(path), "start")
        time.sleep(seconds)
        if Path(path).stem == fail_at:
            raise OSError(errno.ENOSPC, "No space left on device")
        REAL_SAVE(path, labels)
        watch(Path(path), "end")
    return save


# ------------------------------------------------------------------------------ the writer alone
def test_write_behind_writes_the_plain_writers_files_and_calls_then_after_each(tmp_path):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 4, (48, 64), dtype=np.uint8) for _ in range(6)]
    plain, behind = LabelWriter(tmp_path / "plain"), WriteBehind(LabelWriter(tmp_path / "behind"))
    seen = []
    for i, image in enumerate(images):
        plain.write(frame_name(i), image)
        behind.write(frame_name(i), image,
                     then=lambda i=i: seen.append((i, (tmp_path / "behind" / f"{frame_name(i)}.png").is_file(),
                                                   threading.current_thread() is threading.main_thread())))
        image[:] = 3  # the caller reuses its array at once: the writer holds its own copy
    behind.close()
    assert pngs(tmp_path / "behind") == pngs(tmp_path / "plain") and len(pngs(tmp_path / "plain")) == 6
    assert seen == [(i, True, False) for i in range(6)]  # in order, each after its PNG, on the writer's thread
    assert behind.written == 6 and not leftover_temporaries(tmp_path / "behind")


def test_a_failed_write_is_raised_once_and_nothing_after_it_is_written_or_recorded(tmp_path, monkeypatch):
    monkeypatch.setattr(writer_module, "write_label_png", slow_save(0.02, fail_at=frame_name(2)))
    behind = WriteBehind(LabelWriter(tmp_path))
    recorded = []
    with pytest.raises(PersamError) as failure:
        for i in range(6):
            behind.write(frame_name(i), np.zeros((8, 8), np.uint8), then=lambda i=i: recorded.append(i))
        behind.close()
    behind.abort()
    assert str(failure.value) == f"cannot write {tmp_path / '00002.png'}: No space left on device"
    assert recorded == [0, 1] and sorted(p.stem for p in tmp_path.glob("*.png")) == ["00000", "00001"]
    assert not leftover_temporaries(tmp_path)
    assert not any(t.name.startswith("persam-png-writer") for t in threading.enumerate())


# ----------------------------------------------------------------------------------- the pipeline
@BF16_MACHINES
def test_segment_video_writes_the_same_files_with_the_thread_on_and_off(machine_bf16, frames, small_model, tmp_path):
    video, seed, labels = frames
    for on in (False, True):
        for resume in (False, True):
            summary = segment_video(video, tmp_path / f"segment-{on}-{resume}", mask_prompts(labels), OPTIONS,
                                    small_model, direction="forward", progress=False, write_behind=on, resume=resume)
            assert summary.frames == N_FRAMES
    expected = pngs(tmp_path / "segment-False-False")
    assert len(expected) == N_FRAMES
    for on, resume in ((False, True), (True, False), (True, True)):
        assert pngs(tmp_path / f"segment-{on}-{resume}") == expected
    assert read_progress(tmp_path / "segment-True-True")["done"]
    assert read_progress(tmp_path / "segment-True-False") is None


def test_progress_never_counts_a_frame_before_its_png_and_at_most_two_frames_wait(frames, small_model, tmp_path,
                                                                                monkeypatch):
    video, _, labels = frames
    out = tmp_path / "out"
    queued, overlapped, ahead = [0], [], []

    def wait_for(count, seconds):
        deadline = time.monotonic() + seconds
        while queued[0] < count and time.monotonic() < deadline:
            time.sleep(0.005)
        return queued[0] >= count

    def watch(path, when):
        """Hold each PNG's write until the tracker has handed over the next frame (it never would, were
        the tracker waiting for the write), then give it half a second to hand over one more (it must not)."""
        frame = int(path.stem)
        if when == "start" and frame < N_FRAMES - 1:
            overlapped.append(all(overlapped) and wait_for(frame + 2, 30))
            wait_for(frame + 3, 0.5)
            ahead.append(queued[0] - frame)  # frames handed over from this one on

    real_write = WriteBehind.write

    def counting_write(self, *args, **kwargs):
        path = real_write(self, *args, **kwargs)
        queued[0] += 1
        return path

    claims = []
    real_progress = resume_module.write_progress

    def checking_progress(out_dir, fingerprint, checkpoint, done):
        counted = checkpoint["written"]
        missing = [i for i in range(counted) if not (out / f"{frame_name(i)}.png").is_file()]
        claims.append((counted, missing))
        real_progress(out_dir, fingerprint, checkpoint, done)

    monkeypatch.setattr(WriteBehind, "write", counting_write)
    monkeypatch.setattr(writer_module, "write_label_png", slow_save(0.0, watch=watch))
    monkeypatch.setattr(resume_module, "write_progress", checking_progress)
    segment_video(video, out, mask_prompts(labels), OPTIONS, small_model, direction="forward", progress=False)
    assert [c for c, _ in claims] == list(range(1, N_FRAMES + 1)) + [N_FRAMES]  # one per frame, then done
    assert all(not missing for _, missing in claims), claims
    assert overlapped == [True] * (N_FRAMES - 1)  # the tracker went on while a PNG was being written
    assert max(ahead) == 2, ahead  # but no further than the frame after it


def test_a_write_failing_on_the_thread_is_the_plain_error_and_the_run_resumes_identically(
        frames, small_checkpoint, tmp_path, capsys, monkeypatch):
    video, seed, _ = frames
    args = ["segment", video, "--mask", seed, "--forward-only", "--checkpoint", small_checkpoint, "--device", "cpu",
            "--method", "persam", "--threads", "1", "--quiet"]
    code, _, err = run_cli(args + ["--out", tmp_path / "whole"], capsys)
    assert code == 0, err
    errors = {}
    for on in (False, True):  # the same failure in line and on the thread: the same error, files and progress
        out = tmp_path / f"out-{on}"
        with monkeypatch.context() as patch:
            patch.setattr(writer_module, "write_label_png", slow_save(0.01, fail_at=frame_name(4)))
            code, _, err = run_cli(args + ["--out", out] + ([] if on else ["--no-write-behind"]), capsys)
        assert_one_line_error(code, err, "cannot write", "00004.png", "No space left on device")
        errors[on] = (err.replace(str(out), "OUT"), sorted(p.name for p in out.glob("*.png")),
                      read_progress(out)["checkpoint"]["written"])
        assert not leftover_temporaries(out)
    assert errors[True] == errors[False]
    assert errors[True][1:] == ([f"{frame_name(i)}.png" for i in range(4)], 4)
    code, _, err = run_cli(args + ["--out", out], capsys)  # the rerun resumes after frame 3
    assert code == 0, err
    assert pngs(out) == pngs(tmp_path / "whole") and read_progress(out)["done"]


def test_a_removed_output_folder_is_one_line_from_the_thread(frames, small_model, tmp_path, monkeypatch):
    import shutil
    video, _, labels = frames
    out = tmp_path / "out"

    def save(path, labels):
        if Path(path).stem == frame_name(3):
            shutil.rmtree(out)  # the folder disappears under the run: the real OSError of mkstemp
        REAL_SAVE(path, labels)

    monkeypatch.setattr(writer_module, "write_label_png", save)
    with pytest.raises(PersamError) as failure:
        segment_video(video, out, mask_prompts(labels), OPTIONS, small_model, direction="forward", resume=False,
                      progress=False)
    assert str(failure.value) == f"cannot write {out / '00003.png'}: No such file or directory"
    assert not any(t.name.startswith("persam-png-writer") for t in threading.enumerate())


def test_an_interrupt_finishes_the_queued_writes_and_the_rerun_resumes_identically(frames, small_model, tmp_path,
                                                                                   monkeypatch):
    video, _, labels = frames
    segment_video(video, tmp_path / "whole", mask_prompts(labels), OPTIONS, small_model, direction="forward",
                  progress=False, write_behind=False)
    out, steps, interrupted = tmp_path / "out", [0], threading.Event()
    real_step = VideoSegmenter.step

    def step(self, *args, **kwargs):  # Ctrl-C while the tracker works on frame 4
        steps[0] += 1
        if steps[0] == 5:
            interrupted.set()
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    def watch(path, when):  # frame 2's write is held until the interrupt: frames 2 and 3 wait then
        if when == "start" and path.stem == frame_name(2):
            interrupted.wait(60)

    with monkeypatch.context() as patch:
        patch.setattr(VideoSegmenter, "step", step)
        patch.setattr(writer_module, "write_label_png", slow_save(0.0, watch=watch))
        with pytest.raises(KeyboardInterrupt):
            segment_video(video, out, mask_prompts(labels), OPTIONS, small_model, direction="forward",
                          progress=False)
    assert not any(t.name.startswith("persam-png-writer") for t in threading.enumerate())
    assert not leftover_temporaries(out)
    names = sorted(p.stem for p in out.glob("*.png"))
    assert names == [frame_name(i) for i in range(4)]  # every frame handed over was finished
    for name in names:
        read_label_png(out / f"{name}.png")
    assert read_progress(out)["checkpoint"]["written"] == 4
    segment_video(video, out, mask_prompts(labels), OPTIONS, small_model, direction="forward", progress=False)
    assert pngs(out) == pngs(tmp_path / "whole")


def test_no_write_behind_reaches_segment_video(monkeypatch, tmp_path):
    seen = []

    def spy(*args, write_behind, **kwargs):
        seen.append(write_behind)
        raise SystemExit(0)

    monkeypatch.setattr(segment_cli, "segment_video", spy)
    monkeypatch.setattr(segment_cli, "open_frames", lambda *a, **k: None)
    monkeypatch.setattr(segment_cli, "build_prompts", lambda *a, **k: None)
    monkeypatch.setattr(segment_cli, "load_model", lambda *a, **k: None)
    from persam_video import cli
    for extra in ([], ["--no-write-behind"]):
        with pytest.raises(SystemExit):
            cli.main(["segment", "v.mp4", "--mask", "m.png", "--out", str(tmp_path / "o")] + extra)
    assert seen == [True, False]
