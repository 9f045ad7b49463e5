"""The label maps of the page's loaded video on disk: one label PNG per frame, named like the frame.

Kept apart from the prompts (:mod:`.object_prompts`): these files are what the page shows, what
Track writes and what the downloads export; a click puts its object's mask into its frame's map.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from ..io.masks import read_label_png, write_label_png


class LabelMaps:
    """The label PNGs of one video in ``folder``: frame ``i`` is ``names[i] + '.png'``, of ``size`` (H, W)."""

    def __init__(self, folder: Path, names: Sequence[str], size: Tuple[int, int]) -> None:
        self.folder = folder
        self.names = names
        self.size = size

    def path(self, frame: int) -> Path:
        """The label PNG of ``frame``."""
        return self.folder / f"{self.names[frame]}.png"

    def read(self, frame: int) -> Optional[np.ndarray]:
        """The label map of ``frame``, or None when it has none yet."""
        path = self.path(frame)
        return read_label_png(path) if path.is_file() else None

    def write(self, frame: int, labels: Optional[np.ndarray]) -> None:
        """Make ``labels`` the label map of ``frame`` (None: the frame has none)."""
        if labels is None:
            self.path(frame).unlink(missing_ok=True)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        write_label_png(self.path(frame), labels)

    def put(self, frame: int, obj_id: int, mask: np.ndarray) -> None:
        """Make ``mask`` the object's pixels on ``frame``, over any other object's."""
        labels = self.read(frame)
        labels = np.zeros(self.size, np.uint8) if labels is None else np.where(labels == obj_id, 0, labels)
        labels[np.asarray(mask, dtype=bool)] = obj_id
        self.write(frame, labels.astype(np.uint8))

    def erase(self, obj_id: int) -> None:
        """Take the object's pixels off every frame's map."""
        for path in self.folder.glob("*.png"):
            labels = read_label_png(path)
            if (labels == obj_id).any():
                write_label_png(path, np.where(labels == obj_id, 0, labels).astype(np.uint8))
