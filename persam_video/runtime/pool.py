"""The one process pool of the package: batch clips, DAVIS sequences and their evaluation, and
photos all run their jobs in spawned worker processes through :func:`pool_round`.

Each worker is spawned (forking a process whose torch/OpenCV thread pools run can deadlock the
child), tied to the command (:func:`~persam_video.runtime.processes.tie_to_parent`: it dies with
it), then runs the caller's initializer (load a model once, say). At most one job per worker is
in flight, so a worker that dies loses one job only, and an interrupted command stops its workers
at once instead of waiting for their jobs.
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Deque, Dict, List, Optional, Sequence, TypeVar

from .processes import stop_pool, tie_to_parent

Job = TypeVar("Job")


def _init_worker(parent: int, initializer: Optional[Callable[..., None]], initargs: Sequence[object]) -> None:
    """First thing in a worker: die with ``parent``, then the caller's initializer."""
    tie_to_parent(parent)
    if initializer is not None:
        initializer(*initargs)


def pool_round(queue: Deque[Job], call: Callable[[Job], object], workers: int,
               report: Callable[[Job, object], None], initializer: Optional[Callable[..., None]] = None,
               initargs: Sequence[object] = (), on_interrupt: Callable[[List[Job]], None] = lambda jobs: None
               ) -> List[Job]:
    """Run ``call(job)`` for the jobs of ``queue`` (taken from its left) on a fresh pool of at most
    ``workers`` processes, calling ``report(job, result)`` here as each ends, until the queue is
    empty or a worker dies; returns the jobs lost with a dead worker (those never started stay in
    ``queue``). An exception raised by ``call`` or ``report``, Ctrl-C or SIGTERM stops the workers
    at once (``on_interrupt`` hears the jobs that were running) and goes on up."""
    pool = ProcessPoolExecutor(max(1, min(workers, len(queue))), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(), initializer, tuple(initargs)))
    running: Dict[Future, Job] = {}
    lost: List[Job] = []
    try:
        while (queue and not lost) or running:
            while queue and not lost and len(running) < workers:
                job = queue.popleft()
                running[pool.submit(call, job)] = job
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                job = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    lost.append(job)
                    continue
                report(job, result)
    except BaseException:
        stop_pool(pool)
        on_interrupt(list(running.values()))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return lost
