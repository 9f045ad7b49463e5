"""Segment every sequence of a DAVIS 2017 subset, resumably (behind ``persam-video davis run``).

Each sequence is seeded from its first annotation and written to
``RESULTS/<seq>/<frame>.png`` through :func:`persam_video.pipeline.prepare_job` and
:func:`persam_video.pipeline.run_job`. A sequence counts as done only when its marker
``RESULTS/<seq>/.done`` (a small JSON written after the last frame) exists; a rerun skips
done sequences and redoes the others from scratch. ``workers`` > 1 runs sequences in a pool
of processes that each load the model once.
"""
from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch
from tqdm.auto import tqdm

from ..errors import PersamError
from ..masks import atomic_write
from ..models import ModelSpec
from ..options import TrackerOptions
from ..pipeline import prepare_job, run_job
from ..system import cpu_count
from ..tracker import VideoSegmenter
from .layout import DavisLayout

MARKER = ".done"


@dataclass(frozen=True)
class SequenceTask:
    """One sequence to segment: everything a worker needs, as plain strings."""

    name: str
    frames: str
    seed: str
    out: str


# ----------------------------------------------------------------------------- planning
def check_sequence(layout: DavisLayout, name: str, results: Path) -> SequenceTask:
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
    return SequenceTask(name, str(layout.frame_dir(name)), str(seed), str(results / name))


def run_settings(options: TrackerOptions, model: ModelSpec) -> Dict[str, object]:
    """What decides a sequence's masks: the method options, the model type and the weights
    (their sha256, so a retrained checkpoint at the same path counts as different)."""
    settings: Dict[str, object] = asdict(options)
    settings["model_type"] = model.model_type
    settings["weights_sha256"] = model.weights_sha256()
    return settings


def changed_settings(before: Optional[dict], now: Dict[str, object]) -> List[str]:
    """``key=old`` for each setting that differs from the marker's (all of them if it has none)."""
    if not isinstance(before, dict):
        return ["unknown (marker from an older version)"]
    return [f"{key}={before.get(key)!r}" for key in now if before.get(key) != now[key]]


def read_marker(folder: Path) -> Optional[dict]:
    """The marker of a finished sequence, or None (missing or unreadable: not done)."""
    try:
        record = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_marker(folder: Path, record: dict) -> None:
    """Write the marker atomically, after the sequence's last frame."""
    text = json.dumps(record, indent=1, sort_keys=True) + "\n"

    def write(tmp: str) -> None:
        Path(tmp).write_text(text)

    atomic_write(folder / MARKER, write)


def clear_partial(folder: Path) -> None:
    """Delete what an unfinished run left in ``folder`` (label PNGs, temporary files, a bad marker)."""
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and (path.suffix.lower() == ".png" or ".tmp" in path.name or path.name == MARKER):
            try:
                path.unlink()
            except OSError as exc:
                raise PersamError(f"cannot clear the unfinished results in {folder}: "
                                  f"{exc.strerror or exc}") from None


# ------------------------------------------------------------------------------ running
class _Runner:
    """Loads the model once and segments sequences with it (in this process or in a worker)."""

    def __init__(self, model: ModelSpec, options: TrackerOptions, settings: Dict[str, object],
                 progress: bool) -> None:
        self.spec = model
        self.options = options
        self.settings = settings
        self.model = model.load(progress=progress)
        self.progress = progress

    def run(self, task: SequenceTask, read_ahead: int) -> dict:
        job = prepare_job(task.frames, task.seed, task.out, read_ahead=read_ahead)
        segmenter = VideoSegmenter(self.model, self.options)
        summary = run_job(job, segmenter, progress=self.progress, desc=task.name)
        record = {"sequence": task.name, "frames": summary.frames, "seconds": round(summary.seconds, 3),
                  "objects": [int(k) for k in summary.objects], "method": self.options.method,
                  "model_type": self.spec.model_type, "checkpoint": self.spec.checkpoint,
                  "settings": self.settings,
                  "encoder": round(summary.encoder, 3), "decoder": round(summary.decoder, 3),
                  "fit": round(summary.fit, 3)}
        write_marker(Path(task.out), record)
        record["line"] = summary.line()
        return record


_WORKER: Optional[_Runner] = None


def _init_worker(model: ModelSpec, options: TrackerOptions, settings: Dict[str, object], threads: int) -> None:
    """Pool initializer: set the thread count, then load the model once for this process."""
    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = _Runner(model, options, settings, progress=False)


def _run_in_worker(task: SequenceTask, read_ahead: int) -> dict:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(task, read_ahead)


def worker_threads(workers: int, threads: Optional[int]) -> int:
    """Torch threads per worker: ``threads`` if given, else max(1, CPUs // workers)."""
    return threads if threads else max(1, cpu_count() // workers)


@dataclass
class DavisRun:
    """What :func:`run_davis` did: the sequences asked for, those segmented now and those skipped."""

    names: List[str]
    segmented: List[str]
    skipped: List[str]


def run_davis(davis_root: str, subset: str, sequences: Optional[Sequence[str]], out: str,
              options: TrackerOptions, model: ModelSpec, workers: int = 1, threads: Optional[int] = None,
              read_ahead: int = 4, progress: bool = True,
              log: Callable[[str], None] = lambda text: None,
              warn: Callable[[str], None] = lambda text: None) -> DavisRun:
    """Segment every sequence of ``subset`` (or ``sequences``) into ``out/<seq>/``, resumably.

    Sequences with a marker are skipped (``warn`` says so when they were made with other
    settings, ``log`` otherwise); the others are cleared and redone from their first frame,
    in ``workers`` processes that each load the model once.
    """
    if workers < 1:
        raise PersamError(f"the worker count must be at least 1, not {workers}")
    layout = DavisLayout(davis_root)
    names = layout.choose(subset, sequences)
    results = Path(out)
    tasks = [check_sequence(layout, name, results) for name in names]
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PersamError(f"cannot create the results folder {results}: {exc.strerror or exc}") from None

    settings = run_settings(options, model)
    todo: List[SequenceTask] = []
    for task in tasks:
        marker = read_marker(Path(task.out))
        if marker is None:
            clear_partial(Path(task.out))
            todo.append(task)
            continue
        changed = changed_settings(marker.get("settings"), settings)
        if changed:  # a warning: these results are not what was asked for
            warn(f"{task.name}: done already, skipped (made with other settings: {', '.join(changed)}; "
                 f"delete {Path(task.out) / MARKER} to redo it)")
        else:
            log(f"{task.name}: done already, skipped")

    workers = min(workers, len(todo)) if todo else 1
    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="seq", desc="sequences",
              disable=not progress, dynamic_ncols=True, position=0) as bar:
        def finished(record: dict) -> None:
            log(f"{record['sequence']}: {record['line']}")
            bar.update(1)

        if todo and workers == 1:
            if threads:
                torch.set_num_threads(threads)
            runner = _Runner(model, options, settings, progress=progress)
            for task in todo:
                finished(runner.run(task, read_ahead))
        elif todo:
            initargs = (model, options, settings, worker_threads(workers, threads))
            _run_pool(todo, initargs, workers, read_ahead, finished)
    done = {t.name for t in todo}
    return DavisRun(names, [n for n in names if n in done], [n for n in names if n not in done])


def _run_pool(todo: List[SequenceTask], initargs: tuple, workers: int, read_ahead: int, finished) -> None:
    """Run the sequences in ``workers`` spawned processes; report each as it finishes."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=initargs)
    try:
        pending = {pool.submit(_run_in_worker, task, read_ahead) for task in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                finished(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
