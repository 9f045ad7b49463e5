"""The ui's parts without a browser: Track's background job, session expiry, uploads, the command's errors."""
from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli

from persam_video.errors import PersamError
from persam_video.io.masks import read_label_png
from persam_video.io.writer import LabelWriter
from persam_video.options import TrackerOptions
from persam_video.ui.store import SessionStore
from persam_video.ui.tracking import CANCELLED, DONE, FAILED, TrackJob
from persam_video.ui.video import UiError, display_name, save_upload, upload_suffix


def slow_frames(n: int, delay: float, fail_at: int = -1, error: Exception = PersamError("frame 3 is broken")):
    """A stand-in for VideoSession.propagate: n results, one every ``delay`` seconds."""
    for i in range(n):
        if i == fail_at:
            raise error
        time.sleep(delay)
        yield SimpleNamespace(name=f"{i:05d}", labels=np.full((4, 6), i % 3, np.uint8))


def test_track_job_writes_every_frame_and_reports_progress(tmp_path):
    ended = threading.Event()
    job = TrackJob(lambda: slow_frames(5, 0.0), LabelWriter(tmp_path), 5, threading.Lock(), on_end=ended.set).start()
    assert job.wait(10) and ended.is_set()
    assert job.state == DONE and job.progress()["done"] == 5
    assert [read_label_png(tmp_path / f"{i:05d}.png")[0, 0] for i in range(5)] == [0, 1, 2, 0, 1]


def test_track_job_cancel_stops_between_frames_and_keeps_what_it_wrote(tmp_path):
    job = TrackJob(lambda: slow_frames(200, 0.02), LabelWriter(tmp_path), 200, threading.Lock()).start()
    while job.done < 2:
        time.sleep(0.01)
    job.cancel()
    assert job.wait(10)
    assert job.state == CANCELLED and 2 <= job.done < 200
    assert len(list(tmp_path.glob("*.png"))) == job.done


@pytest.mark.parametrize("error, message", [(PersamError("frame 3 is broken"), "frame 3 is broken"),
                                            (RuntimeError("CUDA out of memory\nmore"),
                                             "tracking failed: CUDA out of memory")])
def test_track_job_failure_is_a_message(tmp_path, error, message, capsys):
    job = TrackJob(lambda: slow_frames(5, 0.0, fail_at=3, error=error), LabelWriter(tmp_path), 5,
                   threading.Lock()).start()
    assert job.wait(10)
    assert job.state == FAILED and job.message == message and job.done == 3


def test_idle_sessions_end_and_stopping_removes_every_folder():
    store = SessionStore(model=None, options=TrackerOptions(), timeout=1.0)  # swept every 0.5 s
    idle, active = store.create(), store.create()
    assert idle.folder.is_dir() and active.folder.parent == store.root and idle.id != active.id
    time.sleep(0.6)
    assert store.get(active.id) is active  # its page asked for something: it stays
    time.sleep(0.6)
    store.sweep()
    assert store.get(idle.id) is None and not idle.folder.exists()
    assert store.get(active.id) is active and active.folder.is_dir()
    store.close()
    assert not store.root.exists()


def test_session_limit():
    store = SessionStore(model=None, options=TrackerOptions(), max_sessions=1)
    try:
        store.create()
        with pytest.raises(UiError, match="already has 1 sessions") as caught:
            store.create()
        assert caught.value.status == 503
    finally:
        store.close()


async def chunks(*sizes):
    for size in sizes:
        yield b"x" * size


def test_upload_over_the_limit_leaves_nothing(tmp_path):
    with pytest.raises(UiError, match="upload limit of 100 bytes") as caught:
        asyncio.run(save_upload(chunks(60, 60), tmp_path, "clip.mp4", limit=100))
    assert caught.value.status == 413 and list(tmp_path.iterdir()) == []
    saved = asyncio.run(save_upload(chunks(60, 40), tmp_path, "../../etc/clip.MOV", limit=100))
    assert saved == tmp_path / "upload.mov" and saved.stat().st_size == 100
    assert [p.name for p in tmp_path.iterdir()] == ["upload.mov"]


def test_browser_file_names_are_only_shown():
    assert upload_suffix("a/b/../x.sh") == ".bin" and upload_suffix("clip.WebM") == ".webm"
    assert display_name("C:\\Users\\me\\clip.mp4") == "clip.mp4"
    assert display_name("../../etc/passwd\x00") == "passwd"
    assert display_name("") == "video"


def test_ui_command_errors_are_one_line(capsys, monkeypatch, tmp_path):
    code, _, err = run_cli(["ui", "--port", "70000"], capsys)
    assert_one_line_error(code, err, "--port must be between 0 and 65535")
    code, _, err = run_cli(["ui", "--video", tmp_path / "missing.mp4"], capsys)
    assert_one_line_error(code, err, "--video: not found")
    code, _, err = run_cli(["ui", "--max-upload-mb", "0"], capsys)
    assert_one_line_error(code, err, "--max-upload-mb must be above 0")
    code, _, err = run_cli(["ui", "--margin", "-1"], capsys)
    assert_one_line_error(code, err, "--margin")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        code, _, err = run_cli(["ui", "--port", taken.getsockname()[1]], capsys)
    assert_one_line_error(code, err, "cannot listen on 127.0.0.1:")
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # the [ui] extra is not installed
    code, _, err = run_cli(["ui"], capsys)
    assert_one_line_error(code, err, "the web page needs the ui extra", "pip install")
