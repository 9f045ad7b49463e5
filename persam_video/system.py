"""Facts about the machine this process runs on."""
from __future__ import annotations

import os


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
