"""Writes one indexed PNG per frame (DAVIS palette, original ids) into an output folder."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Union

import numpy as np

from .errors import PersamError
from .masks import write_label_png


def ensure_writable_dir(folder: Union[str, os.PathLike]) -> Path:
    """Create ``folder`` if needed and prove it can be written; a one-line PersamError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PersamError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder


class LabelWriter:
    """Writes ``<out_dir>/<frame name>.png`` atomically; checks up front that it can write there."""

    def __init__(self, out_dir: Union[str, os.PathLike]):
        self.out_dir = ensure_writable_dir(out_dir)
        self.written = 0

    def path_for(self, name: str) -> Path:
        """Where the label map of frame ``name`` goes."""
        return self.out_dir / f"{name}.png"

    def write(self, name: str, labels: np.ndarray) -> Path:
        """Write one frame's label map; the file appears complete or not at all."""
        path = self.path_for(name)
        try:
            write_label_png(path, labels)
        except OSError as exc:
            raise PersamError(f"cannot write {path}: {exc.strerror or exc}") from None
        self.written += 1
        return path
