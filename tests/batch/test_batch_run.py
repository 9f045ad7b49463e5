"""`persam-video batch` on the local executor: manifests, the summary, failures isolated, resume,
a killed worker's clip retried. (The Ray executor: tests/batch/test_ray_executor.py.)"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import BF16_MACHINES, REPO, assert_one_line_error, load_tool, run_cli

from persam_video.batch import load_manifest
from persam_video.batch.summary import COLUMNS, DONE, PENDING, Outcome, SummaryFile
from persam_video.io.masks import write_label_png

SIZE = (64, 96)
FRAMES = 10
MODEL = ["--model-type", "small", "--device", "cpu", "--method", "persam", "--threads", "1", "--quiet"]


def png_bytes(folder: Path) -> dict:
    """Every PNG under ``folder`` (relative path -> bytes)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*.png"))}


def read_summary(out: Path) -> dict:
    """summary.csv as {clip: row dict}."""
    import csv

    with open(out / "summary.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0].keys()) == COLUMNS
    return {row["clip"]: row for row in rows}


def write_manifest(path: Path, rows) -> Path:
    """A CSV manifest with the columns video,mask,name."""
    path.write_text("video,mask,name\n" + "".join(f"{v},{m},{n}\n" for v, m, n in rows))
    return path


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """4 synthetic clips (frame folders, 10 frames of 64x96) and a CSV manifest listing them;
    returns (manifest, names)."""
    root = tmp_path_factory.mktemp("clips")
    names = load_tool("synthetic").write_davis_dataset(root / "davis", seed=2, n_sequences=4, n_frames=FRAMES,
                                                       size=SIZE, objects=(1, 2))
    rows = [(f"davis/JPEGImages/480p/{n}", f"davis/Annotations/480p/{n}/00000.png", n) for n in names]
    return write_manifest(root / "clips.csv", rows), names


def batch_args(manifest, out, checkpoint, *extra):
    return ["batch", manifest, "--out", out, "--checkpoint", checkpoint, *MODEL, *extra]


@pytest.fixture(scope="module")
def reference(clips, small_checkpoint, tmp_path_factory):
    """An undisturbed in-process run of every clip: the PNGs every other run must reproduce."""
    from persam_video.cli import main

    manifest, _ = clips
    out = tmp_path_factory.mktemp("reference") / "out"
    assert main([str(a) for a in batch_args(manifest, out, small_checkpoint)]) == 0
    return out


def test_every_clip_is_written_and_summarised(clips, reference):
    _, names = clips
    rows = read_summary(reference)
    assert list(rows) == names
    for name in names:
        assert [p.stem for p in sorted((reference / name).glob("*.png"))] == [f"{i:05d}" for i in range(FRAMES)]
        marker = json.loads((reference / name / ".done").read_text())
        assert marker["frames"] == FRAMES and marker["settings"]["inputs"]["mask"].endswith("00000.png")
        assert rows[name]["status"] == DONE and rows[name]["frames"] == str(FRAMES)
        assert rows[name]["attempts"] == "1" and rows[name]["error"] == ""
        assert rows[name]["objects"] == " ".join(map(str, marker["objects"]))


def test_a_json_manifest_lists_the_same_clips(clips, tmp_path):
    manifest, names = clips
    entries = [{"video": f"{manifest.parent}/davis/JPEGImages/480p/{n}",
                "mask": f"{manifest.parent}/davis/Annotations/480p/{n}/00000.png"} for n in names]
    entries[1]["objects"] = [1]
    entries[2].update(start=0, name="renamed")
    path = tmp_path / "clips.json"
    path.write_text(json.dumps({"version": 1, "clips": entries}))
    from_csv, from_json = load_manifest(manifest, tmp_path / "out"), load_manifest(path, tmp_path / "out")
    assert [t.video for t in from_json] == [t.video for t in from_csv]
    assert [t.mask for t in from_json] == [t.mask for t in from_csv]
    assert [t.name for t in from_json] == [names[0], names[1], "renamed", names[3]]
    assert from_json[1].objects == (1,) and from_csv[1].objects is None
    assert from_json[2].out == str((tmp_path / "out" / "renamed").absolute())


@pytest.mark.parametrize("text, needles", [
    ("mask,name\na.png,x\n", ["'video'"]),
    ("video,colour\na.mp4,red\n", ["unknown column", "'colour'"]),
    ("video,mask,start\na.mp4,a.png,-1\n", ["row 2", "'start'", "0 or more"]),
    ("video,mask,start\na.mp4,a.png,one\n", ["row 2", "'start'", "whole number"]),
    ("video,mask,objects\na.mp4,a.png,\"1,300\"\n", ["row 2", "'objects'", "between 1 and 254"]),
    ("video,mask,prompts\na.mp4,a.png,p.json\n", ["row 2", "'prompts'", "'mask'"]),
    ("video,mask,name\na.mp4,a.png,x\nb.mp4,b.png,x\n", ["row 3", "'x'", "row 2"]),
    ("video,mask\na.mp4,a.png\nsub/a.mp4,b.png\n", ["row 3", "'a'"]),
    ("video,mask,name\na.mp4,a.png,../up\n", ["row 2", "'name'", "plain folder name"]),
    ("video,mask\n", ["no clip"]),
    ("video,mask\na.mp4,a.png,extra\n", ["row 2", "more values than columns"]),
    ('{"version": 2, "clips": []}', ["version 2"]),
    ('{"clips": [{"video": "a.mp4", "mask": 3}]}', ["clip 0", "'mask'", "a path"]),
    ('{"clips": [{"video": "a.mp4"}, {"vidoe": "b.mp4"}]}', ["clip 1", "'vidoe'"]),
    ('{"clips": [1, 2', ["not valid JSON"]),
], ids=["no-video-column", "unknown-column", "negative-start", "bad-start", "bad-ids", "mask-and-prompts",
        "same-name", "same-stem", "name-path", "empty", "extra-value", "json-version", "json-type",
        "json-field", "json-syntax"])
def test_a_malformed_manifest_is_a_one_line_error_naming_the_entry(tmp_path, small_checkpoint, capsys, text,
                                                                   needles):
    path = tmp_path / ("m.json" if text.startswith("{") else "m.csv")
    path.write_text(text)
    code, _, err = run_cli(batch_args(path, tmp_path / "out", small_checkpoint), capsys)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "out").exists()


def test_a_clip_without_prompt_needs_a_reference(tmp_path, small_checkpoint, capsys):
    path = tmp_path / "m.csv"
    path.write_text("video,name\na.mp4,first\n")
    code, _, err = run_cli(batch_args(path, tmp_path / "out", small_checkpoint), capsys)
    assert_one_line_error(code, err, "clip first", "neither a mask nor a prompts file", "reference")


def test_a_bad_reference_is_a_one_line_error_before_any_clip_runs(clips, small_checkpoint, tmp_path, capsys):
    manifest, names = clips
    image = manifest.parent / "davis" / "JPEGImages" / "480p" / names[0] / "00000.jpg"
    for mask, needles in ((np.ones((10, 10), np.uint8), ["reference", "10x10", "96x64"]),
                          (np.zeros(SIZE, np.uint8), ["reference mask", "has no object"])):
        write_label_png(tmp_path / "ref.png", mask)
        code, _, err = run_cli(batch_args(manifest, tmp_path / "out", small_checkpoint, "--ref-image", image,
                                          "--ref-mask", tmp_path / "ref.png"), capsys)
        assert_one_line_error(code, err, *needles)
        assert not (tmp_path / "out").exists()


def test_bad_executor_flags_are_one_line_errors(clips, small_checkpoint, tmp_path, capsys, monkeypatch):
    manifest, _ = clips
    out = tmp_path / "out"
    for extra, needles in (((["--workers", "0"]), ["--workers must be at least 1"]),
                           ((["--retries", "-1"]), ["--retries must be 0 or more"]),
                           ((["--address", "auto"]), ["--address", "--executor ray"]),
                           ((["--gpus-per-worker", "1"]), ["--gpus-per-worker", "--executor ray"]),
                           ((["--ref-image", "a.jpg"]), ["--ref-image and --ref-mask go in pairs"])):
        code, _, err = run_cli(batch_args(manifest, out, small_checkpoint, *extra), capsys)
        assert_one_line_error(code, err, *needles)
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed: importing it fails
    code, _, err = run_cli(batch_args(manifest, out, small_checkpoint, "--executor", "ray"), capsys)
    assert_one_line_error(code, err, "--executor ray needs Ray", "pip install 'persam-video[ray]'")
    assert not out.exists()


def test_a_corrupt_clip_fails_alone_and_the_exit_status_says_so(clips, reference, small_checkpoint, tmp_path,
                                                                capsys):
    manifest, names = clips
    base = manifest.parent
    (tmp_path / "corrupt.mp4").write_bytes(b"not a video at all" * 64)
    small_mask = tmp_path / "small.png"
    write_label_png(small_mask, np.ones((32, 48), np.uint8))
    rows = [(f"{base}/davis/JPEGImages/480p/{n}", f"{base}/davis/Annotations/480p/{n}/00000.png", n)
            for n in names[:2]]
    rows.insert(1, (tmp_path / "corrupt.mp4", f"{base}/davis/Annotations/480p/{names[0]}/00000.png", "corrupt"))
    rows.append((f"{base}/davis/JPEGImages/480p/{names[2]}", small_mask, "wrong-size"))
    out = tmp_path / "out"
    code, _, err = run_cli(batch_args(write_manifest(tmp_path / "m.csv", rows), out, small_checkpoint), capsys)
    assert code == 1, err
    assert "2 of 4 clip(s) failed" in err and "corrupt (" in err and "wrong-size (" in err
    rows = read_summary(out)
    assert [rows[n]["status"] for n in rows] == ["done", "failed", "done", "failed"]
    assert "cannot open video" in rows["corrupt"]["error"]
    assert "48x32" in rows["wrong-size"]["error"] and "96x64" in rows["wrong-size"]["error"]
    good = {k: v for k, v in png_bytes(reference).items() if k.split("/")[0] in names[:2]}
    assert png_bytes(out) == good
    assert not (out / "corrupt" / ".done").exists() and not (out / "wrong-size" / ".done").exists()


def test_a_rerun_skips_done_clips_and_names_a_changed_entry(clips, reference, small_checkpoint, tmp_path, capsys):
    manifest, names = clips
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    (out / names[3] / ".done").unlink()
    stamps = {p: p.stat().st_mtime_ns for n in names[:3] for p in (out / n).iterdir()}
    args = [a for a in batch_args(manifest, out, small_checkpoint) if a != "--quiet"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert all(f"{n}: done already, skipped" in err for n in names[:3]) and f"{names[3]}: {FRAMES} frames" in err
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert png_bytes(out) == png_bytes(reference)
    assert [row["status"] for row in read_summary(out).values()] == ["skipped"] * 3 + ["done"]
    other = manifest.parent / "changed.csv"  # the first clip seeded from another frame's mask now
    other.write_text(manifest.read_text().replace(f"{names[0]}/00000.png", f"{names[0]}/00001.png"))
    code, _, err = run_cli(batch_args(other, out, small_checkpoint), capsys)
    assert code == 0, err
    assert f"{names[0]}: done already, skipped (made with other settings: inputs=" in err
    assert f"{names[1]}: done already" not in err  # --quiet: unchanged clips are skipped silently
    assert png_bytes(out) == png_bytes(reference)


@BF16_MACHINES
def test_prompts_files_and_references_run_the_prompting_pipeline(machine_bf16, clips, small_model, small_checkpoint,
                                                                 tmp_path, capsys):
    from persam_video.io.masks import read_label_png
    from persam_video.io.photos import read_photo
    from persam_video.io.prompts import PromptSet, Reference, load_prompts
    from persam_video.options import TrackerOptions
    from persam_video.pipeline import segment_video

    manifest, names = clips
    davis = manifest.parent / "davis"
    prompts = tmp_path / "p.json"  # a mask on frame 2: frames 0-1 come from the backward pass
    prompts.write_text(json.dumps({"version": 1, "prompts": [
        {"frame": 2, "object": 1, "mask": str(davis / "Annotations" / "480p" / names[1] / "00002.png")}]}))
    clip = davis / "JPEGImages" / "480p"
    listed = tmp_path / "m.csv"
    listed.write_text(f"video,prompts,name\n{clip / names[1]},{prompts},prompted\n")
    out = tmp_path / "out"
    code, _, err = run_cli(batch_args(listed, out, small_checkpoint), capsys)
    assert code == 0, err
    options = TrackerOptions(method="persam")
    segment_video(clip / names[1], tmp_path / "direct", load_prompts(prompts), options, small_model, resume=False,
                  progress=False)
    assert len(png_bytes(out / "prompted")) == FRAMES
    assert png_bytes(out / "prompted") == png_bytes(tmp_path / "direct")
    assert json.loads((out / "prompted" / ".done").read_text())["settings"]["inputs"]["prompts"] == str(prompts)

    ref_image, ref_mask = clip / names[0] / "00000.jpg", davis / "Annotations" / "480p" / names[0] / "00000.png"
    listed.write_text(f"video,name\n{clip / names[2]},found\n")
    code, _, err = run_cli(batch_args(listed, tmp_path / "refs", small_checkpoint, "--ref-image", ref_image,
                                      "--ref-mask", ref_mask), capsys)
    assert code == 0, err
    labels = read_label_png(ref_mask)
    refs = [Reference(k, read_photo(ref_image), labels == k) for k in sorted(set(labels.ravel()) - {0, 255})]
    segment_video(clip / names[2], tmp_path / "direct-refs", PromptSet([], refs), options, small_model,
                  resume=False, progress=False)
    assert png_bytes(tmp_path / "refs" / "found") == png_bytes(tmp_path / "direct-refs")
    assert len(png_bytes(tmp_path / "refs" / "found")) == FRAMES


def test_davis_run_goes_on_past_a_failing_sequence(clips, reference, small_checkpoint, tmp_path, capsys):
    manifest, names = clips
    root = tmp_path / "davis"
    shutil.copytree(manifest.parent / "davis", root)
    (root / "JPEGImages" / "480p" / names[1] / "00004.jpg").write_bytes(b"not a JPEG")  # fails mid-sequence
    out = tmp_path / "out"
    args = ["davis", "run", "--davis-root", root, "--subset", "val", "--out", out, "--checkpoint", small_checkpoint,
            *MODEL, "--eval"]
    code, printed, err = run_cli(args, capsys)
    assert code == 1, err
    lines = [line for line in err.splitlines() if line.startswith("persam-video:")]
    assert len(lines) == 1 and f"1 of 4 sequence(s) failed, not scored: {names[1]} (" in lines[0]
    assert "00004.jpg" in lines[0] and "Traceback" not in err and "J&F" not in printed
    done = [n for n in names if (out / n / ".done").exists()]
    assert done == [names[0], *names[2:]]
    assert png_bytes(out / names[2]) == png_bytes(reference / names[2])


def test_the_summary_is_complete_at_every_moment(tmp_path):
    summary = SummaryFile(tmp_path / "summary.csv", ["a", "b"])
    summary.write()
    assert [r["status"] for r in read_summary(tmp_path).values()] == [PENDING, PENDING]
    summary.record(Outcome("b", DONE, frames=3, objects=(1, 2), seconds=1.5, attempts=1))
    rows = read_summary(tmp_path)
    assert rows["a"]["status"] == PENDING and rows["b"]["objects"] == "1 2" and rows["b"]["frames"] == "3"
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_clip_whose_worker_dies_is_retried_then_reported_failed():
    from collections import deque

    from persam_video.batch import ClipTask, LocalExecutor
    from persam_video.batch.worker import WorkItem

    executor, queue, reported = LocalExecutor(workers=2, retries=1), deque(), []
    item = WorkItem(ClipTask("a", "a.mp4", "out/a", mask="a.png"), {})
    executor.retry_or_fail(item, "its worker process died", queue, reported.append)
    assert [i.attempt for i in queue] == [2] and not reported
    executor.retry_or_fail(queue.popleft(), "its worker process died", queue, reported.append)
    assert not queue and [(o.clip, o.status, o.attempts) for o in reported] == [("a", "failed", 2)]
    assert reported[0].error == "its worker process died (2 attempts)"


def _children_pool_workers() -> list:
    """The pids of this process's spawned pool workers (not multiprocessing's resource tracker)."""
    pids = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            cmdline = (status.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and b"spawn_main" in cmdline:
            pids.append(int(status.parent.name))
    return pids


def kill_when_mid_clip(out: Path, find_pids, killed: list, timeout: float = 120.0) -> threading.Thread:
    """A thread that SIGKILLs the first worker ``find_pids()`` gives once a clip in ``out`` has 2 PNGs
    and no marker (a clip in the middle); the pid goes into ``killed``."""
    def watch() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end and not killed:
            for folder in out.glob("*/"):
                if len(list(folder.glob("0*.png"))) >= 2 and not (folder / ".done").exists():
                    pids = find_pids()
                    if pids:
                        os.kill(pids[0], signal.SIGKILL)
                        killed.append(pids[0])
                        return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@BF16_MACHINES
def test_a_killed_pool_worker_clip_is_run_again_with_identical_output(machine_bf16, clips, reference, small_checkpoint,
                                                                      tmp_path, capsys):
    manifest, names = clips
    out = tmp_path / "out"
    killed: list = []
    watcher = kill_when_mid_clip(out, _children_pool_workers, killed)
    code, _, err = run_cli(batch_args(manifest, out, small_checkpoint, "--workers", "2"), capsys)
    watcher.join(1)
    assert killed, "no worker was killed: the clips finished before the test saw one in the middle"
    assert code == 0, err
    assert png_bytes(out) == png_bytes(reference)
    attempts = [int(row["attempts"]) for row in read_summary(out).values()]
    assert max(attempts) == 2 and all(row["status"] == "done" for row in read_summary(out).values())


def test_a_rerun_after_the_whole_run_was_killed_skips_the_finished_clips(clips, reference, small_checkpoint,
                                                                         tmp_path, capsys):
    manifest, names = clips
    out = tmp_path / "out"
    command = [sys.executable, "-m", "persam_video", *map(str, batch_args(manifest, out, small_checkpoint))]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and not (out / names[0] / ".done").exists() and process.poll() is None:
            time.sleep(0.005)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    finished = [n for n in names if (out / n / ".done").exists()]
    assert finished and len(finished) < len(names), finished
    stamps = {p: p.stat().st_mtime_ns for n in finished for p in (out / n).iterdir()}
    args = [a for a in batch_args(manifest, out, small_checkpoint) if a != "--quiet"]
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert all(f"{n}: done already, skipped" in err for n in finished)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert png_bytes(out) == png_bytes(reference)
    assert not list(out.rglob(".*.tmp*"))
