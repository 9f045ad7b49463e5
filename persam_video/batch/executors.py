"""Where the clips run: this process, a local pool of processes, or a Ray cluster (``ray_executor``).

Every executor gives each worker one :class:`~persam_video.batch.worker.ClipWorker` (one model
per process) and reports each clip's :class:`~persam_video.batch.summary.Outcome` as it finishes.
A clip that fails inside a worker is an outcome like any other; a worker process that dies under
a clip is replaced and the clip run again, up to ``retries`` more times, after which it is
reported failed with that reason. Since a clip is always redone from nothing, a retried clip's
files are those of an undisturbed run.
"""
from __future__ import annotations

import contextlib
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Callable, Deque, List, Optional, Sequence

from ..errors import PersamError
from ..io.files import remove_temporaries
from ..runtime.pool import pool_round
from .summary import FAILED, Outcome
from .worker import ClipWorker, WorkerSpec, WorkItem, describe

Report = Callable[[Outcome], None]
DEFAULT_RETRIES = 2


class Executor:
    """Runs work items on workers built from a :class:`WorkerSpec`; see the module's docstring."""

    def __init__(self, workers: int = 1, retries: int = DEFAULT_RETRIES) -> None:
        if workers < 1:
            raise PersamError(f"the worker count must be at least 1, not {workers}")
        if retries < 0:
            raise PersamError(f"the retry count must be 0 or more, not {retries}")
        self.workers = workers
        self.retries = retries

    def run(self, items: Sequence[WorkItem], spec: WorkerSpec, report: Report) -> None:
        """Run every item, calling ``report`` once per item (in this process) as each finishes."""
        raise NotImplementedError

    def worker_spec(self, spec: WorkerSpec) -> WorkerSpec:
        """``spec`` for one of ``workers`` workers (without a thread count, each takes at most CPUs // workers)."""
        return replace(spec, workers=self.workers)

    def retry_or_fail(self, item: WorkItem, why: str, queue: Deque[WorkItem], report: Report) -> None:
        """A worker died under ``item``: queue it again, or report it failed once out of retries."""
        if item.attempt <= self.retries:
            queue.appendleft(replace(item, attempt=item.attempt + 1))
        else:
            report(Outcome(item.task.name, FAILED, attempts=item.attempt,
                           error=f"{why} ({item.attempt} attempts)"))


class LocalExecutor(Executor):
    """This machine: one worker runs in this process (with progress bars); more run in a pool of
    spawned processes tied to this one (they die with it), each loading the model once."""

    def __init__(self, workers: int = 1, retries: int = DEFAULT_RETRIES, progress: bool = False) -> None:
        super().__init__(workers, retries)
        self.progress = progress

    def run(self, items: Sequence[WorkItem], spec: WorkerSpec, report: Report) -> None:
        if not items:
            return
        if self.workers == 1:
            worker = ClipWorker(spec, progress=self.progress)
            for item in items:
                report(worker.run(item))
            return
        queue: Deque[WorkItem] = deque(items)
        spec = self.worker_spec(spec)
        while queue:  # one pool per round; a worker's death breaks the pool, and the next round retries
            self._round(queue, spec, report)

    def _round(self, queue: Deque[WorkItem], spec: WorkerSpec, report: Report) -> None:
        """Run items from ``queue`` on a fresh pool (:func:`~persam_video.runtime.pool.pool_round`) until it
        is empty or a worker dies; the clips the dead pool was running go back on the queue (or fail, out
        of retries). Interrupted, the temporaries of the clips running are removed."""
        lost = pool_round(queue, _run_in_pool, self.workers, lambda item, outcome: report(outcome),
                          _init_pool_worker, (spec,), on_interrupt=_remove_temporaries)
        for item in reversed(lost):
            self.retry_or_fail(item, "its worker process died", queue, report)


def _remove_temporaries(items: List[WorkItem]) -> None:
    """Best effort while stopping (the interrupt goes on): what the clips running had half-written."""
    for item in items:
        with contextlib.suppress(PersamError):
            remove_temporaries(Path(item.task.out))


_POOL_WORKER: Optional[ClipWorker] = None
_LOAD_ERROR: Optional[str] = None


def _init_pool_worker(spec: WorkerSpec) -> None:
    """Pool initializer: load the model once (a load error is kept and reported with every clip,
    instead of breaking the pool)."""
    global _POOL_WORKER, _LOAD_ERROR
    try:
        _POOL_WORKER = ClipWorker(spec)
    except Exception as exc:
        _LOAD_ERROR = f"cannot load the model: {describe(exc)}"


def _run_in_pool(item: WorkItem) -> Outcome:
    if _POOL_WORKER is None:
        return Outcome(item.task.name, FAILED, attempts=item.attempt, error=_LOAD_ERROR or "worker not initialised")
    return _POOL_WORKER.run(item)
