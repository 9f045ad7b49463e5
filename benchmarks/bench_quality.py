#!/usr/bin/env python
"""Tracking quality of the bundled small model: DAVIS J&F of PerSAM, PerSAM-F and the switches.

Writes a synthetic DAVIS-layout set (seeded apart from the training data: training renders
still images from ``(run seed, step)`` and clips with seeds from 10**10 on; these are clips
with seeds ``--seed * 100003 + i``), runs
``persam-video davis run --eval`` once per configuration and prints one markdown table.

    python benchmarks/bench_quality.py                      # 6 sequences x 30 frames, 480x854
    python benchmarks/bench_quality.py --sequences 3 --frames 20 --size 240x427
    python benchmarks/bench_quality.py --configs 0,1 --versus "--quantize int8"   # a model setting against exact

With ``--versus FLAGS`` every configuration runs twice, exactly and with the model flags FLAGS
added, and the table gets the second run's rows and the mean IoU of its masks against the exact
run's (per object and frame, the seed frame left out).

Three reference rows help read the others. "The true masks": the clips' label maps before the
void bands are drawn, scored as a tracker's output. The official evaluation counts void as
background, so even these lose: J&F 0.93 at 480x854, 0.83 at 240x427, where the 3-px bands are a
larger part of the objects (on very small frames a mask shrunk by the band would beat them on F).
Then the model prompted on every frame with each object's box from the ground truth, of that
frame (tight) or of the previous frame widened by 10 px (PerSAM's box prior with a perfect
history): about what a box-prompted tracker could get from this model. The gap between those and
the tracker rows is the tracker's (drift, lost objects).
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from persam_video.cli import main as cli_main
from persam_video.davis.layout import DavisLayout
from persam_video.io.frames import open_frames
from persam_video.io.masks import object_ids, read_label_png
from persam_video.io.writer import LabelWriter
from persam_video.model.loading import bundled_checkpoint, load_sam, sha256_of
from persam_video.persam import label_map, tight_box, widen_box

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
from synthetic import write_davis_dataset  # noqa: E402  (tools/synthetic.py)

CONFIGS = [
    ("PerSAM", ["--method", "persam"]),
    ("PerSAM-F", ["--method", "persam-f"]),
    ("PerSAM-F + guided attention", ["--method", "persam-f", "--guided-attention"]),
    ("PerSAM-F + semantic prompt", ["--method", "persam-f", "--semantic-prompt"]),
    ("PerSAM-F + negative point", ["--method", "persam-f", "--negative-point"]),
    ("PerSAM + all three switches", ["--method", "persam", "--guided-attention", "--semantic-prompt",
                                     "--negative-point"]),
    ("PerSAM + quality gate 0.8", ["--method", "persam", "--quality-gate", "0.8"]),
    ("PerSAM-F + quality gate 0.8", ["--method", "persam-f", "--quality-gate", "0.8"]),
    ("PerSAM + box growth 1.5", ["--method", "persam", "--box-growth", "1.5"]),
    ("PerSAM-F + box growth 1.5", ["--method", "persam-f", "--box-growth", "1.5"]),
    ("PerSAM-F + interior anchor", ["--method", "persam-f", "--anchor", "interior"]),
    ("PerSAM-F + box clip", ["--method", "persam-f", "--box-clip"]),
    ("PerSAM + interior anchor + box clip", ["--method", "persam", "--anchor", "interior", "--box-clip"]),
    ("PerSAM-F + interior anchor + box clip", ["--method", "persam-f", "--anchor", "interior", "--box-clip"]),
    # the combination benchmarks/README.md recommends for the bundled model
    ("PerSAM + interior anchor + box clip + margin 5",
     ["--method", "persam", "--anchor", "interior", "--box-clip", "--margin", "5"]),
    ("PerSAM-F + interior anchor + box clip + margin 5",
     ["--method", "persam-f", "--anchor", "interior", "--box-clip", "--margin", "5"]),
    # motion and memory (docs/method.md, "Following motion")
    ("PerSAM + flow", ["--method", "persam", "--propagation", "flow"]),
    ("PerSAM-F + flow", ["--method", "persam-f", "--propagation", "flow"]),
    ("PerSAM + memory 4", ["--method", "persam", "--target-memory", "4"]),
    ("PerSAM-F + memory 4", ["--method", "persam-f", "--target-memory", "4"]),
    ("PerSAM + flow + memory 4", ["--method", "persam", "--propagation", "flow", "--target-memory", "4"]),
    ("PerSAM-F + flow + memory 4", ["--method", "persam-f", "--propagation", "flow", "--target-memory", "4"]),
    ("PerSAM + flow + leak guard 1", ["--method", "persam", "--propagation", "flow", "--leak-guard", "1"]),
    ("PerSAM-F + flow + leak guard 1", ["--method", "persam-f", "--propagation", "flow", "--leak-guard", "1"]),
    ("PerSAM + flow + memory 4 + leak guard 1",
     ["--method", "persam", "--propagation", "flow", "--target-memory", "4", "--leak-guard", "1"]),
    ("PerSAM-F + flow + memory 4 + leak guard 1",
     ["--method", "persam-f", "--propagation", "flow", "--target-memory", "4", "--leak-guard", "1"]),
]


def run_config(root: Path, out: Path, extra: list, model_args: list) -> dict:
    """Run and score one configuration; returns the global row of the CSV plus seconds.

    Results left in ``out`` by an earlier run (``--keep``) are deleted first: the runner
    would skip their sequences, and the table would time and score old masks."""
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its tables: only the global row goes into ours
        code = cli_main(["davis", "run", "--davis-root", str(root), "--subset", "val", "--out", str(out),
                         "--eval", "--quiet", *model_args, *extra])
    if code != 0:
        raise SystemExit(f"davis run failed for {extra} (exit {code})")
    return global_row(out, start)


# the masks before the set's void bands: the official evaluation counts void as background, so
# even these score below 1 (much below on small frames: the bands are 3 px wide whatever the size)
TRUTH_ROW = "reference: the true masks (a perfect tracker)"
# ground-truth box prompts: (row name, take the box from the previous frame, pixels added per side)
BOX_REFERENCES = [
    ("reference: ground-truth box of the frame", False, 0),
    ("reference: previous frame's ground-truth box + 10 px", True, 10),
]


def run_box_reference(root: Path, out: Path, previous: bool, pad: int, predictor) -> dict:
    """Prompt the model (a ``SamPredictor``) with ground-truth boxes on every frame, write the
    masks, score them.

    Frame 0 is the annotation itself (as for a tracker). An object is prompted where its box
    source (this frame, or the previous one with ``previous``) shows it, and left out elsewhere;
    where masks overlap the larger logit wins, as in the tracker."""
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    layout = DavisLayout(root)
    for sequence in layout.choose("val"):
        writer = LabelWriter(out / sequence)
        truth = [read_label_png(p) for p in layout.annotation_paths(sequence)]
        ids = object_ids(truth[0])
        for frame in open_frames(layout.frame_dir(sequence)).frames():
            t = frame.index
            if t == 0:
                writer.write(frame.name, truth[0])
                continue
            predictor.set_image(frame.image)
            source = truth[t - 1 if previous else t]
            shown = [k for k in ids if (source == k).any()]
            boxes = [widen_box(tight_box(source == k), pad, *source.shape) for k in shown]  # as the tracker's
            logits = [torch.from_numpy(predictor.predict(box=box, multimask_output=False, return_logits=True)[0][0])
                      for box in boxes]
            labels = label_map(torch.stack(logits), shown) if shown else np.zeros(source.shape, np.uint8)
            writer.write(frame.name, labels)
    return score(root, out, start)


def score(root: Path, out: Path, start: float) -> dict:
    """``persam-video davis eval`` of a results folder: its global row, plus seconds since ``start``."""
    with contextlib.redirect_stdout(io.StringIO()):  # its tables: only the global row goes into ours
        code = cli_main(["davis", "eval", "--davis-root", str(root), "--subset", "val", "--results", str(out),
                         "--workers", "1"])
    if code != 0:
        raise SystemExit(f"davis eval failed for {out} (exit {code})")
    return global_row(out, start)


def global_row(out: Path, start: float) -> dict:
    """The global row of the CSV the evaluator wrote into ``out``, plus seconds since ``start``."""
    with open(out / "global_results-val.csv") as handle:
        row = next(csv.DictReader(handle))
    row["seconds"] = time.perf_counter() - start
    return row


def mean_iou(root: Path, exact: Path, other: Path) -> float:
    """Mean IoU, per object and frame (the seed frame left out), of the masks in ``other`` against ``exact``."""
    layout, scores = DavisLayout(root), []
    for sequence in layout.choose("val"):
        for path in sorted((exact / sequence).glob("*.png"))[1:]:
            a, b = read_label_png(path), read_label_png(other / sequence / path.name)
            for k in object_ids(read_label_png(layout.annotation_paths(sequence)[0])):
                union = np.logical_or(a == k, b == k).sum()
                scores.append(1.0 if union == 0 else float(np.logical_and(a == k, b == k).sum() / union))
    return float(np.mean(scores))


def model_label(checkpoint: Optional[str]) -> str:
    """Which weights were scored: the given file, or the bundled one with its sha256 prefix."""
    path = Path(checkpoint) if checkpoint else bundled_checkpoint("small")
    kind = "small SAM" if checkpoint else "bundled small SAM"
    return f"{kind} {path.name} (sha256 {sha256_of(path)[:12]})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="480x854", help="HxW of the synthetic frames")
    parser.add_argument("--seed", type=int, default=20261126, help="dataset seed (not the training seed)")
    parser.add_argument("--configs", default="all",
                        help="comma-separated indices into the table, or none (default all)")
    parser.add_argument("--checkpoint", help="another checkpoint for --model-type small (default: bundled)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-references", action="store_true",
                        help="leave out the reference rows (true masks, ground-truth boxes)")
    parser.add_argument("--keep", metavar="DIR", help="write data and results here instead of a temp folder")
    parser.add_argument("--versus", metavar="FLAGS", default=None,
                        help="model flags (quoted, e.g. \"--quantize int8\") to run every configuration with too, "
                             "scored against the exact run")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    model_args = ["--model-type", "small", "--device", "cpu"]
    if args.checkpoint:
        model_args += ["--checkpoint", args.checkpoint]
    if args.threads:
        model_args += ["--threads", str(args.threads)]
        torch.set_num_threads(args.threads)
    chosen = CONFIGS if args.configs == "all" else \
        [] if args.configs == "none" else [CONFIGS[int(i)] for i in args.configs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        root = base / "davis"
        truth = base / "results" / "truth"
        if truth.exists():
            shutil.rmtree(truth)
        write_davis_dataset(root, seed=args.seed, n_sequences=args.sequences, n_frames=args.frames,
                            size=(height, width), truth_root=truth)
        rows = []
        for name, extra in chosen:
            out = base / "results" / name.replace(" ", "_").replace("+", "plus")
            row = run_config(root, out, extra, model_args)
            rows.append((name, row))
            print(f"{name}: J&F {float(row['J&F-Mean']):.3f}", file=sys.stderr, flush=True)
            if args.versus:
                other = out.with_name(out.name + "_versus")
                row = run_config(root, other, extra, model_args + args.versus.split())
                row["iou"] = mean_iou(root, out, other)
                rows.append((f"{name}, {args.versus}", row))
                print(f"{name}, {args.versus}: J&F {float(row['J&F-Mean']):.3f}, mean IoU against exact "
                      f"{row['iou']:.4f}", file=sys.stderr, flush=True)
        if not args.no_references:
            from segment_anything import SamPredictor

            rows.append((TRUTH_ROW, score(root, truth, time.perf_counter())))
            predictor = SamPredictor(load_sam("small", args.checkpoint, device="cpu", progress=False))
            for name, previous, pad in BOX_REFERENCES:
                out = base / "results" / f"reference_{'previous' if previous else 'frame'}_{pad}"
                row = run_box_reference(root, out, previous, pad, predictor)
                rows.append((name, row))
                print(f"{name}: J&F {float(row['J&F-Mean']):.3f}", file=sys.stderr, flush=True)
    print(f"\nSynthetic DAVIS set: {args.sequences} sequences x {args.frames} frames at {height}x{width}, "
          f"seed {args.seed}; model: {model_label(args.checkpoint)}; machine: {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    versus = " mean IoU vs exact |" if args.versus else ""
    print(f"| configuration | J&F | J-Mean | J-Recall | J-Decay | F-Mean | F-Recall | F-Decay | seconds |{versus}")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|" + ("---:|" if args.versus else ""))
    for name, row in rows:
        cells = [row[k] for k in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")]
        iou = (f" {row['iou']:.4f} |" if "iou" in row else " - |") if args.versus else ""
        print(f"| {name} | " + " | ".join(cells) + f" | {row['seconds']:.0f} |{iou}")


if __name__ == "__main__":
    main()
