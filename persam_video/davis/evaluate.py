"""DAVIS 2017 semi-supervised evaluation of a results folder: scores, CSV files, tables.

The numbers are those of the official DAVIS 2017 evaluation (see ``docs/davis.md``): objects
1..N from each sequence's first annotation, first and last frames left out, void counted as
background, every object weighted once.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..errors import PersamError, check_size
from ..io.files import PathLike, atomic_write
from ..io.masks import VOID_ID, read_label_png
from ..runtime.pool import pool_round
from ..runtime.system import cpu_count
from .layout import DavisLayout
from .metrics import disk_radius, f_measure, j_measure, summarise, support_window

GLOBAL_COLUMNS = ("J&F-Mean", "J-Mean", "J-Recall", "J-Decay", "F-Mean", "F-Recall", "F-Decay")
SEQUENCE_COLUMNS = ("Sequence", "J-Mean", "F-Mean")


@dataclass(frozen=True)
class ObjectScores:
    """The per-frame J and F of one object over the evaluated frames of its sequence."""

    sequence: str
    object_id: int
    j: np.ndarray
    f: np.ndarray

    @property
    def name(self) -> str:
        """The row name of the per-sequence CSV: ``<sequence>_<id>``."""
        return f"{self.sequence}_{self.object_id}"


@dataclass(frozen=True)
class DavisReport:
    """Every object's scores, in subset-file order, and the number of frames evaluated."""

    subset: str
    objects: Tuple[ObjectScores, ...]
    frames: int

    def global_scores(self) -> Dict[str, float]:
        """The global row: each statistic averaged over objects (not over sequences)."""
        j = [summarise(o.j) for o in self.objects]
        f = [summarise(o.f) for o in self.objects]
        j_stats = [float(np.mean([s[i] for s in j])) for i in range(3)]
        f_stats = [float(np.mean([s[i] for s in f])) for i in range(3)]
        values = [(j_stats[0] + f_stats[0]) / 2.0, *j_stats, *f_stats]
        return dict(zip(GLOBAL_COLUMNS, values))

    def sequence_rows(self) -> List[Tuple[str, float, float]]:
        """One ``(name, J-Mean, F-Mean)`` row per object."""
        return [(o.name, summarise(o.j)[0], summarise(o.f)[0]) for o in self.objects]


def evaluate(davis_root: PathLike, subset: str, results_dir: PathLike,
             sequences: Optional[Sequence[str]] = None,
             workers: Optional[int] = None) -> DavisReport:
    """Score ``results_dir/<seq>/<frame>.png`` against a DAVIS 2017 subset.

    ``sequences`` restricts the evaluation to some sequences of the subset;
    ``workers`` is the number of processes (default: one per available CPU,
    at most one per sequence).
    """
    layout = DavisLayout(davis_root)
    names = layout.choose(subset, sequences)
    results_dir = Path(results_dir)
    for name in names:
        if not (results_dir / name).is_dir():
            raise PersamError(f"results folder of sequence {name} not found: {results_dir / name}")
    jobs = [(str(layout.root), str(results_dir), name) for name in names]
    per_sequence = _run_jobs(jobs, _worker_count(workers, len(jobs)))
    objects = tuple(o for scores in per_sequence for o in scores)
    if not objects:
        raise PersamError("nothing to evaluate: the first annotations of the sequences hold no object")
    frames = sum(len(scores[0].j) for scores in per_sequence if scores)
    return DavisReport(subset=subset, objects=objects, frames=frames)


def _worker_count(workers: Optional[int], jobs: int) -> int:
    """The number of processes: as asked (at least 1), else the CPUs, at most one per job."""
    if workers is None:
        workers = cpu_count()
    if workers < 1:
        raise PersamError(f"the number of worker processes must be at least 1, not {workers}")
    return max(1, min(workers, jobs))


def _run_jobs(jobs: List[Tuple[str, str, str]], workers: int) -> List[List[ObjectScores]]:
    """Evaluate the sequences in this process or on the package's pool, keeping their order."""
    if workers == 1:
        return [_evaluate_sequence(job) for job in jobs]
    scores: Dict[Tuple[str, str, str], List[ObjectScores]] = {}
    lost = pool_round(deque(jobs), _evaluate_sequence, workers, scores.__setitem__, _init_worker)
    if lost:
        raise PersamError(f"the worker process evaluating sequence {lost[0][2]} died (out of memory?)")
    return [scores[job] for job in jobs]


def _init_worker() -> None:
    """Pool initializer: one OpenCV thread per worker."""
    cv2.setNumThreads(1)


def _evaluate_sequence(job: Tuple[str, str, str]) -> List[ObjectScores]:
    """The scores of every object of one sequence (run in a worker process)."""
    root, results_dir, sequence = job
    annotations = DavisLayout(root).annotation_paths(sequence)
    if len(annotations) < 3:
        raise PersamError(f"sequence {sequence} has {len(annotations)} annotated frame(s); the "
                          "semi-supervised evaluation leaves out the first and last and needs 3")
    first = read_label_png(annotations[0])
    n_objects = int(np.where(first == VOID_ID, 0, first).max())
    evaluated = annotations[1:-1]
    gts = np.empty((len(evaluated), *first.shape), np.uint8)
    results = np.empty_like(gts)
    for t, path in enumerate(evaluated):
        gts[t] = _read_gt(path, first.shape)
        results[t] = _read_result(Path(results_dir) / sequence / path.name, path, first.shape,
                                  sequence, n_objects)
    radius = disk_radius(*first.shape)
    scores = []
    for k in range(1, n_objects + 1):
        res_k, gt_k = results == k, gts == k
        window = support_window(res_k | gt_k)
        res_k, gt_k = res_k[window], gt_k[window]
        scores.append(ObjectScores(sequence, k, j_measure(res_k, gt_k),
                                   f_measure(res_k, gt_k, radius=radius)))
    return scores


def _read_gt(path: Path, shape: Tuple[int, int]) -> np.ndarray:
    """A ground-truth label map with void set to background; all of a sequence share one size."""
    labels = read_label_png(path)
    check_size(f"annotation {path}", labels.shape, shape, "the first annotation of its sequence is")
    labels[labels == VOID_ID] = 0
    return labels


def _read_result(path: Path, annotation: Path, shape: Tuple[int, int], sequence: str,
                 n_objects: int) -> np.ndarray:
    """A result label map, checked for presence, size and object ids."""
    if not path.is_file():
        raise PersamError(f"result mask missing: {path} (sequence {sequence} needs one PNG "
                          "per annotation)")
    labels = read_label_png(path)
    check_size(f"result {path}", labels.shape, shape, f"its annotation {annotation} is")
    top = int(labels.max())
    if top > n_objects:
        raise PersamError(f"result {path} holds object id {top} but sequence {sequence} "
                          f"has {n_objects} object(s) in its first annotation")
    return labels


def write_csvs(report: DavisReport, results_dir: PathLike, subset: str) -> Tuple[Path, Path]:
    """Write ``global_results-<subset>.csv`` and ``per-sequence_results-<subset>.csv``.

    Three decimals, the official columns, one per-sequence row per object in
    subset-file order; each file is replaced atomically. Returns both paths.
    """
    results_dir = Path(results_dir)
    global_lines = [",".join(GLOBAL_COLUMNS),
                    ",".join(f"{v:.3f}" for v in report.global_scores().values())]
    sequence_lines = [",".join(SEQUENCE_COLUMNS)] + [
        f"{name},{j:.3f},{f:.3f}" for name, j, f in report.sequence_rows()]
    paths = (results_dir / f"global_results-{subset}.csv",
             results_dir / f"per-sequence_results-{subset}.csv")
    for path, lines in zip(paths, (global_lines, sequence_lines)):
        text = "\n".join(lines) + "\n"
        atomic_write(path, lambda tmp, text=text: Path(tmp).write_text(text))
    return paths


def format_tables(report: DavisReport) -> str:
    """The global and per-sequence results as two aligned text tables."""
    scores = report.global_scores()
    global_table = _table(GLOBAL_COLUMNS, [[f"{scores[c]:.3f}" for c in GLOBAL_COLUMNS]])
    rows = [[name, f"{j:.3f}", f"{f:.3f}"] for name, j, f in report.sequence_rows()]
    sequence_table = _table(SEQUENCE_COLUMNS, rows)
    return (f"--- Global results for {report.subset} ---\n{global_table}\n\n"
            f"--- Per sequence results for {report.subset} ---\n{sequence_table}")


def _table(header: Sequence[str], rows: List[List[str]]) -> str:
    """Right-aligned columns separated by two spaces."""
    widths = [max(len(r[i]) for r in [list(header), *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(row, widths))
                     for row in [list(header), *rows])
