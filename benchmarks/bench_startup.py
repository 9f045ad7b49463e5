"""Start-up: from the command to the first mask on disk for ``persam-video segment`` with the
bundled model, and what the imports cost.

A 480x854 clip of JPEG frames and its seed mask are written to a temporary folder; then, in a
fresh process each time, ``python -m persam_video segment`` runs on it while this script polls
the output folder: "first mask" is when the start frame's PNG appears (the command has parsed
its flags, imported what it needs, opened the frames, loaded the model, decoded and encoded
the first frame, seeded the objects and written the result). Import times are measured in
fresh processes too: ``torch`` alone, ``torch`` + ``torchvision`` (which segment_anything
imports), and ``persam_video.cli``. Medians of ``--repeats`` runs.

    python benchmarks/bench_startup.py [--repeats 5] [--method persam]
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from persam_video.demo import make_clip
from persam_video.masks import write_label_png

IMPORTS = {"torch": "import torch", "torch + torchvision": "import torch, torchvision",
           "persam_video.cli": "import persam_video.cli"}


def import_seconds(statement: str) -> float:
    """Seconds a fresh interpreter spends on ``statement`` (interpreter start-up excluded)."""
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def first_mask_seconds(frames: Path, seed: Path, out: Path, method: str) -> tuple:
    """(seconds to the first mask file, seconds to the end) of one ``segment`` run."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "persam_video", "segment", str(frames), "--mask", str(seed),
                             "--out", str(out), "--method", method, "--threads", "2"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        runs = []
        for r in range(args.repeats):  # interleaved, so load on the machine hits every row alike
            for name, statement in IMPORTS.items():
                rows[name].append(import_seconds(statement))
            runs.append(first_mask_seconds(frames, tmp / "seed.png", tmp / f"out{r}", args.method))
    print(f"python {sys.version.split()[0]}, {args.repeats} runs each, medians (min-max)\n")
    print("| what | seconds |")
    print("|---|---:|")
    for name, values in rows.items():
        print(f"| import {name} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")
    for label, values in (("segment: command to first mask (3-frame 480x854 clip, bundled model)",
                           [r[0] for r in runs]), ("segment: whole command", [r[1] for r in runs])):
        print(f"| {label} | {statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f}) |")


if __name__ == "__main__":
    main()
