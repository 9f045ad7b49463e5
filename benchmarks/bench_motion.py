#!/usr/bin/env python
"""Per-frame cost of the motion switches: the tracker's step with the recipe, ``--propagation flow``,
``--target-memory 4`` and flow + leak guard, settings interleaved frame by frame, and the optical
flow alone; with the bundled small model and vit_t (random weights: the real cost, meaningless masks).

    python benchmarks/bench_motion.py [--models small,vit_t] [--frames 8] [--objects 3] [--size 480x854]

Each setting has its own tracker seeded on frame 0 of a synthetic clip; on every later frame each
tracker steps once, in a rotating order, and the medians of its step times are reported (PerSAM,
so no fit): CPU time of the whole process (all its threads; steadier than wall time on a shared
machine) and wall time. "flow alone" is the motion prior's carry on that frame (grey, flow,
warp, resize).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import torch

from persam_video.demo_clip import make_clip
from persam_video.options import TrackerOptions
from persam_video.tracking.motion import MotionPrior
from persam_video.tracking.segmenter import VideoSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import load_model  # noqa: E402  (the bundled model, or random weights for the others)

SETTINGS = {
    "recipe": {},
    "flow": {"propagation": "flow"},
    "memory 4": {"target_memory": 4},
    "flow + leak guard 1": {"propagation": "flow", "leak_guard": 1.0},
    "flow + memory 4 + leak guard 1": {"propagation": "flow", "target_memory": 4, "leak_guard": 1.0},
}


def measure(model, clip) -> dict:
    """Median step seconds per setting, and of the flow alone."""
    trackers = {}
    for name, settings in SETTINGS.items():
        seg = VideoSegmenter(model, TrackerOptions(method="persam", **settings))
        seg.seed_frame(clip.frames[0], clip.labels[0])
        trackers[name] = seg
    times = {name: [] for name in [*SETTINGS, "flow alone"]}
    prior = MotionPrior(clip.frames[0].shape[:2])
    for i, frame in enumerate(clip.frames[1:]):
        names = list(SETTINGS)
        names = names[i % len(names):] + names[:i % len(names)]
        for name in names:
            start = (time.process_time(), time.perf_counter())
            trackers[name].step(frame)
            times[name].append((time.process_time() - start[0], time.perf_counter() - start[1]))
        prior.remember(prior.grey(clip.frames[i]), clip.labels[i])
        start = (time.process_time(), time.perf_counter())
        prior.carry(prior.grey(frame))
        times["flow alone"].append((time.process_time() - start[0], time.perf_counter() - start[1]))
    return {name: tuple(statistics.median(v[k] for v in values) for k in (0, 1)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="small,vit_t")
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--size", default="480x854")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    clip = make_clip(seed=7, n_frames=args.frames + 1, size=size, n_objects=args.objects, camera_motion=False)
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} threads, "
          f"load average before: {os.getloadavg()[0]:.2f}; {args.objects} objects, {size[0]}x{size[1]}, "
          f"median of {args.frames} frames")
    print("\n| model | setting | CPU ms per frame | vs recipe | wall ms per frame |\n|---|---|---:|---:|---:|")
    for model_type in args.models.split(","):
        model, label = load_model(model_type)
        with torch.no_grad():
            result = measure(model, clip)
        base = result["recipe"][0]
        for name, (cpu, wall) in result.items():
            print(f"| {label} | {name} | {cpu * 1000:.0f} | {cpu / base:.2f}x | {wall * 1000:.0f} |")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
