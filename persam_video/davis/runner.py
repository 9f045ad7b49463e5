"""Segment every sequence of a DAVIS 2017 subset, resumably (behind ``persam-video davis run``).

Each sequence is seeded from its first annotation and written to
``RESULTS/<seq>/<frame>.png`` through :func:`persam_video.pipeline.segment_video`, forward
from the first frame. A sequence counts as done only when its marker
``RESULTS/<seq>/.done`` (a small JSON written after the last frame) exists; a rerun skips
done sequences and redoes the others from scratch. The sequences run on an executor of
:mod:`persam_video.batch` (this process, a local pool, or Ray), one model per worker; a sequence
that fails is reported and the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..batch import ClipTask, Executor, LocalExecutor, Outcome, WorkerSpec, run_clips
from ..batch.markers import run_settings
from ..errors import PersamError
from ..io.files import ensure_writable_dir
from ..model.loading import ModelSpec
from ..options import TrackerOptions
from .layout import DavisLayout


# ----------------------------------------------------------------------------- planning
def check_sequence(layout: DavisLayout, name: str, results: Path) -> ClipTask:
    """Check a sequence's frame folder and first annotation; one-line errors naming the sequence."""
    if not layout.frame_dir(name).is_dir():
        raise PersamError(f"frames folder of sequence {name} not found: {layout.frame_dir(name)}")
    layout.frame_paths(name)  # a folder without frames is an error too
    ann_dir = layout.annotation_dir(name)
    seeds = sorted(p for p in ann_dir.iterdir() if p.suffix.lower() == ".png" and p.is_file()) \
        if ann_dir.is_dir() else []
    if not seeds:
        raise PersamError(f"first annotation of sequence {name} not found: no PNG in {ann_dir}")
    seed = seeds[0]
    return ClipTask(name=name, video=str(layout.frame_dir(name)), out=str(results / name), mask=str(seed))


# ------------------------------------------------------------------------------ running
@dataclass
class DavisRun:
    """What :func:`run_davis` did: the sequences asked for, those segmented now, those skipped, and
    the outcomes of those that failed."""

    names: List[str]
    segmented: List[str]
    skipped: List[str]
    failed: List[Outcome]


def run_davis(davis_root: str, subset: str, sequences: Optional[Sequence[str]], out: str,
              options: TrackerOptions, model: ModelSpec, workers: int = 1, threads: Optional[int] = None,
              read_ahead: int = 4, progress: bool = True,
              log: Callable[[str], None] = lambda text: None,
              warn: Callable[[str], None] = lambda text: None,
              executor: Optional[Executor] = None) -> DavisRun:
    """Segment every sequence of ``subset`` (or ``sequences``) into ``out/<seq>/``, resumably.

    Sequences with a marker are skipped (``warn`` says so when they were made with other
    settings, ``log`` otherwise); the others are cleared and redone from their first frame on
    ``executor`` (default: ``workers`` local processes that each load the model once). A sequence
    that fails is reported through ``warn`` and in :attr:`DavisRun.failed`; the others go on.
    """
    if workers < 1:
        raise PersamError(f"the worker count must be at least 1, not {workers}")
    layout = DavisLayout(davis_root)
    names = layout.choose(subset, sequences)
    results = Path(out)
    tasks = [check_sequence(layout, name, results) for name in names]
    ensure_writable_dir(results)
    settings = run_settings(options, model)
    outcomes = run_clips(tasks, WorkerSpec(model, options, threads, read_ahead),
                         executor or LocalExecutor(workers, progress=progress), lambda task: settings,
                         progress=progress, log=log, warn=warn, unit="seq", desc="sequences")
    status = {o.clip: o.status for o in outcomes}
    return DavisRun(names, [n for n in names if status[n] == "done"], [n for n in names if status[n] == "skipped"],
                    [o for o in outcomes if o.status == "failed"])
