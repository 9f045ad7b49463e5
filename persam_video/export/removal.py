"""Object removal: each masked pixel filled with the background seen in other frames, along optical flow.

For a frame ``t`` the hole (the chosen objects' masks, grown) is filled from frames ``t±1``,
``t±2``, ... ``t±reach``, nearest first, alternating forward and backward: the flow between
consecutive frames (OpenCV's DIS on small grey frames, as ``--propagation flow`` uses) has its
values inside each frame's hole replaced by a fill from the hole's border (the object's own motion
is not the background's), and is chained to reach farther frames; a pixel takes the colour it
lands on in a source frame unless that spot is itself in the source's hole or outside the frame.
What no frame in the window shows is inpainted with ``cv2.inpaint`` (Telea), frame by frame
(optionally first copied from the previous result along the flow: ``carry``). The copies are
shifted by the frame's own difference at the hole's border (exposure changes between frames),
and the result is blended into the frame over a band of ``band`` pixels around the hole.

Streaming: :class:`Remover` holds ``2 * reach + 1`` frames (the frame being filled and ``reach``
on each side) with their holes and flows; background that shows only farther away than
``reach`` frames away is not used: what a slow object covers for longer than that is inpainted.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Deque, List, Optional, Tuple

import cv2
import numpy as np

from ..tracking.motion import FLOW_SIDE, flow_size, pixel_grid, small_grey
from .holes import fill_from_border, grow, mix, seam_alpha

#: frames searched on each side of the frame being filled
REACH = 12
#: pixels around the hole over which the fill is blended into the frame
SEAM_BAND = 3
#: Telea's neighbourhood radius in pixels for what no frame shows
INPAINT_RADIUS = 3
#: small-flow pixels around a hole whose flow is also completed (DIS smears the object's motion past its edge)
FLOW_MARGIN = 3


@dataclass
class _Slot:
    """One frame in the window: full-size picture and hole, small grey frame and hole, and its flows."""

    image: np.ndarray
    hole: np.ndarray
    grey: np.ndarray
    small_hole: np.ndarray
    forward: Optional[np.ndarray] = None   # small flow to the next frame, completed inside the hole
    backward: Optional[np.ndarray] = None  # small flow to the previous frame, completed inside the hole


def inpaint_frame(image: np.ndarray, hole: np.ndarray, radius: int = INPAINT_RADIUS) -> np.ndarray:
    """``image`` with the ``hole`` pixels inpainted by OpenCV's Telea method (one frame on its own)."""
    if not hole.any():
        return image.copy()
    return cv2.inpaint(np.ascontiguousarray(image), hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)


class Remover:
    """Feed frames and their holes in order with :meth:`push`; get the cleaned frames in the same order.

    Each call returns the frames that are ready (a frame is ready once ``reach`` later frames are
    in); :meth:`finish` returns the rest. ``carry``: fill what no frame in the window shows from the
    previous result along the flow before inpainting (off: on synthetic clips it was farther from
    the truth and not steadier than inpainting each frame; figures in benchmarks/README.md).
    """

    def __init__(self, frame_size: Tuple[int, int], reach: int = REACH, band: int = SEAM_BAND,
                 side: int = FLOW_SIDE, carry: bool = False) -> None:
        self.frame_size = tuple(frame_size)
        self.reach = max(0, int(reach))
        self.band = max(0, int(band))
        self.carry = carry
        self.small = flow_size(*self.frame_size, side)
        self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        self._grid_small = pixel_grid(*self.small)
        self._grid = pixel_grid(*self.frame_size)
        self._scale = (self.frame_size[1] / self.small[1], self.frame_size[0] / self.small[0])
        # where each full-size pixel lies on the small grid (pixel centres aligned, as cv2.resize does)
        self._up = np.stack([(self._grid[0] + 0.5) / self._scale[0] - 0.5,
                             (self._grid[1] + 0.5) / self._scale[1] - 0.5])
        self._slots: Deque[_Slot] = deque()
        self._first = 0   # frame index of self._slots[0]
        self._next = 0    # index of the next frame to give out
        self._count = 0   # frames pushed
        self._previous: Optional[np.ndarray] = None  # the last result given out

    def _flow(self, grey_from: np.ndarray, grey_to: np.ndarray, hole: np.ndarray) -> np.ndarray:
        flow = self._dis.calc(grey_from, grey_to, None)
        return fill_from_border(flow, hole)

    def push(self, image: np.ndarray, hole: np.ndarray) -> List[np.ndarray]:
        """Add the next frame ((H, W, 3) uint8 RGB) and its hole ((H, W) bool); returns the frames now ready."""
        small_hole = grow(cv2.resize(hole.astype(np.uint8), (self.small[1], self.small[0]),
                                     interpolation=cv2.INTER_AREA) > 0, FLOW_MARGIN)
        slot = _Slot(image=image, hole=hole.astype(bool), grey=small_grey(image, self.small), small_hole=small_hole)
        if self._slots:
            last = self._slots[-1]
            last.forward = self._flow(last.grey, slot.grey, last.small_hole)
            slot.backward = self._flow(slot.grey, last.grey, slot.small_hole)
        self._slots.append(slot)
        self._count += 1
        ready = []
        while self._next + self.reach < self._count:
            ready.append(self._give())
        return ready

    def finish(self) -> List[np.ndarray]:
        """The frames not given out yet (the clip has ended)."""
        return [self._give() for _ in range(self._count - self._next)]

    def _give(self) -> np.ndarray:
        result = self._fill(self._next)
        self._previous = result
        self._next += 1
        while self._slots and self._first < self._next - self.reach:  # keep `reach` frames behind
            self._slots.popleft()
            self._first += 1
        return result

    def _slot(self, index: int) -> Optional[_Slot]:
        offset = index - self._first
        return self._slots[offset] if 0 <= offset < len(self._slots) and index < self._count else None

    def _chain(self, composed: np.ndarray, step: np.ndarray) -> np.ndarray:
        """The flow ``composed`` (frame t to frame s) followed by ``step`` (frame s to the next s)."""
        xs, ys = self._grid_small
        moved = cv2.remap(step, xs + composed[..., 0], ys + composed[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        return composed + moved

    def _sample(self, source: _Slot, flow: np.ndarray, todo: np.ndarray, box: Tuple[slice, slice],
                canvas: np.ndarray) -> np.ndarray:
        """Copy into ``canvas`` the ``todo`` pixels that the small ``flow`` takes to visible
        background of ``source``; returns the pixels copied (within ``box``)."""
        h, w = self.frame_size
        big = cv2.remap(flow, *self._up[(slice(None), *box)], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        xs = self._grid[0][box] + big[..., 0] * self._scale[0]
        ys = self._grid[1][box] + big[..., 1] * self._scale[1]
        inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
        covered = cv2.remap(source.hole.astype(np.uint8), xs, ys, cv2.INTER_NEAREST,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=1)
        take = todo[box] & inside & (covered == 0)
        if take.any():
            colours = cv2.remap(source.image, xs, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
            canvas[box][take] = colours[take]
        return take

    @staticmethod
    def _match_seam(canvas: np.ndarray, image: np.ndarray, hole: np.ndarray, copied: np.ndarray) -> np.ndarray:
        """The copied colours shifted by the frame's own difference at the seam, spread smoothly into the hole.

        Other frames differ in exposure and lighting: around the hole the frame is known, so the
        difference there (frame minus copy) is filled into the hole from its border and added
        (a membrane, like Poisson blending but one cheap pass).
        """
        ring = copied & ~hole
        if not ring.any():
            return canvas
        difference = np.where(ring[..., None], image.astype(np.float32) - canvas.astype(np.float32), 0.0)
        known = ring | ~hole
        difference = fill_from_border(difference.astype(np.float32), ~known)
        inside = copied & hole
        out = canvas.copy()
        out[inside] = np.clip(np.rint(canvas[inside] + difference[inside]), 0, 255).astype(np.uint8)
        return out

    def _fill(self, index: int) -> np.ndarray:
        target = self._slot(index)
        assert target is not None
        if not target.hole.any():
            return target.image.copy()
        region = grow(target.hole, self.band)
        todo = region.copy()
        rows = np.flatnonzero(region.any(axis=1))
        cols = np.flatnonzero(region.any(axis=0))
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        canvas = target.image.copy()
        composed = {+1: np.zeros((*self.small, 2), np.float32), -1: np.zeros((*self.small, 2), np.float32)}
        for k in range(1, self.reach + 1):
            for step in (+1, -1):
                before, source = self._slot(index + step * (k - 1)), self._slot(index + step * k)
                if source is None or before is None:
                    continue
                flow = before.forward if step > 0 else before.backward
                composed[step] = self._chain(composed[step], flow)
                took = self._sample(source, composed[step], todo, box, canvas)
                todo[box] &= ~took
            if not todo.any():
                break
        if todo.any() and self.carry and self._previous is not None and target.backward is not None:
            earlier = _Slot(image=self._previous, hole=np.zeros(self.frame_size, bool), grey=target.grey,
                            small_hole=target.small_hole)
            took = self._sample(earlier, target.backward, todo, box, canvas)
            todo[box] &= ~took
        canvas[box] = self._match_seam(canvas[box], target.image[box], target.hole[box], region[box] & ~todo[box])
        if todo.any():
            canvas = inpaint_frame(canvas, todo)
        out = target.image.copy()
        out[box] = mix(canvas[box], target.image[box], seam_alpha(target.hole[box], self.band))
        return out
