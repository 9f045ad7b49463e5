"""Output folders of PNGs, one per frame: label maps (DAVIS palette, original ids) or images."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Union

import numpy as np

from .errors import PersamError, error_line
from .masks import write_label_png

PathLike = Union[str, os.PathLike]


def ensure_writable_dir(folder: PathLike) -> Path:
    """Create ``folder`` if needed and prove it can be written; a one-line PersamError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PersamError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder


class PngFolderWriter:
    """Writes ``<out_dir>/<frame name>.png`` atomically; checks up front that it can write there.

    ``save(path, image)`` writes one file atomically (e.g. :func:`persam_video.masks.write_label_png`).
    """

    def __init__(self, out_dir: PathLike, save: Callable[[Path, np.ndarray], None]):
        self.out_dir = ensure_writable_dir(out_dir)
        self.save = save
        self.written = 0

    def path_for(self, name: str) -> Path:
        """Where frame ``name`` goes."""
        return self.out_dir / f"{name}.png"

    def write(self, name: str, image: np.ndarray) -> Path:
        """Write one frame's PNG; the file appears complete or not at all."""
        path = self.path_for(name)
        try:
            self.save(path, image)
        except OSError as exc:
            raise PersamError(f"cannot write {path}: {error_line(exc)}") from None
        self.written += 1
        return path

    def close(self) -> None:
        """Nothing to finish: every PNG is complete once written."""

    def abort(self) -> None:
        """Keep the complete PNGs written so far."""


class LabelWriter(PngFolderWriter):
    """One indexed PNG per frame (DAVIS palette, original ids): what ``segment`` writes."""

    def __init__(self, out_dir: PathLike):
        super().__init__(out_dir, write_label_png)
