"""Freed memory kept for reuse: glibc told so at start by the command and the batch workers,
switched off by the environment, a bad value a one-line error."""
from __future__ import annotations

import ctypes
import platform
from types import SimpleNamespace

import pytest
from conftest import assert_one_line_error, run_cli

from persam_video.batch import worker as worker_module
from persam_video.errors import PersamError
from persam_video.runtime import memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def test_keeping_freed_memory_takes_on_glibc_and_is_switched_off_by_the_environment(monkeypatch):
    calls = []

    def mallopt(param, value):
        calls.append((param, value))
        return 1

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: SimpleNamespace(mallopt=mallopt))
    monkeypatch.delenv(memory.KEEP_MEMORY_ENV, raising=False)
    assert memory.keep_freed_memory() is platform.system().startswith("Linux")
    if calls:  # the trim threshold first (it stops glibc moving the mmap threshold), then no mmap at all
        assert calls == [(-1, 2**31 - 1), (-4, 0)]
    calls.clear()
    monkeypatch.setenv(memory.KEEP_MEMORY_ENV, "0")
    assert memory.keep_freed_memory() is False and calls == []
    monkeypatch.setenv(memory.KEEP_MEMORY_ENV, "yes")
    with pytest.raises(PersamError, match="PERSAM_VIDEO_KEEP_MEMORY must be 1 or 0"):
        memory.keep_freed_memory()


def test_a_refused_or_missing_mallopt_says_so(monkeypatch):
    monkeypatch.delenv(memory.KEEP_MEMORY_ENV, raising=False)
    monkeypatch.setattr(memory.sys, "platform", "linux")

    def refusing(param, value):
        return 0

    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: SimpleNamespace(mallopt=refusing))
    assert memory.keep_freed_memory() is False
    monkeypatch.setattr(memory.ctypes, "CDLL", lambda name: object())  # a C library without mallopt (musl)
    assert memory.keep_freed_memory() is False


@pytest.mark.skipif(not GLIBC, reason="glibc's mallopt: this machine's C library is another")
def test_the_real_mallopt_takes_here():
    assert memory.keep_freed_memory() is True
    assert ctypes.CDLL("libc.so.6").mallopt(-4, 0) == 1  # the call it makes is one glibc accepts


def test_the_command_and_the_batch_workers_keep_freed_memory(monkeypatch, capsys, small_checkpoint):
    seen = []
    monkeypatch.setattr("persam_video.cli.keep_freed_memory", lambda: seen.append("cli"))
    code, _, err = run_cli(["segment", "/no/such/clip", "--out", "/tmp/none", "--point", "1,1"], capsys)
    assert code == 2 and seen == ["cli"]
    monkeypatch.setattr(worker_module, "keep_freed_memory", lambda: seen.append("worker"))
    from persam_video.batch.worker import WorkerSpec
    from persam_video.model.loading import ModelSpec
    from persam_video.options import TrackerOptions

    worker_module.ClipWorker(WorkerSpec(model=ModelSpec(model_type="small", checkpoint=str(small_checkpoint),
                                                        device="cpu"), options=TrackerOptions()))
    assert seen == ["cli", "worker"]


def test_a_bad_setting_is_a_one_line_error(monkeypatch, capsys):
    monkeypatch.setenv(memory.KEEP_MEMORY_ENV, "lots")
    code, _, err = run_cli(["segment", "/no/such/clip", "--out", "/tmp/none", "--point", "1,1"], capsys)
    assert_one_line_error(code, err, "PERSAM_VIDEO_KEEP_MEMORY")
