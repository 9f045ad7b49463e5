"""The Ray executor: ``workers`` actors, each a :class:`ClipWorker` holding one model.

Joins a running cluster (``address``: ``auto`` or ``ray://host:port``) or starts a local Ray
(``ray.init(num_cpus=..., include_dashboard=False)``, stopped again at the end); inside a process
where Ray is already initialised (a test session, a notebook) it uses that one. Each actor
reserves one CPU and ``gpus_per_worker`` GPUs and reads its clips' frames itself, so every path
in the manifest must be visible to every node. An actor whose process dies is restarted by Ray
(``max_restarts``) and the clip it was running is sent again, up to ``retries`` more times.
"""
from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
from collections import deque
from pathlib import Path
from typing import Deque, Dict, List, Optional, Sequence, Tuple

from ..errors import PersamError
from ..io.files import remove_temporaries
from ..runtime.processes import Terminated
from ..runtime.system import cpu_count
from .executors import DEFAULT_RETRIES, Executor, Report
from .markers import read_marker
from .summary import FAILED, Outcome
from .worker import ClipWorker, WorkerSpec, WorkItem, describe

INSTALL_HINT = "pip install 'persam-video[ray]'"
RECOVERY_S = 120.0  # how long a restarting actor may take to answer again
WAIT_SLICE_S = 0.5  # how long one ray.wait may hold back a Ctrl-C or SIGTERM


def import_ray():
    """The ``ray`` module, or a one-line PersamError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise PersamError(f"the Ray executor needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class _ClipActor:
    """A Ray actor around one :class:`ClipWorker` (a load error is reported with every clip)."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.worker: Optional[ClipWorker] = None
        self.load_error = ""
        try:
            self.worker = ClipWorker(spec)
        except Exception as exc:
            self.load_error = f"cannot load the model: {describe(exc)}"

    def ping(self) -> bool:
        """Answers once the actor is up (after a restart, too)."""
        return True

    def run(self, item: WorkItem) -> Outcome:
        if self.worker is None:
            return Outcome(item.task.name, FAILED, attempts=item.attempt, error=self.load_error)
        return self.worker.run(item)


class RayExecutor(Executor):
    """Clips on a Ray cluster, one actor (one model) per worker; see the module's docstring."""

    def __init__(self, workers: int = 1, retries: int = DEFAULT_RETRIES, address: Optional[str] = None,
                 gpus_per_worker: float = 0.0) -> None:
        super().__init__(workers, retries)
        self.ray = import_ray()
        self.address = address
        self.gpus_per_worker = gpus_per_worker

    def run(self, items: Sequence[WorkItem], spec: WorkerSpec, report: Report) -> None:
        if not items:
            return
        started = self._connect()
        actor_class = self.ray.remote(num_cpus=1, num_gpus=self.gpus_per_worker, max_restarts=-1,
                                      max_task_retries=0)(_ClipActor)
        spec = self.worker_spec(spec)
        actors = [actor_class.remote(spec) for _ in range(min(self.workers, len(items)))]
        try:
            self._dispatch(deque(items), actors, report)
        except (KeyboardInterrupt, Terminated):  # the actors are killed below: clear what they left
            for item in items:
                if read_marker(Path(item.task.out)) is None:
                    with contextlib.suppress(PersamError):  # best effort while stopping
                        remove_temporaries(Path(item.task.out))
            raise
        finally:
            for actor in actors:
                self.ray.kill(actor)
            if started:
                self.ray.shutdown()

    def _connect(self) -> bool:
        """Join the cluster at ``address``, or start a local Ray; True if this call started it."""
        ray = self.ray
        if ray.is_initialized():
            return False
        keep = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
        try:
            if self.address:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                ray.init(num_cpus=max(cpu_count(), self.workers), include_dashboard=False,
                         logging_level=logging.WARNING, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:  # unreachable, or no ray[client] for ray://
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
            raise PersamError(f"cannot start or reach {where}: {describe(exc)}") from None
        finally:
            if keep is not None:  # ray.init replaces the command's SIGTERM handler with its own sys.exit
                signal.signal(signal.SIGTERM, keep)
        return True

    def _dispatch(self, queue: Deque[WorkItem], actors: List, report: Report) -> None:
        """Keep every actor busy with one clip until the queue is empty. When an actor's process dies,
        Ray restarts it (its model loaded anew); its clip goes back on the queue, and the actor gets
        work again once it answers a ping. An actor that does not come back within ``RECOVERY_S``
        is dropped; with none left, the clips still queued fail."""
        ray = self.ray
        died = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError)
        idle = list(actors)
        running: Dict[object, Tuple[Optional[WorkItem], object, float]] = {}  # ref -> (item or ping, actor, since)
        while queue and (idle or running) or any(item for item, _, _ in running.values()):
            while queue and idle:
                item, actor = queue.popleft(), idle.pop()
                running[actor.run.remote(item)] = (item, actor, time.monotonic())
            ready = self._wait(list(running))
            for ref in ready:
                item, actor, since = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except died as exc:
                    if item is not None:
                        self.retry_or_fail(item, f"its worker process died ({type(exc).__name__})", queue, report)
                        since = time.monotonic()
                    elif time.monotonic() - since > RECOVERY_S:
                        continue  # this actor is not coming back
                    else:
                        time.sleep(0.2)
                    running[actor.ping.remote()] = (None, actor, since)
                    continue
                except ray.exceptions.RayError as exc:
                    outcome = Outcome(item.task.name, FAILED, attempts=item.attempt, error=describe(exc))
                idle.append(actor)
                if item is not None:
                    report(outcome)
        for item in queue:
            report(Outcome(item.task.name, FAILED, attempts=item.attempt,
                           error="every Ray worker died and none came back"))

    def _wait(self, refs: List) -> List:
        """The refs that are ready, once one is. Waits in short slices: Ray's wait holds back an
        exception raised by a signal handler (SIGTERM's :class:`Terminated`) until it returns, and then
        gives it as a SystemError; here it comes out within ``WAIT_SLICE_S``, as itself."""
        while True:
            try:
                ready, _ = self.ray.wait(refs, num_returns=1, timeout=WAIT_SLICE_S)
            except SystemError as exc:
                if isinstance(exc.__cause__, (KeyboardInterrupt, Terminated)):
                    raise exc.__cause__ from None
                raise
            if ready:
                return ready
