"""The fast path against fp32: per-frame encoder and prompting + decoding time, and how far the
masks move, for each precision / attention setting.

One synthetic 480x854 clip per object count is tracked with every setting, the settings taking
turns frame by frame (interleaved, so load from other processes hits them alike); times are the
medians over frames of the tracker's own encoder and decoder timings. Mean IoU is per object and
frame against the fp32 run (plain attention: the model as segment_anything builds it).

    python benchmarks/bench_precision.py [--model-type small|vit_b|vit_t] [--objects 1,3,5] [--frames 4]
                                         [--settings fp32/plain,fp32/fused/exact,fp32/fused,bf16/fused]
                                         [--method persam]

A setting is ``precision/attention[/decoder]`` (the ``--precision``, ``--attention`` and
``--decoder`` values; decoder ``auto`` when left out, which is fast with fused attention).
"decoding / encoder" divides each setting's prompting + decoding time by the first setting's
encoder time (the issue's target for 3 objects with vit_t: at most 0.2).

Model: the bundled small model, or ``vit_b`` / ``vit_t`` with seeded random weights (real cost,
meaningless masks: their IoU column only says the arithmetic agrees).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import SIZE, load_model  # noqa: E402

from persam_video.demo_clip import make_clip
from persam_video.model.fast_path import apply_precision
from persam_video.options import TrackerOptions
from persam_video.tracking.segmenter import VideoSegmenter


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def run(model, settings, clip, method: str) -> dict:
    """Track ``clip`` with every setting, interleaved; per setting: encoder and decoder seconds
    per frame (lists) and the label maps."""
    segmenters, out = {}, {}
    for name in settings:
        seg = VideoSegmenter(model[name], TrackerOptions(method=method, fit_iterations=100))
        seg.seed_frame(clip.frames[0], clip.labels[0])
        segmenters[name] = seg
        out[name] = {"encoder": [], "decoder": [], "labels": []}
    for frame in clip.frames[1:]:
        for name, seg in segmenters.items():
            enc, dec = seg.timings.encoder, seg.timings.decoder
            labels = seg.step(frame)
            out[name]["encoder"].append(seg.timings.encoder - enc)
            out[name]["decoder"].append(seg.timings.decoder - dec)
            out[name]["labels"].append(labels)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-type", default="small", choices=("small", "vit_b", "vit_t"))
    parser.add_argument("--objects", default="1,3,5")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip, the seed frame included")
    parser.add_argument("--settings", default="fp32/plain,fp32/fused/exact,fp32/fused,bf16/fused")
    parser.add_argument("--method", default="persam", choices=("persam", "persam-f"))
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    base, model_name = load_model(args.model_type)
    settings = args.settings.split(",")
    models = {}
    for name in settings:
        precision, attention, decoder = (name.split("/") + ["auto"])[:3]
        models[name] = copy.deepcopy(base)
        apply_precision(models[name], precision, attention, decoder)
    reference = settings[0]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; model {model_name}; clip {SIZE[0]}x{SIZE[1]}, {args.frames} frames; "
          f"{args.method}; IoU against {reference}\n")
    print("| objects | precision / attention / decoder | encoder ms/frame | prompting + decoding ms/frame | "
          f"decoding / encoder | total ms/frame | total / {reference} | mean IoU |")
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for n in (int(v) for v in args.objects.split(",")):
        clip = make_clip(seed=20 + n, n_frames=args.frames, size=SIZE, n_objects=n, camera_motion=False)
        out = run(models, settings, clip, args.method)
        ids = sorted(set(np.unique(clip.labels[0])) - {0})
        ref_total = ref_encoder = None
        for name in settings:
            enc = 1000 * statistics.median(out[name]["encoder"])
            dec = 1000 * statistics.median(out[name]["decoder"])
            ref_total, ref_encoder = ref_total or enc + dec, ref_encoder or enc
            scores = [iou(a == k, b == k) for a, b in zip(out[reference]["labels"], out[name]["labels"]) for k in ids]
            print(f"| {n} | {name} | {enc:.0f} | {dec:.0f} | {dec / ref_encoder:.2f} | {enc + dec:.0f} | "
                  f"{(enc + dec) / ref_total:.2f} | "
                  f"{np.mean(scores):.4f} |", flush=True)


if __name__ == "__main__":
    main()
