"""Peak memory of the whole ``persam-video segment`` pipeline against video length.

For each length a synthetic clip is written to an mp4 in a temporary folder (frames
streamed from ``iter_clip`` into the encoder, so the writer never holds them all), then
``persam-video segment`` runs on it in a fresh Python process so the peaks of different
lengths do not mix. The child reports its peak resident set size twice:
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` and ``VmHWM`` from ``/proc/self/status``.
The target is a flat peak: memory must not grow with the number of frames.

    python benchmarks/bench_memory.py [--lengths 100,1000] [--size 240x320] [--method persam]

The model is the bundled 'small' SAM if ``persam_video/model/weights/small_sam.pth`` exists,
otherwise a seeded random-weight 'small' checkpoint written to the temporary folder.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio.v2 as iio2
import torch

from persam_video.io.masks import write_label_png
from persam_video.model.loading import BUNDLED_DIR

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from synthetic import iter_clip  # noqa: E402  (tools/synthetic.py)


def write_video(path: Path, n_frames: int, size, seed: int = 7) -> Path:
    """Stream ``n_frames`` synthetic frames into an H.264 mp4; write the first frame's labels next to it."""
    writer = iio2.get_writer(str(path), fps=25, macro_block_size=1, quality=8)
    try:
        for t, (rgb, labels) in enumerate(iter_clip(seed, n_frames, size, n_objects=2, camera_motion=False)):
            if t == 0:
                write_label_png(path.with_suffix(".png"), labels)
            writer.append_data(rgb)
    finally:
        writer.close()
    return path


def vm_hwm_kib() -> int:
    """Peak resident set size from /proc/self/status (KiB); -1 where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def child(argv) -> None:
    """Run ``segment`` with ``argv`` in this process and print the peaks as JSON."""
    from persam_video.cli import main

    began = time.perf_counter()
    code = main(argv)
    seconds = time.perf_counter() - began
    print(json.dumps({"code": code, "seconds": seconds,
                      "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "vmhwm_kib": vm_hwm_kib()}))


def small_checkpoint(folder: Path) -> list:
    """Checkpoint arguments: the bundled small weights if present, else seeded random ones."""
    if (BUNDLED_DIR / "small_sam.pth").is_file():
        return []
    from persam_video.model.small import build_small_sam

    path = folder / "small_random.pth"
    torch.manual_seed(0)
    torch.save(build_small_sam().state_dict(), path)
    return ["--checkpoint", str(path)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lengths", default="100,1000", help="frame counts, comma-separated (default: %(default)s)")
    parser.add_argument("--size", default="240x320", help="HxW of the synthetic clip (default: %(default)s)")
    parser.add_argument("--method", default="persam", choices=("persam", "persam-f"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the child")
    parser.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        child(args.child)
        return
    h, w = (int(v) for v in args.size.lower().split("x"))
    lengths = [int(v) for v in args.lengths.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as tmp:
        tmp = Path(tmp)
        ckpt = small_checkpoint(tmp)
        for n in lengths:
            t0 = time.perf_counter()
            video = write_video(tmp / f"clip{n}.mp4", n, (h, w))
            written = time.perf_counter() - t0
            cmd = [sys.executable, __file__, "--child", "segment", str(video), "--mask", str(video.with_suffix(".png")),
                   "--out", str(tmp / f"out{n}"), "--method", args.method, "--model-type", "small",
                   "--device", "cpu", "--quiet", *ckpt]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                sys.exit(f"child failed for {n} frames:\n{result.stderr[-3000:]}")
            report = json.loads(result.stdout.strip().splitlines()[-1])
            masks = len(list((tmp / f"out{n}").glob("*.png")))
            rows.append((n, masks, report, written))
            print(f"{n} frames done: {report}", file=sys.stderr, flush=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{args.threads or 'default'} torch threads in the child, python {platform.python_version()}")
    print(f"clip {h}x{w}, method {args.method}, model small, device cpu\n")
    print("| frames | masks written | peak RSS (ru_maxrss) | peak RSS (VmHWM) | segment time | per frame "
          "| mp4 written in |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n, masks, r, written in rows:
        print(f"| {n} | {masks} | {r['maxrss_kib'] / 1024:.1f} MiB | {r['vmhwm_kib'] / 1024:.1f} MiB | "
              f"{r['seconds']:.1f} s | {1000 * r['seconds'] / n:.0f} ms | {written:.1f} s |")
    if len(rows) > 1:
        first, last = rows[0][2]["maxrss_kib"], rows[-1][2]["maxrss_kib"]
        print(f"\npeak growth from {rows[0][0]} to {rows[-1][0]} frames: {(last - first) / 1024:+.1f} MiB "
              f"({100 * (last - first) / first:+.1f} %)")


if __name__ == "__main__":
    main()
