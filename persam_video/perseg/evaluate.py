"""PerSeg's measures as the public ``eval_miou.py`` defines them, exactly (docs/perseg.md).

Per object, predictions and annotations are read as grey images (OpenCV's BGR-to-grey of the
file) and taken as ``> 0``; both lists are sorted by name and paired by position; the pair whose
annotation is the reference photo's (file stem equal to the reference index) is left out.
``eval_miou.py`` leaves out every pair whose annotation *path* contains the index (``00`` also
matches ``100.png``, or a folder named ``run00``): that defect is fixed, so scores differ only
where such names occur. Intersection, union and the annotation's area are summed over the
object's photos: IoU = I / (U + 1e-10), accuracy = I / (T + 1e-10); mIoU and mAcc are the plain
means over objects.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

import cv2
import numpy as np

from ..errors import PersamError
from ..io.files import PathLike
from .layout import PersegLayout, png_files

EPS = 1e-10


@dataclass(frozen=True)
class ObjectScore:
    """One object's summed pixel counts and its two measures."""

    name: str
    photos: int
    intersection: int
    union: int
    target: int

    @property
    def iou(self) -> float:
        return self.intersection / (self.union + EPS)

    @property
    def accuracy(self) -> float:
        return self.intersection / (self.target + EPS)


@dataclass(frozen=True)
class PersegReport:
    """Every object's score and the means over objects."""

    objects: List[ObjectScore]

    @property
    def miou(self) -> float:
        return float(np.mean([o.iou for o in self.objects]))

    @property
    def macc(self) -> float:
        return float(np.mean([o.accuracy for o in self.objects]))


def read_binary(path: Path) -> np.ndarray:
    """A mask file as eval_miou.py reads it: OpenCV's colour read, BGR to grey, ``> 0``."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise PersamError(f"cannot read {path} as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) > 0


def score_object(name: str, predictions: Sequence[Path], truths: Sequence[Path], ref_idx: str) -> ObjectScore:
    """Sum one object's counts over its (prediction, annotation) pairs, the reference's left out."""
    if len(predictions) != len(truths):
        raise PersamError(f"object {name}: {len(predictions)} result file(s) for {len(truths)} annotation(s); "
                          "the results must hold one mask per photo, the reference's included (they are "
                          "paired by position)")
    inter = union = target = photos = 0
    for predicted, truth in zip(predictions, truths):
        if Path(truth).stem == ref_idx:
            continue
        p, t = read_binary(predicted), read_binary(truth)
        if p.shape != t.shape:
            raise PersamError(f"object {name}: {predicted.name} is {p.shape[1]}x{p.shape[0]}, but its annotation "
                              f"{truth.name} is {t.shape[1]}x{t.shape[0]}")
        inter += int(np.count_nonzero(p & t))
        union += int(np.count_nonzero(p | t))
        target += int(np.count_nonzero(t))
        photos += 1
    return ObjectScore(name, photos, inter, union, target)


def evaluate(root: PathLike, results: PathLike, ref_idx: str = "00",
             objects: Optional[Sequence[str]] = None) -> PersegReport:
    """Score ``results/<object>/*.png`` against the PerSeg annotations under ``root``."""
    layout = PersegLayout(root)
    results = Path(results)
    scores = []
    for name in layout.objects(objects):
        folder = results / name
        if not folder.is_dir():
            raise PersamError(f"no results for object {name}: {folder} is missing")
        scores.append(score_object(name, png_files(folder), layout.masks(name), ref_idx))
    return PersegReport(scores)


def format_report(report: PersegReport) -> str:
    """Per-object IoU and accuracy, then the means, as percentages with two decimals."""
    width = max(len("object"), *(len(o.name) for o in report.objects))
    lines = [f"{'object':<{width}}  photos     IoU     Acc"]
    lines += [f"{o.name:<{width}}  {o.photos:6d}  {100 * o.iou:6.2f}  {100 * o.accuracy:6.2f}" for o in report.objects]
    lines.append(f"mIoU: {100 * report.miou:.2f}, mAcc: {100 * report.macc:.2f} ({len(report.objects)} objects)")
    return "\n".join(lines)
