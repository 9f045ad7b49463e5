"""``persam-video davis run``: segment every sequence of a DAVIS 2017 subset, resumably.

Each sequence is seeded from its first annotation and written to
``RESULTS/<seq>/<frame>.png`` through :func:`persam_video.pipeline.prepare_job` and
:func:`persam_video.pipeline.run_job`. A sequence counts as done only when its marker
``RESULTS/<seq>/.done`` (a small JSON written after the last frame) exists; a rerun skips
done sequences and redoes the others from scratch. ``--workers N`` runs sequences in a pool
of processes that each load the model once.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch
from tqdm.auto import tqdm

from ..cli_options import (add_method_options, add_model_options, check_read_ahead, check_threads, model_from_args,
                           name_list, tracker_options)
from ..errors import PersamError
from ..masks import atomic_write
from ..models import bundled_checkpoint, sha256_of
from ..pipeline import prepare_job, run_job
from ..tracker import VideoSegmenter
from .layout import DavisLayout

MARKER = ".done"

EPILOG = """examples:
  persam-video davis run --davis-root DAVIS --subset val --out results/ --method persam --eval
  persam-video davis run --davis-root DAVIS --sequences bike-packing,dogs-jump --out results/ --workers 2
  persam-video davis run --davis-root DAVIS --out results/ --model-type vit_b --checkpoint sam_vit_b_01ec64.pth

A rerun with the same --out skips the sequences that finished (RESULTS/<seq>/.done) and
redoes the others from their first frame.
"""

#: The options a worker process needs to load the model and build the tracker.
_MODEL_KEYS = ("model_type", "checkpoint", "device", "threads")
_METHOD_KEYS = ("method", "topk", "margin", "target_mode", "negative_point", "guided_attention",
                "semantic_prompt", "keep_box_frames", "redetect_ratio", "quality_gate", "box_growth",
                "anchor", "box_clip", "fit_iterations")


def add_parser(davis_sub: argparse._SubParsersAction) -> None:
    """Add ``davis run``."""
    parser = davis_sub.add_parser(
        "run", help="segment every sequence of a DAVIS 2017 subset (resumable)",
        description="Segment every sequence of a DAVIS 2017 subset from its first annotation and write "
                    "RESULTS/<sequence>/<frame>.png. Finished sequences are marked with "
                    "RESULTS/<sequence>/.done and skipped when the command is run again; unfinished "
                    "ones are redone from scratch.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--davis-root", required=True, metavar="ROOT",
                        help="DAVIS 2017 folder holding JPEGImages/480p, Annotations/480p and ImageSets/2017")
    parser.add_argument("--subset", default="val", metavar="NAME",
                        help="sequences to run, read from ImageSets/2017/NAME.txt (default: val)")
    parser.add_argument("--sequences", type=name_list, metavar="A,B,...",
                        help="comma-separated sequences of the subset to run (default: all of them)")
    parser.add_argument("--out", required=True, metavar="RESULTS",
                        help="results folder: RESULTS/<sequence>/<frame>.png (created if missing)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="processes running sequences in parallel, each loading the model once and "
                             "using max(1, CPUs // N) torch threads unless --threads is given (default: 1)")
    parser.add_argument("--eval", action="store_true",
                        help="then score the results (like 'davis eval'), write both CSV files into "
                             "RESULTS and print the tables")
    parser.add_argument("--read-ahead", type=int, default=4, metavar="N",
                        help="frames decoded ahead on a background thread (default: 4)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars and no per-sequence lines")
    add_method_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


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


def run_settings(args: argparse.Namespace) -> Dict[str, object]:
    """What decides a sequence's masks: the method options, the model type and the weights
    (their sha256, so a retrained checkpoint at the same path counts as different)."""
    settings: Dict[str, object] = {key: getattr(args, key) for key in _METHOD_KEYS}
    settings["model_type"] = args.model_type
    try:
        path = Path(args.checkpoint) if args.checkpoint else bundled_checkpoint(args.model_type)
        settings["weights_sha256"] = sha256_of(path)[:16]
    except (PersamError, KeyError, OSError):
        settings["weights_sha256"] = None  # no such file: loading the model reports it
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

    def __init__(self, options: Dict[str, object], progress: bool) -> None:
        self.args = argparse.Namespace(**options)
        self.options = tracker_options(self.args)
        self.model = model_from_args(self.args, progress=progress)
        self.progress = progress

    def run(self, task: SequenceTask, read_ahead: int) -> dict:
        job = prepare_job(task.frames, task.seed, task.out, read_ahead=read_ahead)
        segmenter = VideoSegmenter(self.model, self.options)
        summary = run_job(job, segmenter, progress=self.progress, desc=task.name)
        record = {"sequence": task.name, "frames": summary.frames, "seconds": round(summary.seconds, 3),
                  "objects": [int(k) for k in summary.objects], "method": self.args.method,
                  "model_type": self.args.model_type,
                  "checkpoint": None if self.args.checkpoint is None else str(self.args.checkpoint),
                  "settings": self.args.settings,
                  "encoder": round(summary.encoder, 3), "decoder": round(summary.decoder, 3),
                  "fit": round(summary.fit, 3)}
        write_marker(Path(task.out), record)
        record["line"] = summary.line()
        return record


_WORKER: Optional[_Runner] = None


def _init_worker(options: Dict[str, object], threads: int) -> None:
    """Pool initializer: set the thread count, then load the model once for this process."""
    global _WORKER
    torch.set_num_threads(threads)
    _WORKER = _Runner(options, progress=False)


def _run_in_worker(task: SequenceTask, read_ahead: int) -> dict:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(task, read_ahead)


def cpu_count() -> int:
    """CPUs this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def worker_threads(workers: int, threads: Optional[int]) -> int:
    """Torch threads per worker: --threads if given, else max(1, CPUs // workers)."""
    return threads if threads else max(1, cpu_count() // workers)


def run(args: argparse.Namespace) -> int:
    """Run ``davis run``."""
    if args.workers < 1:
        raise PersamError(f"--workers must be at least 1, not {args.workers}")
    check_threads(args.threads)
    check_read_ahead(args.read_ahead)
    layout = DavisLayout(args.davis_root)
    names = layout.choose(args.subset, args.sequences)
    results = Path(args.out)
    tasks = [check_sequence(layout, name, results) for name in names]
    try:
        results.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PersamError(f"cannot create the results folder {results}: {exc.strerror or exc}") from None
    tracker_options(args)  # a bad method option fails here, before any model is loaded

    log = (lambda text: None) if args.quiet else (lambda text: tqdm.write(text, file=sys.stderr))
    settings = run_settings(args)
    todo: List[SequenceTask] = []
    for task in tasks:
        marker = read_marker(Path(task.out))
        if marker is None:
            clear_partial(Path(task.out))
            todo.append(task)
            continue
        changed = changed_settings(marker.get("settings"), settings)
        if changed:  # a warning, printed even with --quiet: these results are not what was asked for
            tqdm.write(f"{task.name}: done already, skipped (made with other settings: {', '.join(changed)}; "
                       f"delete {Path(task.out) / MARKER} to redo it)", file=sys.stderr)
        else:
            log(f"{task.name}: done already, skipped")

    options = {key: getattr(args, key) for key in _MODEL_KEYS + _METHOD_KEYS}
    options["settings"] = settings
    workers = min(args.workers, len(todo)) if todo else 1
    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit="seq", desc="sequences",
              disable=args.quiet, dynamic_ncols=True, position=0) as bar:
        def finished(record: dict) -> None:
            log(f"{record['sequence']}: {record['line']}")
            bar.update(1)

        if todo and workers == 1:
            runner = _Runner(options, progress=not args.quiet)
            for task in todo:
                finished(runner.run(task, args.read_ahead))
        elif todo:
            _run_pool(todo, options, workers, worker_threads(workers, args.threads), args.read_ahead, finished)
    if not args.quiet:
        print(f"{len(todo)} sequence(s) segmented, {len(tasks) - len(todo)} already done; results in {results}",
              file=sys.stderr)
    if args.eval:
        _evaluate(args, names)
    return 0


def _run_pool(todo: List[SequenceTask], options: Dict[str, object], workers: int, threads: int,
              read_ahead: int, finished) -> None:
    """Run the sequences in ``workers`` spawned processes; report each as it finishes."""
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(options, threads))
    try:
        pending = {pool.submit(_run_in_worker, task, read_ahead) for task in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                finished(future.result())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _evaluate(args: argparse.Namespace, names: List[str]) -> None:
    """Score the results like ``davis eval``: both CSV files into RESULTS, both tables printed."""
    from .evaluate import evaluate, format_tables, write_csvs

    report = evaluate(args.davis_root, args.subset, args.out, sequences=names, workers=args.workers)
    try:
        paths = write_csvs(report, args.out, args.subset)
    except OSError as exc:
        raise PersamError(f"cannot write the CSV files in {args.out}: {exc.strerror or exc}") from None
    print(format_tables(report))
    print("\nwritten: " + ", ".join(str(p) for p in paths))
