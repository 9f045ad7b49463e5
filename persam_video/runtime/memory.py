"""Freed memory kept for reuse: glibc's allocator told not to hand large blocks back to the system.

By default glibc serves every large request (a 16-50 MB activation of the image encoder, a
decoder's 3 x 4096 x 256 image tokens) with a fresh ``mmap`` and returns it with ``munmap`` when
torch frees it, so the next frame's same tensor faults its pages in (and has them zeroed) again,
for every tensor of every layer. :func:`keep_freed_memory` switches that off for this process
(``mallopt``: no ``mmap`` for allocations, no trimming of the heap's top), so the blocks a frame
frees serve the next frame. The masks are the same to the bit (only where memory comes from
changes); the process keeps its peak memory instead of giving it back between frames.

The command line and the batch workers call it at start; ``$PERSAM_VIDEO_KEEP_MEMORY=0`` turns it
off. Elsewhere than glibc (macOS, musl) it does nothing. A library user may call it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

from ..errors import PersamError

KEEP_MEMORY_ENV = "PERSAM_VIDEO_KEEP_MEMORY"
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameters (malloc.h)
_NEVER = 2**31 - 1  # the largest value mallopt takes: the heap's top is never trimmed


def wanted() -> bool:
    """Whether ``$PERSAM_VIDEO_KEEP_MEMORY`` lets :func:`keep_freed_memory` act (unset or 1: yes; 0: no)."""
    said = os.environ.get(KEEP_MEMORY_ENV, "").strip()
    if said not in ("", "0", "1"):
        raise PersamError(f"${KEEP_MEMORY_ENV} must be 1 or 0, not {said!r}")
    return said != "0"


def keep_freed_memory() -> bool:
    """Tell glibc's allocator to keep freed memory for reuse (see the module's docstring); True if it
    took, False where it was turned off or there is no glibc ``mallopt``."""
    if not wanted() or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    # the trim threshold first: setting it also stops glibc adjusting the mmap threshold by itself
    trimmed = mallopt(_M_TRIM_THRESHOLD, _NEVER)
    return bool(trimmed) and bool(mallopt(_M_MMAP_MAX, 0))
