"""Output folders of PNGs, one per frame: label maps (DAVIS palette, original ids) or images.

:class:`PngFolderWriter` writes each PNG when asked; :class:`WriteBehind` wraps one so that the
PNGs are written on a background thread while the caller computes the next frame (same files,
same names, each still written under a temporary name and renamed into place).
"""
from __future__ import annotations

import collections
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Deque, Optional, Union

import numpy as np

from ..errors import PersamError, error_line
from .files import PathLike, ensure_writable_dir
from .masks import write_label_png

DEPTH = 2  # frames a WriteBehind holds at most: the one being written and the next


class PngFolderWriter:
    """Writes ``<out_dir>/<frame name>.png`` atomically; checks up front that it can write there.

    ``save(path, image)`` writes one file atomically (e.g. :func:`persam_video.io.masks.write_label_png`).
    """

    def __init__(self, out_dir: PathLike, save: Callable[[Path, np.ndarray], None]):
        self.out_dir = ensure_writable_dir(out_dir)
        self.save = save
        self.written = 0

    def path_for(self, name: str) -> Path:
        """Where frame ``name`` goes."""
        return self.out_dir / f"{name}.png"

    def write(self, name: str, image: np.ndarray, then: Optional[Callable[[], None]] = None) -> Path:
        """Write one frame's PNG; the file appears complete or not at all. ``then`` (e.g. recording
        the frame as done) is called once the PNG is in place, never when writing it failed."""
        path = self.path_for(name)
        try:
            self.save(path, image)
        except OSError as exc:
            raise PersamError(f"cannot write {path}: {error_line(exc)}") from None
        self.written += 1
        if then is not None:
            then()
        return path

    def close(self) -> None:
        """Nothing to finish: every PNG is complete once written."""

    def abort(self) -> None:
        """Keep the complete PNGs written so far."""


class LabelWriter(PngFolderWriter):
    """One indexed PNG per frame (DAVIS palette, original ids): what ``segment`` writes."""

    def __init__(self, out_dir: PathLike):
        super().__init__(out_dir, write_label_png)


class WriteBehind:
    """Writes through ``writer`` on one background thread, in order, while the caller goes on.

    At most ``depth`` frames wait or are being written at once (:meth:`write` blocks for the
    oldest beyond that), so memory stays bounded. A write's ``then`` runs on the thread right
    after its PNG is renamed into place, so whatever it records never runs ahead of the files.
    After a failed write nothing later is written or recorded, and the error (the same
    :class:`~persam_video.errors.PersamError` the plain writer raises) is raised by the next
    :meth:`write` or by :meth:`close`. PNG encoding mostly holds the GIL, so the gain comes from
    the model's work, which releases it (docs/design.md, "Writing behind").
    """

    def __init__(self, writer: PngFolderWriter, depth: int = DEPTH):
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.writer = writer
        self.depth = depth
        self._pending: Deque[Future] = collections.deque()
        self._pool: Optional[ThreadPoolExecutor] = None  # started by the first write
        self._failure: Optional[BaseException] = None

    @property
    def out_dir(self) -> Path:
        """The folder written to."""
        return self.writer.out_dir

    @property
    def written(self) -> int:
        """PNGs in place so far (all of them once :meth:`close` has returned)."""
        return self.writer.written

    def path_for(self, name: str) -> Path:
        """Where frame ``name`` goes."""
        return self.writer.path_for(name)

    def write(self, name: str, image: np.ndarray, then: Optional[Callable[[], None]] = None) -> Path:
        """Queue one frame's PNG (a copy of ``image``: the caller may reuse its array) and return
        where it will be; raises the error of an earlier write that failed."""
        self._raise_failure()
        while len(self._pending) >= self.depth:
            self._pending.popleft().result()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="persam-png-writer")
        self._pending.append(self._pool.submit(self._write, name, np.array(image, copy=True), then))
        return self.path_for(name)

    def close(self) -> None:
        """Wait until every queued PNG is in place; raises the first write's error, if any."""
        try:
            while self._pending:
                self._pending.popleft().result()
            self._raise_failure()
        finally:
            self._stop()

    def abort(self) -> None:
        """Stop after the caller failed or was interrupted: the queued writes (at most ``depth``,
        milliseconds each) finish, so no half-written temporary stays behind; raises nothing."""
        self._pending.clear()
        self._stop()

    def _write(self, name: str, image: np.ndarray, then: Optional[Callable[[], None]]) -> None:
        if self._failure is not None:  # an earlier write failed: nothing after it is written or recorded
            return
        try:
            self.writer.write(name, image, then)
        except BaseException as exc:
            self._failure = exc
            raise

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def write_behind(writer: PngFolderWriter, enabled: bool = True,
                 depth: int = DEPTH) -> Union[PngFolderWriter, WriteBehind]:
    """``writer`` behind a background thread (:class:`WriteBehind`), or ``writer`` itself when not ``enabled``."""
    return WriteBehind(writer, depth) if enabled else writer
