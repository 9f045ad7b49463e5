"""The page's objects and their prompts: ids with names, and each object's clicks and box per frame.

This is what the page draws and what undo and redo restore; the masks the prompts give live in
the label maps (:mod:`.label_maps`) and the prompts themselves also go to the library's prompting
session (:class:`persam_video.tracking.session.VideoSession`), which
:class:`~.browser_session.BrowserSession` keeps in step with this.
"""
from __future__ import annotations

import copy
from typing import Dict, Optional, Sequence, Set

from ..io.masks import DAVIS_PALETTE
from .history import rounded
from .video import UiError

MAX_OBJECTS = 254
MAX_NAME = 40
Mark = dict  # {"points": [[x, y, label]], "box": [x0, y0, x1, y1] or None}


def colour(obj_id: int) -> str:
    """The object's DAVIS palette colour as ``#rrggbb``."""
    return "#" + "".join(f"{int(c):02x}" for c in DAVIS_PALETTE[obj_id])


def clean_name(name: Optional[str]) -> str:
    """An object name as the page may show it: printable, trimmed, at most MAX_NAME characters."""
    return "".join(ch for ch in (name or "") if ch.isprintable()).strip()[:MAX_NAME]


class ObjectPrompts:
    """Objects (id -> name, ids 1 to :data:`MAX_OBJECTS`) and their marks (frame -> object -> mark)."""

    def __init__(self) -> None:
        self.objects: Dict[int, str] = {}
        self.marks: Dict[int, Dict[int, Mark]] = {}

    def check(self, obj_id: Optional[int]) -> int:
        """``obj_id`` if it names an object, else a UiError that says what to do."""
        if not self.objects:
            raise UiError("add an object first")
        if obj_id not in self.objects:
            raise UiError(f"there is no object {obj_id}: choose one in the list")
        return obj_id

    def add(self, name: Optional[str] = None) -> int:
        """A new object with the smallest free id; returns its id."""
        free = [k for k in range(1, MAX_OBJECTS + 1) if k not in self.objects]
        if not free:
            raise UiError(f"at most {MAX_OBJECTS} objects")
        obj_id = free[0]
        self.objects[obj_id] = clean_name(name) or f"object {obj_id}"
        return obj_id

    def rename(self, obj_id: int, name: str) -> None:
        """Give an object a new name (names are for the page; files keep the ids)."""
        self.check(obj_id)
        new = clean_name(name)
        if not new:
            raise UiError("an object's name cannot be empty")
        self.objects[obj_id] = new

    def remove(self, obj_id: int) -> None:
        """Forget an object and its marks on every frame."""
        self.check(obj_id)
        del self.objects[obj_id]
        for frame in list(self.marks):
            self.set_mark(frame, obj_id, None)

    def mark(self, frame: int, obj_id: int) -> Optional[Mark]:
        """The object's mark on ``frame`` (None: no prompt there)."""
        return self.marks.get(frame, {}).get(obj_id)

    def _editable(self, frame: int, obj_id: int) -> Mark:
        return self.marks.setdefault(frame, {}).setdefault(obj_id, {"points": [], "box": None})

    def add_point(self, frame: int, obj_id: int, x: float, y: float, label: int) -> None:
        """One more click (label 1 on the object, 0 off it) in the object's mark on ``frame``."""
        self._editable(frame, obj_id)["points"].append([float(x), float(y), label])

    def set_box(self, frame: int, obj_id: int, box: Sequence[float]) -> None:
        """The object's box on ``frame`` (x0, y0, x1, y1)."""
        self._editable(frame, obj_id)["box"] = [float(v) for v in box]

    def set_mark(self, frame: int, obj_id: int, mark: Optional[Mark]) -> None:
        """Make ``mark`` (a copy of it) the object's mark on ``frame``; an empty one or None removes it."""
        if mark:
            self.marks.setdefault(frame, {})[obj_id] = copy.deepcopy(mark)
        elif frame in self.marks:
            self.marks[frame].pop(obj_id, None)
            if not self.marks[frame]:
                del self.marks[frame]

    def prompted(self) -> Set[int]:
        """The objects with a mark on some frame."""
        return {k for marks in self.marks.values() for k in marks}

    def describe(self) -> dict:
        """The page's ``objects`` and ``marks``, JSON-ready."""
        prompted = self.prompted()
        return {
            "objects": [{"id": k, "name": n, "colour": colour(k), "prompted": k in prompted}
                        for k, n in sorted(self.objects.items())],
            "marks": {str(f): {str(k): rounded(m) for k, m in marks.items()} for f, marks in self.marks.items()},
        }
