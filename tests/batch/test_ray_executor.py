"""The Ray executor on one local Ray cluster for the whole session (``ray.init(num_cpus=2)``, no
dashboard): `davis run --executor ray` gives local's PNGs and CSVs; a killed actor's clip is run
again with identical output; a clip that fails is reported while the others finish."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from conftest import BF16_MACHINES, load_tool, run_cli
from test_batch_run import FRAMES, MODEL, SIZE, batch_args, kill_when_mid_clip, png_bytes, read_summary, write_manifest


@pytest.fixture(scope="session", autouse=True)
def ray_cluster():
    """One local Ray for every test of this file; the executor finds it initialised and uses it."""
    import ray  # the [test] extra installs it: a missing Ray fails here rather than skipping the tests

    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


def csv_and_png_bytes(folder: Path) -> dict:
    files = sorted(folder.rglob("*.png")) + sorted(folder.glob("*.csv"))
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in files}


@BF16_MACHINES
def test_davis_run_on_ray_gives_the_same_pngs_and_csvs_as_local(machine_bf16, small_checkpoint, tmp_path, capsys):
    root = tmp_path / "davis"
    names = load_tool("synthetic").write_davis_dataset(root, seed=1, n_sequences=3, n_frames=5, size=SIZE,
                                                       objects=(1, 2))
    outs = {}
    for executor in ("local", "ray"):
        out = tmp_path / executor
        args = ["davis", "run", "--davis-root", root, "--subset", "val", "--out", out, "--checkpoint",
                small_checkpoint, *MODEL, "--executor", executor, "--eval"]
        if executor == "ray":
            args += ["--workers", "2"]
        code, _, err = run_cli(args, capsys)
        assert code == 0, err
        outs[executor] = csv_and_png_bytes(out)
    assert len(outs["ray"]) == 3 * 5 + 2 and "global_results-val.csv" in outs["ray"]
    assert all(any(k.startswith(n + "/") for k in outs["ray"]) for n in names)
    assert outs["ray"] == outs["local"]


def _actors_running_a_clip() -> list:
    """The pids of Ray actor processes in the middle of a clip (their title is ``ray::_ClipActor.run``)."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if cmdline.read_bytes().startswith(b"ray::_ClipActor.run"):
                pids.append(int(cmdline.parent.name))
        except OSError:
            continue
    return pids


def test_a_killed_actor_clip_is_run_again_and_a_bad_clip_fails_alone(small_checkpoint, tmp_path, capsys):
    root = tmp_path / "clips"
    names = load_tool("synthetic").write_davis_dataset(root, seed=2, n_sequences=3, n_frames=FRAMES, size=SIZE,
                                                       objects=(1, 2))
    rows = [(f"{root}/JPEGImages/480p/{n}", f"{root}/Annotations/480p/{n}/00000.png", n) for n in names]
    (tmp_path / "corrupt.mp4").write_bytes(b"not a video" * 64)
    manifest = write_manifest(tmp_path / "clips.csv", rows + [(tmp_path / "corrupt.mp4", rows[0][1], "corrupt")])
    local = tmp_path / "local"
    code, _, err = run_cli(batch_args(manifest, local, small_checkpoint), capsys)
    assert code == 1, err
    out = tmp_path / "ray"
    killed: list = []
    watcher = kill_when_mid_clip(out, _actors_running_a_clip, killed)
    code, _, err = run_cli(batch_args(manifest, out, small_checkpoint, "--executor", "ray", "--workers", "2"),
                           capsys)
    watcher.join(1)
    assert killed, "no actor was killed: the clips finished before the test saw one in the middle"
    assert code == 1 and "1 of 4 clip(s) failed: corrupt (cannot open video" in err, err
    rows = read_summary(out)
    assert [rows[n]["status"] for n in names] == ["done"] * 3 and rows["corrupt"]["status"] == "failed"
    assert max(int(rows[n]["attempts"]) for n in names) == 2
    assert png_bytes(out) == png_bytes(local)


def test_sigterm_while_waiting_on_ray_is_the_commands_own_terminated(ray_cluster):
    """Ray's wait turns an exception raised by a signal handler into a SystemError; the executor
    gives back the command's Terminated, so that `batch --executor ray` exits 143 with one line."""
    import signal
    import threading
    import time

    from persam_video.batch.ray_executor import RayExecutor
    from persam_video.runtime.processes import Terminated, interruptible

    slow = ray_cluster.remote(lambda: time.sleep(20)).remote()
    with interruptible():
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        began = time.monotonic()
        with pytest.raises(Terminated):
            RayExecutor()._wait([slow])
    assert time.monotonic() - began < 10
    ray_cluster.cancel(slow, force=True)
