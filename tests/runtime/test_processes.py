"""A killed or interrupted run leaves nothing behind: no worker outlives the command, only complete
files stay, and a rerun gives the files of an undisturbed run (issue 22).

`davis run --workers 2` runs in a subprocess of its own session, and is stopped once its first PNG
exists: SIGKILL (the OOM killer, a preempted job), SIGTERM (`kill`) or SIGINT to its process group
(Ctrl-C in a terminal). The pids of its children are read from /proc before the signal.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import load_tool

from persam_video.cli import main
from persam_video.io.masks import read_label_png
from persam_video.runtime.locking import LOCK_NAME

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads processes from /proc")

PROCESSES_PY = Path(__file__).resolve().parents[2] / "persam_video" / "runtime" / "processes.py"
SIZE, FRAMES = (64, 96), 6


def children(pid: int) -> list:
    """Every descendant of ``pid`` now (from /proc/<pid>/task/*/children)."""
    found = []
    for tasks in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in tasks.read_text().split()]
        except OSError:
            pass
    return found + [g for c in found for g in children(c)]


def alive(pid: int) -> bool:
    """Running (a zombie waiting to be reaped counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def is_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def wait_until(condition, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def masks(folder: Path) -> list:
    """The label PNGs under ``folder`` (not the hidden temporary files of a write in progress)."""
    return sorted(p for p in folder.rglob("*.png") if not p.name.startswith("."))


def png_bytes(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in masks(folder)}


@pytest.fixture(scope="module")
def davis(tmp_path_factory):
    """A synthetic DAVIS root: 3 sequences x 6 frames at 64x96."""
    root = tmp_path_factory.mktemp("davis")
    load_tool("synthetic").write_davis_dataset(root, seed=2, n_sequences=3, n_frames=FRAMES, size=SIZE,
                                               objects=(1, 2))
    return root


def davis_args(root, out, checkpoint, workers):
    return ["davis", "run", "--davis-root", str(root), "--out", str(out), "--workers", str(workers), "--threads", "1",
            "--quiet", "--checkpoint", str(checkpoint), "--model-type", "small", "--device", "cpu",
            "--method", "persam"]


@pytest.fixture(scope="module")
def undisturbed(davis, small_checkpoint, tmp_path_factory):
    """The PNGs of a run nobody interrupted."""
    out = tmp_path_factory.mktemp("undisturbed") / "results"
    assert main(davis_args(davis, out, small_checkpoint, 1)) == 0
    return png_bytes(out)


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT], ids=["kill", "term", "int"])
def test_stopped_davis_run_leaves_no_process_and_a_rerun_gives_the_undisturbed_files(
        signum, davis, undisturbed, small_checkpoint, tmp_path):
    out = tmp_path / "results"
    command = [sys.executable, "-m", "persam_video", *davis_args(davis, out, small_checkpoint, 2)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    kids: list = []
    try:
        # both workers past their start-up (each has written a frame of its own sequence): a worker
        # still importing torch when the parent dies ends only once its initializer runs (then at
        # once: test_a_worker_whose_parent_died_before_it_was_tied_ends_at_once), which can take
        # more than the 2 s below on a loaded machine
        assert wait_until(lambda: len({p.parent for p in out.glob("*/*.png")}) >= 2 or proc.poll() is not None, 180)
        assert proc.poll() is None, proc.stderr.read()
        kids = children(proc.pid)
        workers = [k for k in kids if is_worker(k)]
        assert len(workers) == 2, kids
        if signum == signal.SIGINT:
            os.killpg(proc.pid, signum)  # Ctrl-C reaches the whole foreground group
        else:
            os.kill(proc.pid, signum)
        assert wait_until(lambda: not any(alive(k) for k in workers), 2.0), "a worker outlived the signal by 2 s"
        code = proc.wait(60)
        err = proc.stderr.read()
        assert wait_until(lambda: not any(alive(k) for k in kids), 2.0), "a child outlived the command by 2 s"
    finally:
        for pid in kids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()

    for path in masks(out):  # only complete files (a SIGKILL may leave a hidden temporary, which the rerun clears)
        read_label_png(path)
    if signum == signal.SIGKILL:
        assert code == -signal.SIGKILL
        assert (out / LOCK_NAME).read_text().split() == [str(proc.pid)]  # left by the dead run: no obstacle
    else:
        expected = {signal.SIGTERM: (143, "persam-video: terminated"),
                    signal.SIGINT: (130, "persam-video: interrupted")}
        assert code == expected[signum][0], err
        assert len(err.strip().splitlines()) == 1 and err.startswith(expected[signum][1]), err
        assert not list(out.rglob(".*.tmp*")) and not (out / LOCK_NAME).exists()

    assert main(davis_args(davis, out, small_checkpoint, 1)) == 0
    assert png_bytes(out) == undisturbed
    assert not list(out.rglob(".*.tmp*")) and not (out / LOCK_NAME).exists()


# ------------------------------------------------------------------------ tie_to_parent itself
def python_loading_processes(body: str) -> list:
    """A ``python -c`` command that loads persam_video/runtime/processes.py alone (no torch: fast) as ``P``."""
    code = (f"import importlib.util, os, signal, sys, time\n"
            f"spec = importlib.util.spec_from_file_location('processes', {str(PROCESSES_PY)!r})\n"
            f"P = importlib.util.module_from_spec(spec); spec.loader.exec_module(P)\n" + textwrap.dedent(body))
    return [sys.executable, "-c", code]


def test_watchdog_ends_a_worker_whose_parent_was_killed_where_prctl_is_missing():
    worker = python_loading_processes("""
        P._set_parent_death_signal = lambda signum: False   # as on a system without prctl
        print(P.tie_to_parent(), flush=True)
        time.sleep(60)
    """)
    middle = [sys.executable, "-c", textwrap.dedent(f"""
        import subprocess, sys, time
        worker = subprocess.Popen({worker!r}, stdout=subprocess.PIPE, text=True)
        print(worker.pid, worker.stdout.readline().strip(), flush=True)
        time.sleep(60)
    """)]
    parent = subprocess.Popen(middle, stdout=subprocess.PIPE, text=True, start_new_session=True)
    pid = None
    try:
        pid, how = parent.stdout.readline().split()
        pid = int(pid)
        assert how == "watchdog"
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not alive(pid), 2.0)
    finally:
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()


def test_a_worker_whose_parent_died_before_it_was_tied_ends_at_once():
    # the parent pid handed over by the pool is not this process's parent any more
    proc = subprocess.run(python_loading_processes("""
        P.tie_to_parent(os.getppid() + 100000)
        print("survived")
    """), capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL and "survived" not in proc.stdout


def test_worker_is_tied_by_prctl_on_linux():
    proc = subprocess.run(python_loading_processes("""
        print(P.tie_to_parent())
        print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN)
    """), capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["prctl", "True"], proc.stderr


def test_pool_workers_die_with_the_command(tmp_path):
    """The package's one pool (runtime/pool.py: batch, photos, the DAVIS evaluator, here with the
    evaluator's initializer) uses the same tie: a SIGKILLed command leaves no worker behind."""
    script = tmp_path / "evalpool.py"
    script.write_text(textwrap.dedent("""
        import os, sys, time
        from collections import deque
        from persam_video.davis import evaluate
        from persam_video.runtime.pool import pool_round
        def busy(path):
            open(path, "w").close()
            time.sleep(60)
        if __name__ == "__main__":
            print("ready", flush=True)
            pool_round(deque(os.path.join(sys.argv[1], str(i)) for i in range(2)), busy, 2, lambda job, result: None,
                       evaluate._init_worker)
    """))
    started = tmp_path / "started"
    started.mkdir()
    env = {**os.environ, "PYTHONPATH": str(PROCESSES_PY.parents[2])}  # this checkout's package, not an install
    proc = subprocess.Popen([sys.executable, str(script), str(started)], stdout=subprocess.PIPE, text=True,
                            start_new_session=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert wait_until(lambda: len(list(started.iterdir())) == 2, 60)  # both workers initialised and busy
        workers = [c for c in children(proc.pid) if is_worker(c)]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert wait_until(lambda: not any(alive(w) for w in workers), 2), "evaluator workers outlived the command"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
