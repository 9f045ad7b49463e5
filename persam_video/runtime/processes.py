"""Worker processes that never outlive the command, and the command's answer to SIGINT / SIGTERM.

- :func:`tie_to_parent`, called first thing in a worker (a pool's initializer), makes the worker
  die with its parent however the parent ends, SIGKILL included. On Linux the kernel does it:
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` through ctypes, no polling and no delay. Where prctl is
  missing (macOS, other Unixes) a daemon watchdog thread polls the parent pid every 0.2 s and
  ends the worker when the parent is gone (it has been re-parented). Workers ignore SIGINT: a
  Ctrl-C reaches the whole process group, and the parent alone decides how its workers stop.
  Workers hold no named semaphore of their own (tqdm's is replaced by a thread lock), so a
  killed worker leaves nothing for multiprocessing's resource tracker to warn about.
- :func:`stop_pool` ends a ``ProcessPoolExecutor``'s workers at once (SIGKILL), for an
  interrupted parent: waiting for them to finish their current job could take minutes.
- :func:`interruptible` turns SIGTERM into :class:`Terminated` (and keeps SIGINT a
  ``KeyboardInterrupt``) in the main thread, so an interrupted command unwinds through its
  ``finally`` clauses, stops its workers and removes its temporary files.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Iterator, Optional

from tqdm import tqdm

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCHDOG_PERIOD = 0.2  # seconds between two looks at the parent pid (fallback only)


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt: no ``except Exception`` swallows it."""


def _set_parent_death_signal(signum: int) -> bool:
    """Ask the kernel to send ``signum`` to this process when its parent dies; False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no C library to load, or one without prctl
        return False


def _watch_parent(parent: int) -> None:
    """Fallback: a daemon thread that ends this process once ``parent`` is no longer its parent."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(WATCHDOG_PERIOD)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="persam-parent-watchdog", daemon=True).start()


def tie_to_parent(parent: Optional[int] = None) -> str:
    """Make this (worker) process end when ``parent`` ends; returns ``"prctl"`` or ``"watchdog"``.

    Call it first in any worker initializer, with ``parent=os.getpid()`` taken in the parent
    when the pool is made: a parent that died before the worker got here is then noticed too
    (the worker has already been re-parented) and the worker ends at once. The death signal
    is SIGKILL: a worker writes every file atomically, and the parent, or the next run, clears
    the temporary files of the job it was doing.
    """
    parent = os.getppid() if parent is None else parent
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # tqdm would make a named semaphore here, shared with no one; a killed worker cannot release
    # it, and the resource tracker then warns about it on the command's stderr
    tqdm.set_lock(threading.RLock())
    how = "prctl" if _set_parent_death_signal(signal.SIGKILL) else "watchdog"
    if how == "watchdog":
        _watch_parent(parent)
    if os.getppid() != parent:  # the parent died before the death signal was set
        os.kill(os.getpid(), signal.SIGKILL)
    return how


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Kill ``pool``'s worker processes now, wait for them, and shut the pool down."""
    kill = getattr(pool, "kill_workers", None)  # Python 3.14+
    if kill is not None:
        kill()
    else:  # the executor's own table of its processes (pid -> Process), stable since Python 3.2
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
            process.join()
    pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """While inside: SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt`` in the main thread.

    After the first of them both are ignored, so that stopping the workers and removing
    temporary files is not cut short by a second Ctrl-C; SIGKILL still ends everything. The
    previous handlers come back on exit. Outside the main thread it does nothing (Python
    delivers signals to the main thread only).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}

    def handle(signum: int, frame: object) -> None:
        for other in previous:
            signal.signal(other, signal.SIG_IGN)
        raise KeyboardInterrupt if signum == signal.SIGINT else Terminated

    for signum in previous:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
