#!/usr/bin/env python
"""The training loss curve of a chain of runs of ``train_small_sam.py``, as a table, a CSV and a PNG.

A model is often trained in stages (a run, then a run started from its weights with ``--init``);
give the runs in order and their steps are laid end to end::

    python tools/loss_curve.py v2b v5 --every 250 \
        --csv tools/training_log/small_sam_loss.csv --png tools/training_log/small_sam_loss.png

The table (markdown, on stdout) gives the mean of each loss term over windows of ``--every``
steps, with the learning rate and input size at the window's start and the training minutes
so far. The CSV holds the same means over windows of ``--csv-every`` steps (small enough to
commit); the PNG plots the total loss and the dice term (drawn with OpenCV, no plotting library).
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional

import cv2
import numpy as np

RUNS_DIR = Path(__file__).resolve().parent / "train_runs"
TERMS = ("loss", "focal", "dice", "iou_mse")


def read_chain(runs: List[str], runs_dir: Path = RUNS_DIR) -> Dict[str, np.ndarray]:
    """Rows of the runs' loss.csv files end to end: step, time (minutes) and the loss terms, plus lr and size."""
    cols: Dict[str, list] = {k: [] for k in ("step", "minutes", "lr", "img_size", "run") + TERMS}
    step_offset, time_offset = 0, 0.0
    for run in runs:
        path = runs_dir / run / "loss.csv"
        if not path.is_file():
            raise SystemExit(f"no loss log for run {run!r}: {path} does not exist")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if not rows:
            raise SystemExit(f"{path} is empty")
        for r in rows:
            cols["step"].append(step_offset + int(r["step"]))
            cols["minutes"].append((time_offset + float(r["time"])) / 60)
            cols["lr"].append(float(r["lr"]))
            cols["img_size"].append(int(r["img_size"]))
            cols["run"].append(run)
            for k in TERMS:
                cols[k].append(float(r[k]))
        step_offset = cols["step"][-1]
        time_offset += float(rows[-1]["time"])
    return {k: np.asarray(v) for k, v in cols.items()}


def windows(chain: Dict[str, np.ndarray], every: int) -> List[dict]:
    """Means of the loss terms over consecutive windows of ``every`` steps."""
    out = []
    for start in range(0, len(chain["step"]), every):
        sl = slice(start, start + every)
        row = {"steps": f"{chain['step'][sl][0]}-{chain['step'][sl][-1]}", "run": chain["run"][start],
               "img_size": int(chain["img_size"][start]), "lr": float(chain["lr"][start]),
               "minutes": float(chain["minutes"][sl][-1])}
        row.update({k: float(chain[k][sl].mean()) for k in TERMS})
        out.append(row)
    return out


def markdown(rows: List[dict]) -> str:
    lines = ["| steps | run | input | lr at start | loss | dice | BCE/focal | IoU MSE | CPU minutes |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['steps']} | {r['run']} | {r['img_size']} | {r['lr']:.2g} | {r['loss']:.3f} | "
                     f"{r['dice']:.3f} | {r['focal']:.3f} | {r['iou_mse']:.4f} | {r['minutes']:.0f} |")
    return "\n".join(lines)


def plot(chain: Dict[str, np.ndarray], path: Path, smooth: int = 50, size=(900, 420)) -> None:
    """Total loss (black) and dice (blue), moving means over ``smooth`` steps; run boundaries in grey."""
    w, h = size
    left, right, top, bottom = 60, 20, 20, 40
    img = np.full((h, w, 3), 255, np.uint8)
    steps = chain["step"].astype(np.float64)
    kernel = np.ones(smooth) / smooth
    series = {k: np.convolve(chain[k], kernel, mode="valid") for k in ("loss", "dice")}
    xs = steps[smooth - 1:]
    y_max = float(max(s.max() for s in series.values())) * 1.05

    def to_px(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        px = left + (x - steps[0]) / max(steps[-1] - steps[0], 1) * (w - left - right)
        py = h - bottom - y / y_max * (h - top - bottom)
        return np.stack([px, py], axis=1).round().astype(np.int32)

    for y in np.linspace(0, y_max, 6):
        p = to_px(np.array([steps[0]]), np.array([y]))[0]
        cv2.line(img, (left, int(p[1])), (w - right, int(p[1])), (230, 230, 230), 1)
        cv2.putText(img, f"{y:.2f}", (5, int(p[1]) + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    runs = chain["run"]
    for i in np.nonzero(runs[1:] != runs[:-1])[0]:
        p = to_px(np.array([steps[i]]), np.array([0.0]))[0]
        cv2.line(img, (int(p[0]), top), (int(p[0]), h - bottom), (170, 170, 170), 1)
    for name, colour in (("loss", (0, 0, 0)), ("dice", (200, 80, 0))):
        cv2.polylines(img, [to_px(xs, series[name])], False, colour, 1, cv2.LINE_AA)
    cv2.putText(img, f"step (runs {', '.join(dict.fromkeys(runs))}); black: loss, blue: dice; mean of {smooth}",
                (left, h - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise SystemExit(f"cannot write {path}")


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="run names under tools/train_runs/, in training order")
    p.add_argument("--every", type=int, default=250, help="steps per row of the printed table (default 250)")
    p.add_argument("--csv", type=Path, default=None, help="write the window means here")
    p.add_argument("--csv-every", type=int, default=20, help="steps per CSV row (default 20)")
    p.add_argument("--png", type=Path, default=None, help="write a plot here")
    p.add_argument("--runs-dir", type=Path, default=RUNS_DIR)
    args = p.parse_args(argv)
    chain = read_chain(args.runs, args.runs_dir)
    print(markdown(windows(chain, args.every)))
    if args.csv:
        rows = windows(chain, args.csv_every)
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with open(args.csv, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: (f"{v:.5g}" if isinstance(v, float) else v) for k, v in r.items()} for r in rows)
    if args.png:
        plot(chain, args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
