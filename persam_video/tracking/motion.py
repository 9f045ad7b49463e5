"""Carrying the last label map onto the next frame along dense optical flow (OpenCV's DIS).

The public recipe's location prior is the previous mask's box: it goes stale as soon as an object
moves farther than the box margin in one frame. Warping the previous label map by the motion
between the two frames gives a prior that has moved with the object. Flow runs on small grey
frames, so its cost stays a small share of an image-encoder pass; only one frame is kept, so
memory does not grow with the clip.
"""
from __future__ import annotations

from typing import Optional, Tuple

import cv2
import numpy as np

FLOW_SIDE = 480  # the flow's frames: the long side at most this many pixels


def flow_size(height: int, width: int, side: int = FLOW_SIDE) -> Tuple[int, int]:
    """(height, width) of the frames the flow is computed on: the frame shrunk to ``side`` (never grown)."""
    scale = min(1.0, side / max(height, width))
    return max(1, round(height * scale)), max(1, round(width * scale))


def small_grey(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``image`` (RGB uint8) as grey uint8 of ``size`` (height, width)."""
    grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if grey.shape != tuple(size):
        grey = cv2.resize(grey, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return grey


def pixel_grid(height: int, width: int) -> Tuple[np.ndarray, np.ndarray]:
    """(xs, ys) float32 pixel coordinates of a ``height`` x ``width`` frame, as ``cv2.remap`` takes them."""
    return np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))


def warp_labels(labels: np.ndarray, flow: np.ndarray,
                grid: Optional[Tuple[np.ndarray, np.ndarray]] = None) -> np.ndarray:
    """The label map ``labels`` moved by ``flow`` ((H, W, 2): for each pixel the (dx, dy) to where it
    came from): each pixel takes the id there (nearest; 0 where that is outside the frame). ``grid``:
    :func:`pixel_grid` of the frame, when the caller keeps it."""
    xs, ys = grid if grid is not None else pixel_grid(*labels.shape)
    return cv2.remap(labels, xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_NEAREST,
                     borderMode=cv2.BORDER_CONSTANT, borderValue=0)


class MotionPrior:
    """The last frame (small, grey) and its label map; :meth:`carry` moves that map onto a new frame.

    A frame is first shrunk with :meth:`grey` (once per frame), then given to :meth:`carry` and
    :meth:`remember`."""

    def __init__(self, frame_size: Tuple[int, int], side: int = FLOW_SIDE):
        self.frame_size = tuple(frame_size)
        self.size = flow_size(*self.frame_size, side)
        self._grey: Optional[np.ndarray] = None
        self._labels: Optional[np.ndarray] = None
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)  # made once: the same per frame
        self._grid = pixel_grid(*self.size)

    @property
    def ready(self) -> bool:
        """Whether a frame is remembered (else :meth:`carry` has nothing to move)."""
        return self._grey is not None

    def forget(self) -> None:
        """Remember no frame: the state before a pass's first frame."""
        self._grey = self._labels = None

    def grey(self, image: np.ndarray) -> np.ndarray:
        """``image`` (RGB uint8, the frame size) as the small grey frame the flow works on."""
        return small_grey(image, self.size)

    def carry(self, grey: np.ndarray) -> Optional[np.ndarray]:
        """The remembered label map moved onto the frame ``grey`` (from :meth:`grey`), full size
        uint8, or None when no frame is remembered."""
        if not self.ready:
            return None
        flow = self._dis.calc(grey, self._grey, None)  # from this frame back to the remembered one
        warped = warp_labels(self._labels, flow, self._grid)
        h, w = self.frame_size
        return cv2.resize(warped, (w, h), interpolation=cv2.INTER_NEAREST)

    def remember(self, grey: np.ndarray, labels: np.ndarray) -> None:
        """Keep the frame ``grey`` (from :meth:`grey`) and its full-size label map for the next :meth:`carry`."""
        self._grey = grey
        self._labels = cv2.resize(np.ascontiguousarray(labels, dtype=np.uint8), (self.size[1], self.size[0]),
                                  interpolation=cv2.INTER_NEAREST)

    def state(self) -> Optional[dict]:
        """What :meth:`load` needs to carry from the remembered frame (arrays; None when none is)."""
        return None if not self.ready else {"grey": self._grey.copy(), "labels": self._labels.copy()}

    def load(self, state: Optional[dict]) -> None:
        """Put back what :meth:`state` gave."""
        self.forget()
        if state is not None:
            self._grey = np.asarray(state["grey"], dtype=np.uint8)
            self._labels = np.asarray(state["labels"], dtype=np.uint8)
