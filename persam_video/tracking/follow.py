"""The flow prior applied to the tracker's objects: boxes and anchors where their masks moved,
the other objects as negative points, and the leak guard."""
from __future__ import annotations

from typing import Collection, List, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch

from .. import persam
from .object_state import ObjectState

GUARD_MARGIN = 3  # pixels a guarded mask may extend beyond its carried mask


def follow(objects: Sequence[ObjectState], carried: np.ndarray, margin: int, skip: Collection[int] = ()) -> None:
    """Give each object the box prior (its carried mask's box widened by ``margin``) and the anchor
    (that mask's most interior pixel) of its mask carried onto this frame. An object seen on the last
    frame whose mask the motion carried out of this one loses its box prior, so it is searched for
    with the re-detection gate (the recipe would keep its last box); one not seen keeps the recipe's.
    Objects in ``skip`` (given a mask on this frame) only lose their anchor, so none is a negative point."""
    h, w = carried.shape
    for obj in objects:
        obj.lead = None
        if obj.feature is None or obj.obj_id in skip:
            continue
        mask = carried == obj.obj_id
        box = persam.tight_box(mask)
        if box is not None:
            obj.box = persam.widen_box(box, margin, h, w)
            obj.lead = persam.interior_point(mask)
        elif obj.missing == 0:
            obj.box = None


def within_boxes(maps: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """``maps`` (N, H, W) with ``-inf`` outside each object's box prior (``boxes`` (N, 4)), so that its
    positive points are taken where the object moved to, not on a look-alike elsewhere."""
    return maps.masked_fill(~persam.box_mask(boxes, *maps.shape[1:]), float("-inf"))


def negative_points(objs: Sequence[ObjectState], everyone: Sequence[ObjectState],
                    device: torch.device) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
    """For each of ``objs`` (with a box prior), the anchors of the other objects' carried masks that
    lie in its box, as negative points: (N, M, 2) points and (N, M) labels, padded with SAM's
    "not a point" label -1; None when no object has one."""
    chosen: List[List[np.ndarray]] = []
    for obj in objs:
        x0, y0, x1, y1 = obj.box
        chosen.append([o.lead for o in everyone if o is not obj and o.lead is not None
                       and x0 <= o.lead[0] <= x1 and y0 <= o.lead[1] <= y1])
    most = max(len(c) for c in chosen) if chosen else 0
    if most == 0:
        return None
    points = torch.zeros(len(objs), most, 2, device=device)
    labels = torch.full((len(objs), most), -1.0, device=device)
    for row, leads in enumerate(chosen):
        if leads:
            points[row, :len(leads)] = torch.as_tensor(np.stack(leads), device=device)
            labels[row, :len(leads)] = 0.0
    return points, labels


def guard_leaks(labels: np.ndarray, carried: np.ndarray, ids: Sequence[int], ratio: float,
                margin: int = GUARD_MARGIN) -> np.ndarray:
    """``labels`` with each object whose mask has more than ``ratio`` times the area of its carried
    mask cut back to that mask widened by ``margin`` pixels (the cut pixels become background)."""
    areas = np.bincount(labels.ravel(), minlength=256)
    carried_areas = np.bincount(carried.ravel(), minlength=256)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * margin + 1, 2 * margin + 1))
    out = labels
    for k in ids:
        if carried_areas[k] and areas[k] > ratio * carried_areas[k]:
            allowed = cv2.dilate((carried == k).astype(np.uint8), kernel).astype(bool)
            out = out.copy() if out is labels else out
            out[(out == k) & ~allowed] = 0
    return out
