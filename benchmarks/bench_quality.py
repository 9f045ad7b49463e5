#!/usr/bin/env python
"""Tracking quality of the bundled small model: DAVIS J&F of PerSAM, PerSAM-F and the switches.

Writes a synthetic DAVIS-layout set (seeded apart from the training data: training renders
still images from ``(seed 0, step)``; these are clips from ``--seed``), runs
``persam-video davis run --eval`` once per configuration and prints one markdown table.

    python benchmarks/bench_quality.py                      # 6 sequences x 30 frames, 480x854
    python benchmarks/bench_quality.py --sequences 3 --frames 20 --size 240x427
"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

import torch

from persam_video.cli import main as cli_main
from persam_video.models import bundled_checkpoint, sha256_of
from persam_video.synthetic import write_davis_dataset

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
]


def run_config(root: Path, out: Path, extra: list, model_args: list) -> dict:
    """Run and score one configuration; returns the global row of the CSV plus seconds.

    Results left in ``out`` by an earlier run (``--keep``) are deleted first: the runner
    would skip their sequences, and the table would time and score old masks."""
    if out.exists():
        shutil.rmtree(out)
    start = time.perf_counter()
    code = cli_main(["davis", "run", "--davis-root", str(root), "--subset", "val", "--out", str(out),
                     "--eval", "--quiet", *model_args, *extra])
    if code != 0:
        raise SystemExit(f"davis run failed for {extra} (exit {code})")
    with open(out / "global_results-val.csv") as handle:
        row = next(csv.DictReader(handle))
    row["seconds"] = time.perf_counter() - start
    return row


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
    parser.add_argument("--configs", default="all", help="comma-separated indices into the table (default all)")
    parser.add_argument("--checkpoint", help="another checkpoint for --model-type small (default: bundled)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--keep", metavar="DIR", help="write data and results here instead of a temp folder")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.lower().split("x"))
    model_args = ["--model-type", "small", "--device", "cpu"]
    if args.checkpoint:
        model_args += ["--checkpoint", args.checkpoint]
    if args.threads:
        model_args += ["--threads", str(args.threads)]
    chosen = CONFIGS if args.configs == "all" else [CONFIGS[int(i)] for i in args.configs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.keep) if args.keep else Path(tmp)
        root = base / "davis"
        write_davis_dataset(root, seed=args.seed, n_sequences=args.sequences, n_frames=args.frames,
                            size=(height, width))
        rows = []
        for name, extra in chosen:
            row = run_config(root, base / "results" / name.replace(" ", "_").replace("+", "plus"), extra,
                             model_args)
            rows.append((name, row))
            print(f"{name}: J&F {float(row['J&F-Mean']):.3f}", file=sys.stderr, flush=True)
    print(f"\nSynthetic DAVIS set: {args.sequences} sequences x {args.frames} frames at {height}x{width}, "
          f"seed {args.seed}; model: {model_label(args.checkpoint)}; machine: {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads\n")
    print("| configuration | J&F | J-Mean | J-Recall | J-Decay | F-Mean | F-Recall | F-Decay | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, row in rows:
        cells = [row[k] for k in ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")]
        print(f"| {name} | " + " | ".join(cells) + f" | {row['seconds']:.0f} |")


if __name__ == "__main__":
    main()
