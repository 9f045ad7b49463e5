"""The fast path against exact, per model and setting: per-frame encoder and prompting + decoding
time, the speed-up, how far the masks move, and what compiling cost.

One synthetic 480x854 clip per object count is tracked with every setting, the settings taking
turns frame by frame (interleaved, so load from other processes hits them alike); times are the
medians over the tracked frames (the seed frame left out: it carries a compiled setting's
compile) of the tracker's own encoder and decoder timings; "encoder best" is the fastest
frame's encoder pass (the least disturbed by other processes on a busy machine). Mean IoU is per object and frame
against the exact run (the model as segment_anything builds it).

    python benchmarks/bench_precision.py [--model-types small,vit_t,vit_b] [--objects 1,3] [--frames 4]
                                         [--settings exact,fused,bf16,bf16+compile,int8] [--threads N]
                                         [--compile-cache DIR] [--emulated-bf16]

A setting is a name or ``precision/attention[/decoder]`` (the ``--precision``, ``--attention`` and
``--decoder`` values) with ``+compile`` (``--compile on``) and/or ``+int8`` (``--quantize int8``)
added. Names: exact = fp32/plain/exact, fused = fp32/fused (with the fast decoder), bf16 =
bf16/fused; ``int8`` alone is fused+int8. On a CPU without native bf16 the bf16 settings are
left out (emulated bf16 is not what a user of such a CPU would run) unless ``--emulated-bf16``.

"compile s" is what the first encoder call spent building the compiled encoder (export and
AOTInductor), or with a warm ``--compile-cache`` loading it (default: a new empty folder, so
the build is cold).
"decoding / encoder" divides prompting + decoding by this setting's own encoder time and by
exact's ("/ exact enc.", the issue's target for 3 objects with vit_t: at most 0.2).

Model: the bundled small model, or ``vit_b`` / ``vit_t`` with seeded random weights (real cost,
meaningless masks: their IoU column only says how far the arithmetic moves them).
"""
from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import SIZE, load_model  # noqa: E402

from persam_video.demo_clip import make_clip
from persam_video.model.compiling import compile_encoder
from persam_video.model.fast_path import apply_precision, cpu_flags, cpu_has_native_bf16
from persam_video.model.quantizing import quantize_encoder
from persam_video.options import TrackerOptions
from persam_video.runtime.memory import keep_freed_memory
from persam_video.tracking.segmenter import VideoSegmenter

NAMES = {"exact": "fp32/plain/exact", "fused": "fp32/fused", "bf16": "bf16/fused"}


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def make_model(base: torch.nn.Module, setting: str, cache: Path) -> torch.nn.Module:
    """A copy of ``base`` on the path ``setting`` names (see the module's docstring)."""
    parts = setting.split("+")
    if parts[0] in ("compile", "int8"):
        parts.insert(0, "fused")
    precision, attention, decoder = (NAMES.get(parts[0], parts[0]).split("/") + ["auto", "auto"])[:3]
    model = copy.deepcopy(base)
    apply_precision(model, precision, attention, decoder, compiled="compile" in parts, quantized="int8" in parts)
    if "int8" in parts:
        quantize_encoder(model)
    if "compile" in parts:
        compile_encoder(model, cache)
    return model


def run(models: dict, clip, method: str) -> dict:
    """Track ``clip`` with every setting, interleaved; per setting: encoder and decoder seconds
    per tracked frame (lists) and the label maps."""
    segmenters, out = {}, {}
    for name, model in models.items():
        seg = VideoSegmenter(model, TrackerOptions(method=method, fit_iterations=100))
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


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-types", "--model-type", default="small,vit_t,vit_b")
    parser.add_argument("--objects", default="1,3")
    parser.add_argument("--frames", type=int, default=4, help="frames per clip, the seed frame included")
    parser.add_argument("--settings", default="exact,fused,bf16,bf16+compile,int8")
    parser.add_argument("--method", default="persam", choices=("persam", "persam-f"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--compile-cache", metavar="DIR", default=None,
                        help="inductor's cache folder (default: a new empty one: cold compiles)")
    parser.add_argument("--emulated-bf16", action="store_true",
                        help="run the bf16 settings on a CPU without native bf16 too")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    kept = keep_freed_memory()  # as the command does ($PERSAM_VIDEO_KEEP_MEMORY=0: without)
    native = cpu_has_native_bf16()
    settings = [s for s in args.settings.split(",")
                if native or args.emulated_bf16 or not NAMES.get(s.split("+")[0], s).startswith("bf16")]
    flags = sorted(f for f in cpu_flags() if "bf16" in f or f.startswith("amx"))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, native bf16: "
          f"{'yes' if native else 'no'} (flags: {', '.join(flags) or 'none'}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; clip {SIZE[0]}x{SIZE[1]}, {args.frames} frames; {args.method}; "
          f"freed memory kept for reuse: {'yes' if kept else 'no'}; load average at the start {load_average()}")
    if len(settings) < len(args.settings.split(",")):
        print("bf16 settings not measured: this CPU has no native bf16")
    print("\n| model | objects | setting | encoder ms/frame | encoder best | prompting + decoding ms/frame | "
          "decoding / encoder | / exact enc. | total ms/frame | speed-up vs exact | mean IoU vs exact | compile s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.compile_cache) if args.compile_cache else Path(tmp)
        for model_type in args.model_types.split(","):
            base, model_name = load_model(model_type)
            models = {name: make_model(base, name, cache) for name in ["exact"] + [s for s in settings
                                                                                   if s != "exact"]}
            for first, n in enumerate(int(v) for v in args.objects.split(",")):
                clip = make_clip(seed=20 + n, n_frames=args.frames, size=SIZE, n_objects=n, camera_motion=False)
                out = run(models, clip, args.method)
                ids = sorted(set(np.unique(clip.labels[0])) - {0})
                ref_enc = 1000 * statistics.median(out["exact"]["encoder"])
                ref_total = ref_enc + 1000 * statistics.median(out["exact"]["decoder"])
                for name, model in models.items():
                    enc = 1000 * statistics.median(out[name]["encoder"])
                    dec = 1000 * statistics.median(out[name]["decoder"])
                    scores = [iou(a == k, b == k) for a, b in zip(out["exact"]["labels"], out[name]["labels"])
                              for k in ids]
                    seconds = getattr(model.image_encoder, "compile_s", None)
                    compile_s = "-" if seconds is None or first else f"{seconds:.1f}"  # compiled on the first clip
                    best = 1000 * min(out[name]["encoder"])
                    print(f"| {model_name} | {n} | {name} | {enc:.0f} | {best:.0f} | {dec:.0f} | {dec / enc:.2f} | "
                          f"{dec / ref_enc:.2f} | {enc + dec:.0f} | {ref_total / (enc + dec):.2f}x | "
                          f"{np.mean(scores):.4f} | {compile_s} |", flush=True)
            del models, base
    print(f"\nload average at the end {load_average()}")


if __name__ == "__main__":
    main()
