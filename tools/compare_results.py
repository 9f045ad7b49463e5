#!/usr/bin/env python
"""Is B better than A? The J&F difference of two DAVIS evaluations, with a paired bootstrap.

Give two ``per-sequence_results-<subset>.csv`` files (the official layout, as ``persam-video
davis eval`` writes them) or the folders holding them, scored on the same sequences::

    python tools/compare_results.py runs/before runs/after
    python tools/compare_results.py a1.csv,a2.csv b1.csv,b2.csv     # several sets pooled

It prints J&F of A and of B (the mean over objects of (J + F) / 2, as the global CSV) and the
difference B - A with a 90 % interval from resampling whole sequences (an object's frames and a
sequence's objects move together, so the sequence is the unit). On a handful of sequences a
difference of a few hundredths can be noise or not: this says which.
"""
from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np


def read_objects(paths: Sequence[Path]) -> Dict[str, List[float]]:
    """Per sequence, the (J + F) / 2 of each object, from per-sequence CSVs (a folder: its one CSV).
    Sequences are keyed by ``<file index>/<name>``, so sets with the same names stay apart."""
    out: Dict[str, List[float]] = {}
    for i, path in enumerate(paths):
        if path.is_dir():
            found = sorted(path.glob("per-sequence_results-*.csv"))
            if len(found) != 1:
                raise SystemExit(f"{path}: expected one per-sequence_results-*.csv, found {len(found)}")
            path = found[0]
        if not path.is_file():
            raise SystemExit(f"{path}: no such file")
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                seq = row["Sequence"].rsplit("_", 1)[0]
                out.setdefault(f"{i}/{seq}", []).append((float(row["J-Mean"]) + float(row["F-Mean"])) / 2)
    return out


def paired_bootstrap(a: Dict[str, List[float]], b: Dict[str, List[float]], draws: int = 5000,
                     seed: int = 0) -> Dict[str, float]:
    """J&F of ``a`` and ``b`` and the 5th/95th percentiles of B - A over sequences drawn with replacement."""
    if sorted(a) != sorted(b):
        raise SystemExit("the two evaluations do not cover the same sequences")
    seqs = sorted(a)
    if any(len(a[s]) != len(b[s]) for s in seqs):
        raise SystemExit("a sequence has a different number of objects in the two evaluations")
    sums = np.array([[sum(a[s]), sum(b[s])] for s in seqs])
    counts = np.array([len(a[s]) for s in seqs], dtype=float)
    picks = np.random.default_rng(seed).integers(len(seqs), size=(draws, len(seqs)))
    n = counts[picks].sum(axis=1)
    diffs = (sums[picks, 1].sum(axis=1) - sums[picks, 0].sum(axis=1)) / n
    total = counts.sum()
    return {"sequences": len(seqs), "objects": int(total), "a": sums[:, 0].sum() / total, "b": sums[:, 1].sum() / total,
            "diff": (sums[:, 1].sum() - sums[:, 0].sum()) / total,
            "low": float(np.percentile(diffs, 5)), "high": float(np.percentile(diffs, 95))}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("a", help="evaluation A: per-sequence CSV(s) or results folder(s), comma-separated")
    p.add_argument("b", help="evaluation B, the same sequences in the same order of sets")
    p.add_argument("--draws", type=int, default=5000, help="bootstrap draws (default 5000)")
    args = p.parse_args(argv)
    if args.draws < 1:
        p.error("--draws must be at least 1")
    a = read_objects([Path(x) for x in args.a.split(",")])
    b = read_objects([Path(x) for x in args.b.split(",")])
    r = paired_bootstrap(a, b, args.draws)
    print(f"{r['sequences']} sequences, {r['objects']} objects: J&F A {r['a']:.3f}, B {r['b']:.3f}, "
          f"B - A {r['diff']:+.3f} (90 % interval over sequences {r['low']:+.3f} .. {r['high']:+.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
