"""PerSAM and PerSAM-F (exact and fast fit) on the public Personalize-SAM example photos, at their own
size, upscaled to 12 MP and one at 48 MP: the fit's seconds per object, seconds per photo, peak
memory, IoU of the fast fit's masks against the exact fit's, and PerSeg mIoU (the bundled model's
unless --model-type says otherwise: a synthetic-shapes model, so its mIoU says little of real photos).

The photos are read where the repository was fetched, never copied into the project:
``--examples`` is its ``examples/`` folder, or the repository's git directory (its ``examples/``
is then extracted to a temporary folder). Each configuration runs in its own process, so the peak
memory (ru_maxrss: the model, both photos and all the work) is that configuration's alone.
Example: ``python benchmarks/bench_photos.py --examples /work/.mirror/ZrrSkywalker+Personalize-SAM/repo``.
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
from typing import Dict

import numpy as np

OBJECTS = ("cat", "colorful_sneaker", "duck_toy")
SIZES = {"own": None, "12MP": 12_000_000, "48MP": 48_000_000}
CONFIGS = (("persam", "exact"), ("persam-f", "exact"), ("persam-f", "fast"))


def examples_folder(given: str, scratch: Path) -> Path:
    """``given`` if it is the examples folder, else ``examples/`` of the git directory, extracted."""
    path = Path(given)
    if (path / "cat_00.jpg").is_file():
        return path
    archive = subprocess.run(["git", f"--git-dir={path}", "archive", "HEAD", "examples"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
    return scratch / "examples"


def load(folder: Path, name: str, pixels):
    """A photo and its mask (bool), upscaled to about ``pixels`` (None: as they are)."""
    from PIL import Image

    image = Image.open(folder / f"{name}.jpg").convert("RGB")
    mask = Image.open(folder / f"{name}.png")
    if pixels is not None:
        scale = (pixels / (image.width * image.height)) ** 0.5
        size = (round(image.width * scale), round(image.height * scale))
        image, mask = image.resize(size, Image.BILINEAR), mask.resize(size, Image.NEAREST)
    return np.asarray(image), np.asarray(mask) > 0


def one(config: dict) -> dict:
    """One configuration, in this process: fit and segment, masks saved for the IoU columns."""
    import torch

    from persam_video.model.loading import load_sam
    from persam_video.photos import personalizer as module
    from persam_video.photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference
    from persam_video.runtime.system import set_threads

    cpu = []

    def timed(*args, real=module.fit_on_passes, **kwargs):  # the fit's CPU seconds, beside its wall time
        began = time.process_time()
        try:
            return real(*args, **kwargs)
        finally:
            cpu.append(time.process_time() - began)

    module.fit_on_passes = timed

    set_threads(config["threads"])
    model = load_sam(config["model_type"], config.get("checkpoint"), device="cpu")
    folder, pixels = Path(config["examples"]), SIZES[config["size"]]
    options = PhotoOptions(method=config["method"], fit_mode=config["mode"], fit_iterations=config["iterations"])
    fits, photo_seconds, inter, union, masks = [], [], [], [], {}
    for name in config["objects"]:
        image, mask = load(folder, f"{name}_00", pixels)
        personalizer = ImagePersonalizer(model, [PhotoReference(image, mask, 1, np.where(mask, 128, 0))], options)
        fits.append(personalizer.fit_seconds)
        del image, mask
        i = u = 0
        for index in config["photos"]:
            photo, truth = load(folder, f"{name}_{index:02d}", pixels)
            began = time.perf_counter()
            with torch.no_grad():
                got = personalizer.segment(photo).objects[0].mask
            photo_seconds.append(time.perf_counter() - began)
            i, u = i + int((got & truth).sum()), u + int((got | truth).sum())
            masks[f"{name}_{index:02d}"] = np.packbits(got)
            del photo, truth, got
        inter.append(i)
        union.append(u)
    np.savez(config["masks"], **masks)
    return {"fit": float(np.mean(fits)), "fit_cpu": float(np.mean(cpu)) if cpu else 0.0,
            "photo": float(np.mean(photo_seconds)),
            "miou": float(np.mean([a / max(b, 1) for a, b in zip(inter, union)])),
            "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def mask_iou(a_file: str, b_file: str) -> float:
    """The lowest IoU between the masks of two runs, photo by photo."""
    a, b = np.load(a_file), np.load(b_file)
    worst = 1.0
    for key in a.files:
        x, y = np.unpackbits(a[key]).astype(bool), np.unpackbits(b[key]).astype(bool)
        worst = min(worst, (x & y).sum() / max((x | y).sum(), 1))
    return float(worst)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", help="Personalize-SAM's examples/ folder or its git directory")
    parser.add_argument("--sizes", default="own,12MP,48MP", help="of own, 12MP, 48MP (default: all three)")
    parser.add_argument("--configs", default="persam,persam-f:exact,persam-f:fast",
                        help="method[:fit mode] list (default: all three)")
    parser.add_argument("--iterations", type=int, default=1000, help="PerSAM-F fit iterations (default: 1000)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the automatic policy)")
    parser.add_argument("--model-type", default="small")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(json.loads(args.one))))
        return
    if not args.examples:
        parser.error("--examples is required: Personalize-SAM's examples/ folder or its git directory")
    wanted = [tuple((c + ":exact").split(":")[:2]) for c in args.configs.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench_photos_") as tmp:
        scratch = Path(tmp)
        folder = examples_folder(args.examples, scratch)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, threads "
              f"{args.threads or 'auto'}, load average {os.getloadavg()[0]:.1f} at the start; model "
              f"{args.model_type}; PerSAM-F {args.iterations} iterations\n")
        print("| size | photos | method | fit | fit s/object (CPU s) | s/photo | peak GB | mIoU | fast vs exact IoU "
              "(worst photo) |")
        print("|---|---:|---|---|---:|---:|---:|---:|---:|")
        for size in args.sizes.split(","):
            objects, photos = (OBJECTS[:1], [1]) if size == "48MP" else (OBJECTS, [1, 2])
            runs: Dict[str, str] = {}
            for method, mode in wanted:
                masks = str(scratch / f"{size}_{method}_{mode}.npz")
                config = {"examples": str(folder), "size": size, "method": method, "mode": mode,
                          "iterations": args.iterations, "threads": args.threads, "model_type": args.model_type,
                          "checkpoint": args.checkpoint, "objects": list(objects), "photos": photos, "masks": masks}
                out = subprocess.run([sys.executable, __file__, "--one", json.dumps(config)], check=True,
                                     capture_output=True, text=True).stdout
                got = json.loads(out.strip().splitlines()[-1])
                runs[f"{method}:{mode}"] = masks
                compare = ""
                if (method, mode) == ("persam-f", "fast") and "persam-f:exact" in runs:
                    compare = f"{mask_iou(runs['persam-f:exact'], masks):.5f}"
                fit = mode if method == "persam-f" else "-"
                fit_s = f"{got['fit']:.2f} ({got['fit_cpu']:.2f})" if method == "persam-f" else "-"
                print(f"| {size} | {len(objects) * len(photos)} | {method} | {fit} | {fit_s} | {got['photo']:.2f} | "
                      f"{got['peak_gb']:.2f} | {got['miou']:.3f} | {compare} |", flush=True)
        print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
