"""Evaluation time per frame: persam_video's DAVIS evaluator against vos-benchmark.

Writes a synthetic DAVIS-layout set (3 sequences x 30 frames at 480x854, 2-3 moving
ellipses each, perturbed copies of the ground truth as results) to a temporary
folder, scores it with both tools in one process each (no pool, so the numbers are
per core and include PNG decoding), checks that both give the same per-object J and
F means, and prints a markdown table.

    python benchmarks/bench_eval.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import cv2
import numpy as np

from persam_video.davis.evaluate import evaluate
from persam_video.io.masks import write_label_png

HEIGHT, WIDTH, FRAMES = 480, 854, 30
OBJECTS = {"bench-a": 2, "bench-b": 3, "bench-c": 3}


def _ellipses(n_objects: int, t: int, rng: np.random.Generator, jitter: float) -> np.ndarray:
    """A label map of ``n_objects`` ellipses drifting with ``t``, centres jittered."""
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    labels = np.zeros((HEIGHT, WIDTH), np.uint8)
    for k in range(1, n_objects + 1):
        cy = HEIGHT * (0.25 + 0.2 * k / n_objects) + 3 * t + rng.normal(0, jitter)
        cx = WIDTH * (0.2 + 0.2 * k) + 5 * t * (-1) ** k + rng.normal(0, jitter)
        ry, rx = 40 + 10 * k, 60 + 15 * k
        labels[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = k
    return labels


def write_dataset(root: Path, seed: int = 0) -> Path:
    """Write the synthetic DAVIS root (no void: vos-benchmark would score it as one more
    object) and its results; return the results folder."""
    rng = np.random.default_rng(seed)
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(OBJECTS) + "\n")
    results = root / "results"
    for seq, n_objects in OBJECTS.items():
        gt_dir, res_dir = root / "Annotations" / "480p" / seq, results / seq
        gt_dir.mkdir(parents=True)
        res_dir.mkdir(parents=True)
        for t in range(FRAMES):
            gt = _ellipses(n_objects, t, np.random.default_rng(seed + t), 0.0)
            res = _ellipses(n_objects, t, rng, 6.0)
            res[rng.random(res.shape) < 0.002] = 0
            write_label_png(gt_dir / f"{t:05d}.png", gt)
            write_label_png(res_dir / f"{t:05d}.png", res)
    return results


def _best_time(fn: Callable[[], object], repeats: int) -> Tuple[float, object]:
    """The shortest wall time of ``repeats`` calls, and the last call's value."""
    best, value = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - start)
    return best, value


def _vos_benchmark(gt_root: Path, results: Path) -> Dict[Tuple[str, int], Tuple[float, float]]:
    """vos-benchmark's per-object (J, F) means on [0, 1]."""
    from vos_benchmark.benchmark import VideoEvaluator

    scorer = VideoEvaluator(str(gt_root), str(results))
    out = {}
    for seq, n_objects in OBJECTS.items():
        _, iou, boundary = scorer(seq)
        out.update({(seq, k): (iou[k] / 100, boundary[k] / 100) for k in range(1, n_objects + 1)})
    return out


def main() -> None:
    """Build the data, time both evaluators, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each tool (best kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        results = write_dataset(root)
        frames = len(OBJECTS) * (FRAMES - 2)
        ours_s, report = _best_time(lambda: evaluate(root, "val", results, workers=1), args.repeats)
        theirs_s, theirs = _best_time(
            lambda: _vos_benchmark(root / "Annotations" / "480p", results), args.repeats)
    diff = max(max(abs(o.j.mean() - theirs[o.sequence, o.object_id][0]),
                   abs(o.f.mean() - theirs[o.sequence, o.object_id][1])) for o in report.objects)
    ours_ms, theirs_ms = 1000 * ours_s / frames, 1000 * theirs_s / frames
    print(f"{len(OBJECTS)} sequences x {FRAMES} frames at {WIDTH}x{HEIGHT} "
          f"({frames} evaluated frames, {len(report.objects)} objects), one process each, "
          f"best of {args.repeats}\n")
    print("| evaluator | ms / frame | speedup |")
    print("|---|---:|---:|")
    print(f"| vos-benchmark 0.1.0 | {theirs_ms:.1f} | 1.0x |")
    print(f"| persam_video.davis | {ours_ms:.1f} | {theirs_ms / ours_ms:.1f}x |")
    print(f"\nlargest per-object |J or F mean difference|: {diff:.1e}")
    print(f"machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"Python {platform.python_version()}, numpy {np.__version__}, opencv {cv2.__version__}, "
          f"{sys.platform}")


if __name__ == "__main__":
    main()
