#!/usr/bin/env python
"""Prompting quality of the bundled small model on the bench_quality set: DAVIS J&F of PerSAM-F seeded
from the true first-frame masks, from one click per object, from one click + a box per object, and from
the true masks plus one correction per sequence (the true masks of its worst frame).

    python benchmarks/bench_prompting.py                                   # 6 sequences x 30 frames, 480x854
    python benchmarks/bench_prompting.py --sequences 6 --frames 30 --size 240x427

The set is the one ``benchmarks/bench_quality.py`` writes (same seed and generator). The click is the
object's most interior pixel on frame 0 (where a person would click: its middle), the box its tight box
there. The worst frame of a sequence is the one (first and last left out) where the run from the true
masks has its lowest J (mean over the objects); the correction gives every object's true mask on that frame.
Each run goes through ``persam_video.pipeline.segment_video`` (forward: every prompt's earliest frame is
0) and is scored with ``persam-video davis eval``.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import torch

from persam_video.davis.layout import DavisLayout
from persam_video.davis.metrics import j_measure
from persam_video.io.masks import object_ids, read_label_png
from persam_video.io.prompts import Prompt, PromptSet
from persam_video.model.loading import load_sam
from persam_video.options import TrackerOptions
from persam_video.persam import interior_point, tight_box
from persam_video.pipeline import segment_video

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from bench_quality import model_label, score  # noqa: E402  (benchmarks/bench_quality.py)
from synthetic import write_davis_dataset  # noqa: E402  (tools/synthetic.py)

Prompter = Callable[[str, List[np.ndarray]], List[Prompt]]


def true_masks(_: str, truth: List[np.ndarray]) -> List[Prompt]:
    """Every object's true mask on frame 0."""
    return [Prompt(0, k, mask=truth[0] == k) for k in object_ids(truth[0])]


def one_click(_: str, truth: List[np.ndarray]) -> List[Prompt]:
    """One positive click per object, on its most interior pixel of frame 0."""
    return [Prompt(0, k, interior_point(truth[0] == k)[None], np.array([1])) for k in object_ids(truth[0])]


def click_and_box(_: str, truth: List[np.ndarray]) -> List[Prompt]:
    """The click and the object's tight box on frame 0."""
    return [Prompt(0, k, interior_point(truth[0] == k)[None], np.array([1]),
                   tight_box(truth[0] == k).astype(np.float32)) for k in object_ids(truth[0])]


def worst_frame(results: Path, truth: List[np.ndarray]) -> int:
    """The frame, first and last left out (as DAVIS scores them), where the run in ``results`` has its
    lowest J (mean over the objects)."""
    ids = object_ids(truth[0])
    masks = sorted(results.glob("*.png"))
    per_frame = [np.mean([j_measure((read_label_png(masks[t]) == k)[None], (truth[t] == k)[None])[0] for k in ids])
                 for t in range(1, len(truth) - 1)]
    return int(np.argmin(per_frame)) + 1


def run(root: Path, out: Path, prompter: Prompter, model, options: TrackerOptions) -> Dict[str, int]:
    """Segment every sequence of the set from ``prompter``'s prompts into ``out``; returns the prompted
    frames per sequence."""
    layout = DavisLayout(root)
    frames_used = {}
    for sequence in layout.choose("val"):
        truth = [read_label_png(p) for p in layout.annotation_paths(sequence)]
        prompts = prompter(sequence, truth)
        segment_video(layout.frame_dir(sequence), out / sequence, PromptSet(prompts), options, model,
                      direction="forward", resume=False, progress=False)
        frames_used[sequence] = sorted({p.frame for p in prompts})
    return frames_used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="480x854", help="HxW of the synthetic frames")
    parser.add_argument("--seed", type=int, default=20261126, help="dataset seed (bench_quality's)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keep", metavar="DIR", help="write data and results here instead of a temp folder")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_sam("small", device="cpu", progress=False)
    options = TrackerOptions(method="persam-f")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        root = base / "davis"
        write_davis_dataset(root, seed=args.seed, n_sequences=args.sequences, n_frames=args.frames,
                            size=(height, width))
        layout = DavisLayout(root)
        for name, prompter in (("true masks on frame 0", true_masks), ("1 click per object", one_click),
                               ("1 click + box per object", click_and_box)):
            start = time.perf_counter()
            run(root, base / name.replace(" ", "_"), prompter, model, options)
            rows.append((name, score(root, base / name.replace(" ", "_"), start)))
            print(f"{name}: J&F {float(rows[-1][1]['J&F-Mean']):.3f}", file=sys.stderr, flush=True)

        plain = base / rows[0][0].replace(" ", "_")
        worst = {s: worst_frame(plain / s, [read_label_png(p) for p in layout.annotation_paths(s)])
                 for s in layout.choose("val")}

        def corrected(sequence: str, truth: List[np.ndarray]) -> List[Prompt]:
            t = worst[sequence]
            return true_masks(sequence, truth) + [Prompt(t, k, mask=truth[t] == k) for k in object_ids(truth[0])
                                                  if (truth[t] == k).any()]

        name = "true masks + 1 correction on the worst frame"
        start = time.perf_counter()
        run(root, base / "corrected", corrected, model, options)
        rows.append((name, score(root, base / "corrected", start)))
    print(f"\nSynthetic DAVIS set (bench_quality's): {args.sequences} sequences x {args.frames} frames at "
          f"{height}x{width}, seed {args.seed}; PerSAM-F, default options; worst frames {worst}; model: "
          f"{model_label(None)}; machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| seeded from | J&F | J-Mean | F-Mean | seconds |")
    print("|---|---:|---:|---:|---:|")
    for name, row in rows:
        print(f"| {name} | {row['J&F-Mean']} | {row['J-Mean']} | {row['F-Mean']} | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
