"""One writer per output folder: an advisory lock file inside it.

``with output_lock(folder):`` takes an exclusive ``fcntl.flock`` on ``<folder>/.persam-video.lock``
(creating the folder if needed) and writes this process's id into it. A second run into the
same folder fails at once with a one-line :class:`PersamError` naming the folder and the
holder's pid, before it has written anything. The kernel drops the lock when its holder dies,
however it dies, so a crash or a SIGKILL never leaves a stale lock: the file it leaves behind
only names a dead process and is taken over by the next run. On a normal exit the file is
removed (and the folder too, if the lock created it and nothing was written in it).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterator, Union

from ..errors import PersamError
from ..io.files import ensure_writable_dir

LOCK_NAME = ".persam-video.lock"


def _holder(path: Path) -> str:
    """The pid written in a lock file, as the error message shows it."""
    try:
        pid = path.read_text().strip()
    except OSError:
        pid = ""
    return f"process {pid}" if pid.isdigit() else "another process"


def _acquire(path: Path, folder: Path) -> int:
    """Open and lock ``path``; the locked file's descriptor. Fails at once if another process holds it."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise PersamError(f"cannot create the lock file in {folder}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise PersamError(f"cannot lock the output folder {folder}: {exc.strerror or exc}") from None
            raise PersamError(f"the output folder {folder} is in use by another run ({_holder(path)}); "
                              "wait for it to end or choose another folder") from None
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # its holder removed the file between our open and our lock: take the new one


@contextlib.contextmanager
def output_lock(folder: Union[str, os.PathLike]) -> Iterator[Path]:
    """Hold the output folder's lock while inside; yields the folder (created if missing)."""
    folder = Path(folder)
    created = not folder.exists()
    ensure_writable_dir(folder)
    path = folder / LOCK_NAME
    fd = _acquire(path, folder)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield folder
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: whoever opened the old file sees it is gone, and retries
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: a run refused before it wrote anything leaves no folder
