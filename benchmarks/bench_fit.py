"""PerSAM-F fitting time: cached decoder logits vs re-running the decoder every iteration.

With SAM frozen and the prompts fixed, the decoder's three full-resolution logits are the
same every iteration, so the tracker computes them once and fits the two scale weights on
the cache (``persam.fit_scale_weights``). The public recipe re-runs the decoder in every
one of its 800 iterations (:func:`fit_rerunning_the_decoder` below). Both are timed here
on a synthetic 480x854 frame for 1 and 3 objects, with the prompts the tracker uses (top
point, box centre, box). The re-run variant is timed over ``--rerun-iterations`` (default
50) and extrapolated linearly to the full count (marked in the table); its decoder runs
under ``no_grad`` (the weights get their gradient through the fusion only, as in the
cached variant), so the extrapolation is a lower bound for a recipe that keeps the
decoder in the autograd graph.

The fast fit (``mode="fast"``: sampled pixels, closed-form gradient) is timed beside them,
with its largest weight difference from the exact fit and the lowest IoU of the fused masks.

    python benchmarks/bench_fit.py [--iterations 800] [--rerun-iterations 50] [--objects 1,3]
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from typing import Callable

import numpy as np
import torch

from persam_video import persam
from persam_video.demo_clip import make_clip
from persam_video.model.loading import BUNDLED_DIR, build_model, load_sam
from persam_video.options import TrackerOptions
from persam_video.tracking.segmenter import VideoSegmenter

SIZE = (480, 854)


def fit_rerunning_the_decoder(decode: Callable[[], torch.Tensor], target: torch.Tensor, iterations: int = 800,
                              lr: float = 4e-4) -> torch.Tensor:
    """``persam.fit_scale_weights`` as the public recipe runs it: ``decode()`` gives the three
    full-resolution logits (N, 3, H, W) afresh in every iteration. The same optimiser, schedule
    and losses; with SAM frozen and fixed prompts it gives the same weights (tests/persam/test_persam.py)."""
    target = target.float()
    weights = torch.nn.Parameter(torch.full((target.shape[0], 2), 1 / 3, device=target.device))
    optimizer = torch.optim.AdamW([weights], lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    for _ in range(iterations):
        fused = persam.fuse(decode(), weights)
        loss = (persam.dice_loss(fused, target) + persam.focal_loss(fused, target)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return weights.detach()


def fit_inputs(model, n_objects: int):
    """The seeded tracker's fitting prompts, cached logits and targets for one synthetic frame."""
    clip = make_clip(seed=40 + n_objects, n_frames=1, size=SIZE, n_objects=n_objects, camera_motion=False)
    seg = VideoSegmenter(model, TrackerOptions(method="persam"))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    live = [o for o in seg.objects if o.feature is not None and o.box is not None]
    maps = persam.confidence_maps(seg.predictor, torch.stack([o.feature for o in live]))
    points = persam.top_points(maps, 1)
    centres = torch.as_tensor(np.stack([persam.box_centre(o.box) for o in live]))
    prompts = persam.Prompts(points=torch.cat((points, centres[:, None].to(points)), dim=1),
                             labels=torch.ones(len(live), 2),
                             boxes=torch.as_tensor(np.stack([o.box for o in live]), dtype=torch.float32))
    target = torch.stack([torch.as_tensor(clip.labels[0] == o.obj_id) for o in live])
    return seg.predictor, prompts, target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--rerun-iterations", type=int, default=50)
    parser.add_argument("--objects", default="1,3")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if (BUNDLED_DIR / "small_sam.pth").is_file():
        model, name = load_sam("small", device="cpu"), "small (bundled weights)"
    else:
        torch.manual_seed(0)
        model, name = build_model("small").eval(), "small (random weights)"
    rows = []
    for n in (int(v) for v in args.objects.split(",")):
        predictor, prompts, target = fit_inputs(model, n)

        def decode():
            with torch.no_grad():
                return persam.predict(predictor, prompts).logits

        t0 = time.perf_counter()
        cached_logits = decode()
        exact = persam.fit_scale_weights(cached_logits, target, args.iterations)
        t_cached = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = persam.fit_scale_weights(decode(), target, args.iterations, mode="fast")
        t_fast = time.perf_counter() - t0
        a, b = persam.fuse(cached_logits, exact) > 0, persam.fuse(cached_logits, fast) > 0
        fast_iou = float(((a & b).flatten(1).sum(1) / (a | b).flatten(1).sum(1).clamp(min=1)).min())
        t0 = time.perf_counter()
        rerun = fit_rerunning_the_decoder(decode, target, args.rerun_iterations)
        t_rerun = (time.perf_counter() - t0) * args.iterations / args.rerun_iterations
        same = persam.fit_scale_weights(cached_logits, target, args.rerun_iterations)
        rows.append((target.shape[0], t_cached, t_rerun, float((same - rerun).abs().max()), t_fast,
                     float((fast - exact).abs().max()), fast_iou))

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, python {platform.python_version()}")
    print(f"model {name}, device cpu, frame {SIZE[0]}x{SIZE[1]}, {args.iterations} iterations\n")
    print(f"| objects | cached logits ({args.iterations} it., measured) | decoder re-run each iteration "
          f"({args.iterations} it., extrapolated from {args.rerun_iterations}) | speed-up | "
          f"max weight difference after {args.rerun_iterations} it. | fast fit (mode='fast') | per object | "
          f"fast vs exact: max weight difference | lowest mask IoU |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for n, tc, tr, diff, tf, fdiff, fiou in rows:
        print(f"| {n} | {tc:.1f} s | {tr:.1f} s | {tr / tc:.1f}x | {diff:.1e} | {tf:.2f} s | {tf / n:.2f} s | "
              f"{fdiff:.1e} | {fiou:.4f} |")


if __name__ == "__main__":
    main()
