"""Where a frame's time goes in the segment pipeline: reading, image encoder, prompting and
decoding, writing; for 1, 3 and 5 objects, PerSAM and PerSAM-F.

A synthetic 480x854 clip (``make_clip``) is written as JPEG frames plus the first frame's
label PNG, then run through ``segment_video`` exactly like ``persam-video
segment``. Encoder and decoder times come from the tracker's own timings, writing is the time
the run waits for the label writer (its ``write`` and final ``close``: with ``--write-behind on``,
the default as in ``segment``, the PNGs are written on a background thread and this is only
the handing over and any wait for it), and "reading + other" is the rest of the wall time
(waiting for the read-ahead thread, seeding's target embedding, bookkeeping). Per-frame numbers are over
every written frame (the seed frame included, whose encoder pass is counted too); the
PerSAM-F fit is a one-off on the seed frame and is reported apart, not in the total.
``total / encoder`` is the ratio the issue targets (<= 1.10): the encoder pass is the
physical floor of this method.

    python benchmarks/bench_pipeline.py [--frames 8] [--objects 1,3,5] [--model-type small|vit_b]
                                        [--fit-iterations 800] [--threads N] [--write-behind on|off|both]

Model: the bundled 'small' SAM if ``persam_video/model/weights/small_sam.pth`` exists, else the
'small' architecture with seeded random weights built in-process; ``--model-type vit_b``
builds Meta's ViT-B SAM with random weights (real architecture and cost, meaningless masks).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from persam_video import pipeline
from persam_video.demo_clip import make_clip
from persam_video.io.masks import write_label_png
from persam_video.io.prompts import mask_prompts
from persam_video.model.loading import BUNDLED_DIR, build_model, load_sam
from persam_video.options import TrackerOptions

SIZE = (480, 854)


def load_model(model_type: str):
    """The bundled small model, or a seeded random-weight one of ``model_type``; and how it was made."""
    if model_type == "small" and (BUNDLED_DIR / "small_sam.pth").is_file():
        return load_sam("small", device="cpu"), "small (bundled weights)"
    torch.manual_seed(0)
    return build_model(model_type).eval(), f"{model_type} (random weights)"


def write_clip(folder: Path, n_frames: int, n_objects: int, seed: int) -> Path:
    """JPEG frames 00000.jpg... and the seed labels seed.png in ``folder``."""
    clip = make_clip(seed=seed, n_frames=n_frames, size=SIZE, n_objects=n_objects, camera_motion=False)
    frames = folder / "frames"
    frames.mkdir(parents=True)
    for i, rgb in enumerate(clip.frames):
        Image.fromarray(rgb).save(frames / f"{i:05d}.jpg", quality=90)
    write_label_png(folder / "seed.png", clip.labels[0])
    return frames


def measure(model, frames: Path, seed: Path, out: Path, method: str, fit_iterations: int,
            write_behind: bool = True) -> dict:
    """Run one clip through the pipeline (``segment_video``, forward from the seed); seconds per stage."""
    spent = {"writing": 0.0}

    def timed(call):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                spent["writing"] += time.perf_counter() - t0
        return wrapper

    def timed_writer(writer, on):
        made = real_behind(writer, on)
        made.write, made.close = timed(made.write), timed(made.close)
        return made

    real_behind = pipeline.behind
    pipeline.behind = timed_writer  # the time spent handing PNGs to the writer and writing them
    try:
        summary = pipeline.segment_video(frames, out, mask_prompts(seed),
                                         TrackerOptions(method=method, fit_iterations=fit_iterations), model,
                                         direction="forward", resume=False, progress=False, write_behind=write_behind)
    finally:
        pipeline.behind = real_behind
    busy = summary.encoder + summary.decoder + summary.fit + spent["writing"]
    return {"frames": summary.frames, "objects": len(summary.objects), "seconds": summary.seconds,
            "encoder": summary.encoder, "decoder": summary.decoder, "fit": summary.fit,
            "writing": spent["writing"], "reading": max(summary.seconds - busy, 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames per clip (default: %(default)s)")
    parser.add_argument("--objects", default="1,3,5", help="object counts (default: %(default)s)")
    parser.add_argument("--methods", default="persam,persam-f", help="methods (default: %(default)s)")
    parser.add_argument("--model-type", default="small", choices=("small", "vit_b"))
    parser.add_argument("--fit-iterations", type=int, default=800, help="PerSAM-F iterations (default: 800)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--write-behind", default="on", choices=("on", "off", "both"),
                        help="label PNGs written on a background thread (on, as segment does), in line (off), or "
                             "both, alternating which goes first (default: %(default)s)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, model_name = load_model(args.model_type)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as tmp:
        tmp = Path(tmp)
        for n in (int(v) for v in args.objects.split(",")):
            frames = write_clip(tmp / f"clip{n}", args.frames, n, seed=20 + n)
            for method in args.methods.split(","):
                modes = {"on": [True], "off": [False], "both": [False, True]}[args.write_behind]
                if len(rows) % 2:
                    modes.reverse()  # "both": off and on take turns going first
                for behind in modes:
                    r = measure(model, frames, tmp / f"clip{n}" / "seed.png", tmp / f"out{n}-{method}-{behind}",
                                method, args.fit_iterations, behind)
                    rows.append((method, behind, r))
                    print(f"{method}, {n} object(s), write-behind {behind}: {r}", file=sys.stderr, flush=True)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {platform.python_version()}")
    print(f"model {model_name}, device cpu, clip {SIZE[0]}x{SIZE[1]}, {args.frames} frames, "
          f"PerSAM-F fit {args.fit_iterations} iterations (cached logits)\n")
    print(f"label PNGs written behind (background thread): {args.write_behind}; load average "
          f"{' '.join(f'{v:.2f}' for v in os.getloadavg())} (1, 5, 15 min) at the end\n")
    both = args.write_behind == "both"
    print("| method | objects | " + ("write-behind | " if both else "") + "reading + other ms/frame | "
          "encoder ms/frame | prompting + decoding ms/frame | writing ms/frame | total ms/frame | total / encoder | "
          "PerSAM-F fit (once) |")
    print("|---|---:|" + ("---|" if both else "") + "---:|---:|---:|---:|---:|---:|---:|")
    for method, behind, r in rows:
        per = {k: 1000 * r[k] / r["frames"] for k in ("reading", "encoder", "decoder", "writing")}
        total = 1000 * (r["seconds"] - r["fit"]) / r["frames"]
        fit = f"{r['fit']:.1f} s" if method == "persam-f" else "-"
        mode = ("on | " if behind else "off | ") if both else ""
        print(f"| {method} | {r['objects']} | {mode}{per['reading']:.0f} | {per['encoder']:.0f} | "
              f"{per['decoder']:.0f} | {per['writing']:.0f} | {total:.0f} | {total / per['encoder']:.2f} | {fit} |")


if __name__ == "__main__":
    main()
