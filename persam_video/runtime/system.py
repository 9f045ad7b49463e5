"""The CPUs this process may use, and torch's thread count kept to what other work leaves free.

Torch's parallel regions wait for all their threads at a barrier: when another process holds one
of the cores, every region waits for a descheduled thread, and many small regions (the PerSAM-F
fit) then run far slower than on one thread. :class:`ThreadGovernor` watches how much CPU time
other processes take on our CPUs and lowers the thread count while they are busy.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from time import monotonic
from typing import Dict, Optional, Tuple

from ..errors import PersamError

CGROUP_V2_MAX = Path("/sys/fs/cgroup/cpu.max")
CGROUP_V1 = (Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"), Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"))
PROC_STAT = Path("/proc/stat")


def cpu_count() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (a container's limit)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cpus, int(quota))) if quota is not None else cpus


def cgroup_cpu_quota(v2: Path = CGROUP_V2_MAX, v1: Tuple[Path, Path] = CGROUP_V1) -> Optional[float]:
    """The cgroup's CPU quota in CPUs (cgroup v2 ``cpu.max`` or v1 ``cfs_quota_us``), None without one."""
    try:
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us, period_us = (int(path.read_text()) for path in v1)
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def busy_seconds(cpus: Optional[set] = None, stat: Path = PROC_STAT) -> Optional[float]:
    """CPU seconds spent working (not idle) so far on ``cpus`` (all CPUs if None), from the kernel's
    counters; None where there are none."""
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or (cpus is not None and int(name[3:]) not in cpus):
            continue
        fields = [int(v) for v in rest.split()]
        # user nice system idle iowait irq softirq steal ...: idle and iowait are not work
        total += sum(fields[:3]) + sum(fields[5:8])
    return total / tick


def own_seconds() -> float:
    """CPU seconds this process (every thread) and its children have used: the finished ones (an
    encoder's ffmpeg) and the running ones (the frame reader's ffmpeg), so their work is not taken
    for other programs'."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system + running_children_seconds()


def running_children_seconds(proc: Path = Path("/proc")) -> float:
    """CPU seconds of this process's running children, from the kernel's per-process counters (0 where
    there are none to read)."""
    me = os.getpid()
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total = 0
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return 0.0
    for entry in entries:
        try:
            text = (proc / entry / "stat").read_text()
        except OSError:
            continue
        fields = text[text.rfind(")") + 2:].split()  # after "pid (name) ": state, ppid, ...
        if len(fields) > 12 and fields[1] == str(me):
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / tick


class ThreadGovernor:
    """Sets torch's thread count to the CPUs free of other work, between ``1`` and ``limit``.

    :meth:`adjust` is called between units of work (frames, fits); every ``interval`` seconds it
    compares the CPU time our CPUs spent working with our own and gives torch the rest, rounded.
    """

    def __init__(self, limit: int, interval: float = 0.5, first: float = 0.1) -> None:
        self.limit = max(1, limit)
        self.interval = interval
        self._wait = first  # the first reading comes sooner: it decides the threads of the first fit
        self.cpus = set(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        self.capacity = cpu_count()
        self.threads = self.limit
        self._last = self._sample()
        self._set(self.limit)

    def _sample(self) -> Tuple[float, Optional[float], float]:
        return monotonic(), busy_seconds(self.cpus), own_seconds()

    def _set(self, threads: int) -> None:
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        self.threads = threads

    def others(self) -> Optional[float]:
        """CPUs' worth of work other processes did on our CPUs since the last sample (None: unknown)."""
        now = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        self._last = now
        if busy0 is None or busy1 is None or t1 <= t0:
            return None
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))

    def adjust(self) -> int:
        """Re-read the load if ``interval`` has passed and set the thread count; returns it."""
        if monotonic() - self._last[0] < self._wait:
            return self.threads
        self._wait = self.interval
        others = self.others()
        if others is not None:
            self._set(min(self.limit, max(1, math.floor(self.capacity - others + 0.5))))
        return self.threads


_GOVERNOR: Dict[str, ThreadGovernor] = {}


THREADS_ENV = "PERSAM_VIDEO_THREADS"


def set_threads(threads: Optional[int], workers: int = 1) -> None:
    """The process's thread policy: a fixed count (``threads``, else ``$PERSAM_VIDEO_THREADS``), or the
    CPUs free of other work, at most :func:`cpu_count` // ``workers``; the commands call it once.

    A fixed count makes runs byte-reproducible: PerSAM-F's fit sums floats over threads, so its last
    bits (and rarely a mask pixel) follow the thread count, which the automatic policy takes from the
    load when the fit starts."""
    import torch

    _GOVERNOR.clear()
    if not threads:
        said = os.environ.get(THREADS_ENV, "").strip()
        if said:
            if not said.isdigit() or int(said) < 1:
                raise PersamError(f"${THREADS_ENV} must be a number of threads >= 1, not {said!r}")
            threads = int(said)
    if threads:
        torch.set_num_threads(threads)
    else:
        _GOVERNOR["auto"] = ThreadGovernor(max(1, cpu_count() // max(1, workers)))


def adjust_threads() -> None:
    """Between units of work: follow the load if :func:`set_threads` chose the automatic policy."""
    governor = _GOVERNOR.get("auto")
    if governor is not None:
        governor.adjust()
