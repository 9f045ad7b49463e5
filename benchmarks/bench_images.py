"""The photo recipe on a synthetic PerSeg-like set with the bundled model: mIoU, boundary IoU and
how well absent objects are told apart, PerSAM and PerSAM-F, photos per second, the fit's time.

Each object is one synthetic clip's first object (textured shape on a textured background, moving
and turning): photo 00 and its mask are the reference, the others are scored as PerSeg scores them
(counts summed over an object's photos, the reference left out). "Absent" photos come from other
clips, without that object: a found object there is a false detection. The bundled model knows
only such synthetic shapes, so these figures say nothing about real photos.
Then ``persam-video images`` over all the set's photos from one reference, whole commands timed
(start-up and model loading included) at 1 and N workers, interleaved.
Example: ``python benchmarks/bench_images.py --objects 8 --photos 6 --workers 2``.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from persam_video.demo_clip import make_clip
from persam_video.model.loading import load_sam
from persam_video.photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference


def boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """The mask's pixels within ``width`` of its edge (boundary IoU's band)."""
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)
    return mask & ~cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=8, help="objects (clips) in the set (default: 8)")
    parser.add_argument("--photos", type=int, default=6, help="photos per object, the reference included")
    parser.add_argument("--size", default="240x320", help="photo size HxW (default: 240x320)")
    parser.add_argument("--presence", type=float, default=0.99, help="presence ratio for the gated rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="the N of the photos/s rows (default: 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each workers setting (default: 2)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    model = load_sam("small", device="cpu")
    clips = [make_clip(seed=500 + i, n_frames=args.photos, size=size, n_objects=1) for i in range(args.objects)]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}; {args.objects} objects x {args.photos} photos at "
          f"{size[1]}x{size[0]}, bundled model\n")
    print("| method | presence | mIoU | boundary IoU | found on absent photos | kept on present photos | "
          "photos/s | fit s/object |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for method in ("persam", "persam-f"):
        for presence in (0.0, args.presence):
            ious, bious, false_found, kept, photos, fit_seconds = [], [], [], [], 0, []
            began = time.perf_counter()
            fit_total = 0.0
            for i, clip in enumerate(clips):
                t0 = time.perf_counter()
                personalizer = ImagePersonalizer(model, [PhotoReference(clip.frames[0], clip.labels[0] == 1, 1)],
                                                 PhotoOptions(method=method, presence=presence))
                fit_seconds.append(time.perf_counter() - t0)
                fit_total += fit_seconds[-1]
                inter = union = b_inter = b_union = 0
                for t in range(1, args.photos):
                    obj = personalizer.segment(clip.frames[t]).objects[0]
                    truth = clip.labels[t] == 1
                    inter += int((obj.mask & truth).sum())
                    union += int((obj.mask | truth).sum())
                    bp, bt = boundary(obj.mask, 3), boundary(truth, 3)
                    b_inter += int((bp & bt).sum())
                    b_union += int((bp | bt).sum())
                    kept.append(obj.found)
                    photos += 1
                other = clips[(i + 1) % len(clips)]
                for t in range(1, args.photos):
                    false_found.append(personalizer.segment(other.frames[t]).objects[0].found)
                    photos += 1
                ious.append(inter / max(union, 1))
                bious.append(b_inter / max(b_union, 1))
            seconds = time.perf_counter() - began - fit_total
            fit = f"{np.mean(fit_seconds):.1f}" if method == "persam-f" else "-"
            print(f"| {method} | {presence or 'off'} | {np.mean(ious):.3f} | {np.mean(bious):.3f} | "
                  f"{np.mean(false_found):.0%} | {np.mean(kept):.0%} | {photos / seconds:.2f} | {fit} |")
    command_rows(clips, args)


def command_rows(clips, args) -> None:
    """``persam-video images`` over every photo of the set (one reference), at 1 and N workers."""
    from PIL import Image

    from persam_video.io.masks import write_label_png

    with tempfile.TemporaryDirectory(prefix="bench_images_") as tmp:
        folder = Path(tmp)
        (folder / "album").mkdir()
        Image.fromarray(clips[0].frames[0]).save(folder / "ref.png")
        write_label_png(folder / "ref_mask.png", clips[0].labels[0])
        count = 0
        for i, clip in enumerate(clips):
            for t, frame in enumerate(clip.frames[1:]):
                Image.fromarray(frame).save(folder / "album" / f"{i:02d}_{t:02d}.png")
                count += 1
        times = {1: [], args.workers: []}
        for _ in range(args.repeats):
            for workers in times:
                out = folder / f"out{workers}"
                began = time.perf_counter()
                subprocess.run([sys.executable, "-m", "persam_video", "images", "--ref-image", str(folder / "ref.png"),
                                "--ref-mask", str(folder / "ref_mask.png"), str(folder / "album"), "--out", str(out),
                                "--quiet", "--restart", "--workers", str(workers)], check=True)
                times[workers].append(time.perf_counter() - began)
    print(f"\n`persam-video images`, {count} photos, PerSAM, whole command (median of {args.repeats}; load average "
          f"{os.getloadavg()[0]:.1f} at the end):\n")
    print("| workers | seconds | photos/s |")
    print("|---:|---:|---:|")
    for workers, values in times.items():
        median = statistics.median(values)
        print(f"| {workers} | {median:.1f} | {count / median:.2f} |")


if __name__ == "__main__":
    main()
