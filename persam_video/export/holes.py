"""Small helpers for holes in frames: grow a mask, fill a field from its border, blend at a seam.

Used by the object removal (:mod:`.removal`) and by the background effects (:mod:`.background`).
"""
from __future__ import annotations

import math

import cv2
import numpy as np


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """Boolean ``mask`` grown by ``pixels`` (a disc), because masks are never exact at the edge."""
    if pixels <= 0:
        return mask.astype(bool)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel) > 0


def fill_from_border(field: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``field`` (H, W, C) float32 with the ``hole`` pixels replaced by a smooth fill from the hole's border.

    Push-pull: the known values are averaged down a pyramid until every cell has some, then the
    coarse averages are carried back up into the hole. Cheap (a few pyramid steps) and smooth,
    which is what a flow field inside an object's hole needs.
    """
    if not hole.any():
        return field
    if hole.all():
        return np.zeros_like(field)
    weight = (~hole).astype(np.float32)
    values = [field * weight[..., None]]
    weights = [weight]
    while weights[-1].min() == 0 and min(weights[-1].shape) > 1:
        values.append(cv2.pyrDown(values[-1]).reshape(*cv2.pyrDown(weights[-1]).shape, -1))
        weights.append(cv2.pyrDown(weights[-1]))
    filled = values[-1] / np.maximum(weights[-1], 1e-6)[..., None]
    for value, w in zip(reversed(values[:-1]), reversed(weights[:-1])):
        up = cv2.pyrUp(filled, dstsize=(w.shape[1], w.shape[0])).reshape(*w.shape, -1)
        known = np.minimum(w * 4.0, 1.0)[..., None]  # trust a level where it saw enough known pixels
        filled = known * (value / np.maximum(w, 1e-6)[..., None]) + (1.0 - known) * up
    out = field.copy()
    out[hole] = filled[hole]
    return out


def feather(mask: np.ndarray, radius: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: ``mask`` with edges softened by a Gaussian of ``radius`` pixels (hard when 0)."""
    soft = mask.astype(np.float32)
    if radius > 0:
        size = 2 * int(math.ceil(radius)) + 1
        soft = cv2.GaussianBlur(soft, (size, size), sigmaX=radius / 2.0, borderType=cv2.BORDER_REPLICATE)
    return soft


def seam_alpha(hole: np.ndarray, band: int) -> np.ndarray:
    """(H, W) float32: 1 inside ``hole``, falling to 0 over ``band`` pixels outside it (the seam blend)."""
    if band <= 0:
        return hole.astype(np.float32)
    outside = cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3)
    return np.clip(1.0 - outside / float(band + 1), 0.0, 1.0).astype(np.float32)


def mix(a: np.ndarray, b: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 ``alpha * a + (1 - alpha) * b`` of two (H, W, 3) uint8 images, ``alpha`` (H, W) in [0, 1]."""
    out = b.astype(np.float32) + alpha[..., None] * (a.astype(np.float32) - b.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
