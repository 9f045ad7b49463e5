"""Running a set of clips resumably on an executor: behind ``persam-video batch`` and ``davis run``.

A clip whose folder holds a marker (``.done``) is skipped, with a warning naming the settings
that differ from this run's if any; every other clip is sent to the executor, whose workers redo
it from nothing and write the marker after its last frame. Outcomes are reported as clips finish;
a failed clip is reported and the others go on.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

from tqdm.auto import tqdm

from ..errors import PersamError
from ..io.files import ensure_writable_dir, remove_temporaries
from ..io.prompts import check_reference
from ..model.loading import ModelSpec
from ..options import TrackerOptions
from .executors import DEFAULT_RETRIES, Executor, LocalExecutor
from .manifest import ClipTask, load_manifest
from .markers import MARKER, changed_settings, read_marker, run_settings
from .ray_executor import RayExecutor
from .summary import DONE, FAILED, SKIPPED, Outcome, SummaryFile
from .worker import WorkerSpec, WorkItem, load_references

EXECUTORS = ("local", "ray")
Log = Callable[[str], None]
SUMMARY_NAME = "summary.csv"


def _quiet(text: str) -> None:
    """The default ``log`` / ``warn``: say nothing."""


def run_clips(tasks: Sequence[ClipTask], spec: WorkerSpec, executor: Executor,
              settings_for: Callable[[ClipTask], Dict[str, object]], progress: bool = True, log: Log = _quiet,
              warn: Log = _quiet, record: Callable[[Outcome], None] = lambda outcome: None,
              unit: str = "clip", desc: str = "clips") -> List[Outcome]:
    """Skip the done clips, run the others on ``executor``; every clip's outcome, in ``tasks`` order.

    ``settings_for(task)`` is what the clip's marker records and is compared with; ``record`` is
    called with each outcome as it is known (skipped ones first); ``log`` says what was done,
    ``warn`` what was not as asked (skipped with other settings, failed)."""
    outcomes: Dict[str, Outcome] = {}
    todo: List[WorkItem] = []
    for task in tasks:
        settings = settings_for(task)
        marker = read_marker(Path(task.out))
        if marker is None:
            todo.append(WorkItem(task, settings))
            continue
        changed = changed_settings(marker.get("settings"), settings)
        if changed:  # a warning: these results are not what was asked for
            warn(f"{task.name}: done already, skipped (made with other settings: {', '.join(changed)}; "
                 f"delete {Path(task.out) / MARKER} to redo it)")
        else:
            log(f"{task.name}: done already, skipped")
        outcomes[task.name] = _skipped(task.name, marker)
        record(outcomes[task.name])

    with tqdm(total=len(tasks), initial=len(tasks) - len(todo), unit=unit, desc=desc,
              disable=not progress, dynamic_ncols=True, position=0) as bar:
        def finished(outcome: Outcome) -> None:
            outcomes[outcome.clip] = outcome
            if outcome.status == DONE:
                log(f"{outcome.clip}: {outcome.line}")
            else:
                warn(f"{outcome.clip}: failed: {outcome.error}")
            record(outcome)
            bar.update(1)

        executor.run(todo, spec, finished)
    return [outcomes[task.name] for task in tasks]


def _skipped(name: str, marker: dict) -> Outcome:
    """A done clip's outcome from its marker (what the summary shows for it)."""
    try:
        return Outcome(name, SKIPPED, frames=int(marker.get("frames", 0)),
                       objects=tuple(int(k) for k in marker.get("objects", ())),
                       seconds=float(marker.get("seconds", 0.0)))
    except (TypeError, ValueError):
        return Outcome(name, SKIPPED)


@dataclass
class BatchRun:
    """What :func:`run_batch` did: every clip's outcome (manifest order) and the summary file."""

    outcomes: List[Outcome]
    summary: Path

    def with_status(self, status: str) -> List[Outcome]:
        """The outcomes of one status (done, skipped, failed)."""
        return [o for o in self.outcomes if o.status == status]


def run_batch(manifest: Union[str, Path], out: Union[str, Path], options: TrackerOptions, model: ModelSpec,
              executor: Optional[Executor] = None, references: Sequence[Tuple[str, str]] = (),
              threads: Optional[int] = None, read_ahead: int = 4, progress: bool = True, log: Log = _quiet,
              warn: Log = _quiet) -> BatchRun:
    """Segment every clip of ``manifest`` into ``out/<clip>/``, resumably, writing ``out/summary.csv``.

    ``references``: (image, mask) files giving every clip the objects of the mask (ids from the
    mask); a clip with neither a mask nor a prompts file then relies on them alone.
    """
    tasks = load_manifest(manifest, out)
    references = tuple((str(Path(image).absolute()), str(Path(mask).absolute())) for image, mask in references)
    if references:
        check_references(references)
    else:
        unprompted = [t.name for t in tasks if not t.mask and not t.prompts]
        if unprompted:
            raise PersamError(f"clip {unprompted[0]} has neither a mask nor a prompts file, and no reference "
                              "was given for all clips")
    results = Path(out)
    ensure_writable_dir(results)
    remove_temporaries(results)  # a summary.csv half-written when an earlier run was killed
    settings = run_settings(options, model)
    if references:
        settings["references"] = [list(pair) for pair in references]
    summary = SummaryFile(results / SUMMARY_NAME, [t.name for t in tasks])
    summary.write()
    outcomes = run_clips(tasks, WorkerSpec(model, options, threads, read_ahead, references),
                         executor or LocalExecutor(progress=progress),
                         lambda task: {**settings, "inputs": task.inputs()}, progress=progress, log=log, warn=warn,
                         record=summary.record)
    return BatchRun(outcomes, summary.path)


def make_executor(name: str = "local", workers: int = 1, retries: int = DEFAULT_RETRIES, address: Optional[str] = None,
                  gpus_per_worker: float = 0.0, progress: bool = False) -> Executor:
    """``local`` or ``ray`` (``address``: a running cluster, ``auto`` or ``ray://host:port``; a local
    Ray otherwise), with ``workers`` workers."""
    if name not in EXECUTORS:
        raise PersamError(f"unknown executor {name!r} (choose from {', '.join(EXECUTORS)})")
    if gpus_per_worker < 0:
        raise PersamError(f"the GPUs per worker must be 0 or more, not {gpus_per_worker}")
    if name == "local":
        if address or gpus_per_worker:
            raise PersamError("a cluster address and GPUs per worker go with the Ray executor only")
        return LocalExecutor(workers, retries, progress)
    return RayExecutor(workers, retries, address=address, gpus_per_worker=gpus_per_worker)


def check_references(references: Sequence[Tuple[str, str]]) -> None:
    """Read and check every (image, mask) reference once, so that a bad one is an error before any
    clip runs (each worker reads them again for itself)."""
    for image, mask in references:
        found = load_references([(image, mask)])
        if not found:
            raise PersamError(f"the reference mask {mask} has no object: every pixel is background or void")
        for reference in found:
            try:
                check_reference(reference)
            except PersamError as exc:
                raise PersamError(f"reference {image} / {mask}: {exc}") from None


__all__ = ["BatchRun", "DONE", "FAILED", "SKIPPED", "run_batch", "run_clips"]
