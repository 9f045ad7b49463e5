"""Undo and redo of the page's prompts: each click, box or "clear" is an :class:`Edit` holding one
object's prompt on one frame and that frame's label map before and after it.

Undo puts the prompt back as it was (the prompting session decodes it again, as SAM's decoding of
the same clicks gives the same mask) and the label map exactly as it was; redo does the reverse.
A Track, loading a video or removing an object starts a new history (their effects on every
frame are not undone).
"""
from __future__ import annotations

import copy
import zlib
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

MAX_EDITS = 200  # the oldest edits are forgotten beyond this (two compressed label maps each)


@dataclass
class Side:
    """One side of an edit: the object's prompt on the frame (``{"points": [[x, y, label]], "box"}`` or
    None), the frame's label map (None: the frame had none), kept compressed (a label map is mostly
    runs of one id: a 1920x1080 one takes kilobytes, not 2 MB), and the session's ``changed_from``."""

    mark: Optional[dict]
    packed: Optional[Tuple[Tuple[int, int], bytes]]
    changed_from: Optional[int]

    @classmethod
    def of(cls, mark: Optional[dict], labels: Optional[np.ndarray], changed_from: Optional[int]) -> "Side":
        """A side holding copies (the session goes on changing its own)."""
        packed = None
        if labels is not None:
            packed = (labels.shape, zlib.compress(np.ascontiguousarray(labels, np.uint8).tobytes(), 1))
        return cls(copy.deepcopy(mark), packed, changed_from)

    def labels(self) -> Optional[np.ndarray]:
        """The frame's label map, (H, W) uint8, or None."""
        if self.packed is None:
            return None
        shape, data = self.packed
        return np.frombuffer(zlib.decompress(data), np.uint8).reshape(shape).copy()

    def prompt(self) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
        """The prompt as the prompting session takes it: points (P, 2), labels (P,) and box (4,), each or None."""
        mark = self.mark or {"points": [], "box": None}
        points = np.array([p[:2] for p in mark["points"]], np.float32) if mark["points"] else None
        labels = np.array([p[2] for p in mark["points"]]) if mark["points"] else None
        return points, labels, None if mark["box"] is None else np.array(mark["box"], np.float32)


@dataclass
class Edit:
    """A change of ``obj_id``'s prompt on ``frame``; ``what`` names it in the page ("click", "box", "clear")."""

    what: str
    frame: int
    obj_id: int
    before: Side
    after: Side


class History:
    """The edits that can be undone, latest last, and those undone that can be redone."""

    def __init__(self) -> None:
        self._done: List[Edit] = []
        self._undone: List[Edit] = []

    def record(self, edit: Edit) -> None:
        """A new edit: it can be undone, and what was undone can no longer be redone."""
        self._done = (self._done + [edit])[-MAX_EDITS:]
        self._undone.clear()

    def undo(self) -> Optional[Edit]:
        """The latest edit, moved to the redo list, or None."""
        return _move_last(self._done, self._undone)

    def redo(self) -> Optional[Edit]:
        """The latest undone edit, moved back, or None."""
        return _move_last(self._undone, self._done)

    def put_back(self, edit: Edit, undone: bool) -> None:
        """Return ``edit`` to the list it came from when applying it failed."""
        (self._undone if undone else self._done).remove(edit)
        (self._done if undone else self._undone).append(edit)

    def clear(self) -> None:
        """Forget every edit."""
        self._done.clear()
        self._undone.clear()

    def describe(self) -> dict:
        """What the page's Undo and Redo buttons say."""
        last = self._done[-1] if self._done else None
        nxt = self._undone[-1] if self._undone else None
        return {"undo": None if last is None else f"{last.what} on frame {last.frame}",
                "redo": None if nxt is None else f"{nxt.what} on frame {nxt.frame}"}


def rounded(mark: dict) -> dict:
    """A prompt as the page draws it: coordinates to 0.1 pixel (the session keeps them exact)."""
    box = mark["box"]
    return {"points": [[round(x, 1), round(y, 1), label] for x, y, label in mark["points"]],
            "box": None if box is None else [round(v, 1) for v in box]}


def _move_last(source: List[Edit], target: List[Edit]) -> Optional[Edit]:
    """Move ``source``'s last edit to the end of ``target`` and return it; None when ``source`` is empty."""
    if not source:
        return None
    target.append(source.pop())
    return target[-1]
