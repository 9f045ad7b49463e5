"""Start-up: from the command to the first mask on disk for ``persam-video segment`` with the
bundled model, and what the imports cost.

A 480x854 clip of JPEG frames and its seed mask are written to a temporary folder; then, in a
fresh process each time, ``python -m persam_video segment`` runs on it while this script polls
the output folder: "first mask" is when the start frame's PNG appears (the command has parsed
its flags, imported what it needs, opened the frames, loaded the model, decoded and encoded
the first frame, seeded the objects and written the result). Import times are measured in
fresh processes too: ``torch`` alone, ``torch`` + ``torchvision`` (what segment_anything's
package ``__init__`` imports), and ``persam_video.cli``. The rows marked "eager" set
``PERSAM_VIDEO_EAGER_IMPORTS=1``: segment_anything is imported whole, torchvision with it, as
before persam_video deferred its ``__init__`` (``persam_video/model/sam_import.py``). Medians of
``--repeats`` runs; the load average is printed beside them (start-up times are sensitive to
other processes).

    python benchmarks/bench_startup.py [--repeats 5] [--method persam] [--threads 2]

``--threads`` is passed to ``segment`` (default 2, this machine's cores): on a loaded machine two
torch threads contend with other processes and the encoder's first pass can take seconds.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.io.masks import write_label_png

EAGER_ENV = "PERSAM_VIDEO_EAGER_IMPORTS"
IMPORTS = {"torch": ("import torch", False), "torch + torchvision": ("import torch, torchvision", False),
           "persam_video.cli": ("import persam_video.cli", False),
           "persam_video.cli, eager": ("import persam_video.cli", True)}


def environment(eager: bool) -> dict:
    """This process's environment with ``$PERSAM_VIDEO_EAGER_IMPORTS`` set (eager) or removed."""
    env = {k: v for k, v in os.environ.items() if k != EAGER_ENV}
    if eager:
        env[EAGER_ENV] = "1"
    return env


def import_seconds(statement: str, eager: bool = False) -> float:
    """Seconds a fresh interpreter spends on ``statement`` (interpreter start-up excluded)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True,
                         env=environment(eager))
    return float(out.stdout.strip().splitlines()[-1])


def first_mask_seconds(frames: Path, seed: Path, out: Path, method: str, threads: int = 2,
                       eager: bool = False) -> tuple:
    """(seconds to the first mask file, seconds to the end) of one ``segment`` run."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "persam_video", "segment", str(frames), "--mask", str(seed),
                             "--out", str(out), "--method", method, "--threads", str(threads)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=environment(eager))
    first = None
    while proc.poll() is None:
        if first is None and any(out.glob("*.png")):
            first = time.perf_counter() - start
        time.sleep(0.005)
    if proc.returncode != 0:
        raise SystemExit(f"segment failed with status {proc.returncode}")
    total = time.perf_counter() - start
    return (first if first is not None else total), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--method", default="persam", choices=("persam", "persam-f"))
    parser.add_argument("--threads", type=int, default=2, help="segment's --threads (default 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        tmp = Path(tmp)
        clip = make_clip(seed=7, n_frames=3, size=(480, 854), n_objects=2, camera_motion=False)
        frames = tmp / "frames"
        frames.mkdir()
        for i, rgb in enumerate(clip.frames):
            Image.fromarray(rgb).save(frames / f"{i:05d}.jpg", quality=90)
        write_label_png(tmp / "seed.png", clip.labels[0])
        rows = {name: [] for name in IMPORTS}
        runs = {False: [], True: []}
        load_before = os.getloadavg()
        for r in range(args.repeats):  # interleaved, so load on the machine hits every row alike
            for name, (statement, eager) in IMPORTS.items():
                rows[name].append(import_seconds(statement, eager))
            for eager in (False, True):
                runs[eager].append(first_mask_seconds(frames, tmp / "seed.png", tmp / f"out{r}_{int(eager)}",
                                                      args.method, args.threads, eager))
        load_after = os.getloadavg()
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each, medians (min-max); load average "
          f"(1, 5, 15 min) {' '.join(f'{v:.2f}' for v in load_before)} before, "
          f"{' '.join(f'{v:.2f}' for v in load_after)} after\n")
    print("| what | seconds |")
    print("|---|---:|")
    for name, values in rows.items():
        print(f"| import {name} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")
    clip = f"3-frame 480x854 clip, bundled model, --method {args.method} --threads {args.threads}"
    for eager in (False, True):
        suffix = ", eager" if eager else ""
        for label, values in ((f"segment{suffix}: command to first mask ({clip})", [r[0] for r in runs[eager]]),
                              (f"segment{suffix}: whole command", [r[1] for r in runs[eager]])):
            print(f"| {label} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")


if __name__ == "__main__":
    main()
