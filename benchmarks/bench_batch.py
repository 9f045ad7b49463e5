"""Clips per second of ``persam-video batch``: local 1 worker, local 2 workers, Ray 2 workers.

Writes ``--clips`` synthetic clips (``tools/synthetic.py``'s DAVIS-like sequences, frame folders
and a first-frame mask each) and a CSV manifest, then times each configuration as a user runs
it: a fresh ``python -m persam_video batch ... --quiet`` process, model loading, process spawning
and Ray's start included. Each configuration writes to its own folder; every configuration with
one torch thread per worker must give the same PNGs, byte for byte, as the first (checked, the
script fails otherwise). Two threads give other masks (torch's float sums depend on the thread
count), so that row is not compared.

"Ratio to ideal" is clips/s divided by (cores used x the clips/s of one worker with one thread),
where cores used = workers x torch threads per worker: 1.0 means the extra cores are fully used.
The machine may be shared while it runs (other people's jobs): run it twice and compare.

    python benchmarks/bench_batch.py [--clips 8] [--frames 20] [--size 240x320] [--method persam]
"""
from __future__ import annotations

import argparse
import filecmp
import importlib.util
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (label, extra flags, workers, torch threads per worker)
CONFIGS = [
    ("local, 1 worker, 1 thread", ["--workers", "1", "--threads", "1"], 1, 1),
    ("local, 1 worker, 2 threads", ["--workers", "1", "--threads", "2"], 1, 2),
    ("local, 2 workers, 1 thread each", ["--workers", "2", "--threads", "1"], 2, 1),
    ("Ray (local cluster), 2 workers, 1 thread each", ["--executor", "ray", "--workers", "2", "--threads", "1"], 2, 1),
]


def write_clips(folder: Path, clips: int, frames: int, size) -> Path:
    """Synthetic clips and their manifest; returns the manifest."""
    spec = importlib.util.spec_from_file_location("synthetic", REPO / "tools" / "synthetic.py")
    synthetic = importlib.util.module_from_spec(spec)
    sys.modules["synthetic"] = synthetic
    spec.loader.exec_module(synthetic)
    names = synthetic.write_davis_dataset(folder / "davis", seed=7, n_sequences=clips, n_frames=frames, size=size,
                                          objects=(1, 2))
    manifest = folder / "clips.csv"
    manifest.write_text("video,mask\n" + "".join(
        f"davis/JPEGImages/480p/{n},davis/Annotations/480p/{n}/00000.png\n" for n in names))
    return manifest


def same_pngs(a: Path, b: Path) -> bool:
    """Whether two output folders hold the same PNGs, byte for byte."""
    left = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    right = sorted(p.relative_to(b) for p in b.rglob("*.png"))
    return left == right and all(filecmp.cmp(a / p, b / p, shallow=False) for p in left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", default="240x320", help="HxW of the clips (default: 240x320)")
    parser.add_argument("--method", default="persam", choices=("persam", "persam-f"))
    parser.add_argument("--only", type=int, nargs="*", help="run only these configurations (0-based)")
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_clips(Path(tmp), args.clips, args.frames, size)
        print(f"{args.clips} clips x {args.frames} frames at {size[1]}x{size[0]}, {args.method}, bundled small model; "
              f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, load average "
              f"{os.getloadavg()[0]:.1f} at start\n")
        rows, first, base = [], None, None
        for index, (label, flags, workers, threads) in enumerate(CONFIGS):
            if args.only is not None and index not in args.only:
                continue
            out = Path(tmp) / f"out{index}"
            command = [sys.executable, "-m", "persam_video", "batch", str(manifest), "--out", str(out), "--quiet",
                       "--method", args.method, *flags]
            began = time.perf_counter()
            subprocess.run(command, check=True, cwd=REPO)
            seconds = time.perf_counter() - began
            rate = args.clips / seconds
            if threads == 1:  # torch's sums depend on its thread count: compare runs of one thread per worker
                if first is None:
                    first = out
                elif not same_pngs(first, out):
                    raise SystemExit(f"{label}: PNGs differ from the first one-thread configuration's")
            if index == 0:
                base = rate
            ratio = f"{rate / (workers * threads * base):.2f}" if base else "n/a"
            rows.append(f"| {label} | {seconds:.1f} | {rate:.3f} | {ratio} |")
            print(rows[-1], flush=True)
        print("\n| configuration | wall s | clips/s | ratio to ideal |\n|---|---:|---:|---:|")
        print("\n".join(rows))
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; the one-thread configurations' PNGs identical")


if __name__ == "__main__":
    main()
