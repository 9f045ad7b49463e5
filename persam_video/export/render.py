"""Frame renderers for the exports: overlay, matte and cut-out of one frame and its label map.

Vectorised numpy/OpenCV, usable on their own: ``image`` is (H, W, 3) uint8 RGB, ``labels``
(H, W) uint8 ids; ``objects`` chooses ids (default: every id except 0 and void 255).
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import cv2
import numpy as np

from ..errors import check_size
from ..io.masks import DAVIS_PALETTE, VOID_ID

OVERLAY_ALPHA = 0.5
CONTOUR_WIDTH = 2


def chosen(labels: np.ndarray, objects: Optional[Sequence[int]]) -> np.ndarray:
    """Boolean (H, W): the pixels of the chosen ids (all ids except 0 and void 255 when None)."""
    if objects is None:
        return (labels != 0) & (labels != VOID_ID)
    lut = np.zeros(256, dtype=bool)
    lut[np.asarray(list(objects), dtype=np.intp)] = True
    return lut[labels]


def contour_mask(labels: np.ndarray, width: int = CONTOUR_WIDTH) -> np.ndarray:
    """Boolean (H, W): object pixels within ``width`` pixels (chessboard distance) of another label.

    Each object gets an inner band of ``width`` pixels along its outline, also where it
    touches another object; the image border does not count as an outline.
    """
    if width <= 0:
        return np.zeros(labels.shape, dtype=bool)
    kernel = np.ones((2 * width + 1, 2 * width + 1), dtype=np.uint8)
    band = cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)
    return band & (labels != 0)


def overlay_frame(image: np.ndarray, labels: np.ndarray, objects: Optional[Sequence[int]] = None,
                  alpha: float = OVERLAY_ALPHA, contour: int = CONTOUR_WIDTH) -> np.ndarray:
    """The frame with each chosen object tinted in its DAVIS colour and outlined.

    ``image`` is (H, W, 3) uint8 RGB, ``labels`` (H, W) uint8 ids. Inside an object a
    pixel becomes ``rint((1 - alpha) * pixel + alpha * colour)``; its ``contour``-pixel
    inner outline is the plain colour; every other pixel (background, void, objects not
    chosen) is the frame's own. Returns a new (H, W, 3) uint8 array.
    """
    check_size("mask", labels.shape, image.shape, "the frame is")
    shown = np.where(chosen(labels, objects), labels, 0).astype(np.uint8)
    inside = shown != 0
    colours = DAVIS_PALETTE[shown]
    out = image.copy()
    blend = (1.0 - alpha) * image[inside].astype(np.float32) + alpha * colours[inside].astype(np.float32)
    out[inside] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    edge = contour_mask(shown, contour)
    out[edge] = colours[edge]
    return out


def matte_frame(labels: np.ndarray, objects: Optional[Sequence[int]] = None, feather: float = 0.0) -> np.ndarray:
    """(H, W) uint8 matte: 255 on the chosen objects, 0 elsewhere.

    ``feather`` > 0 softens the edges with a Gaussian blur of that radius in pixels
    (kernel ``2 * ceil(feather) + 1`` wide, sigma ``feather / 2``), rounded back to uint8.
    """
    matte = chosen(labels, objects).astype(np.uint8) * np.uint8(255)
    if feather > 0:
        size = 2 * int(math.ceil(feather)) + 1
        soft = cv2.GaussianBlur(matte.astype(np.float32), (size, size), sigmaX=feather / 2.0,
                                borderType=cv2.BORDER_REPLICATE)
        matte = np.clip(np.rint(soft), 0, 255).astype(np.uint8)
    return matte


def cutout_frame(image: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA: the frame's RGB with the matte as alpha."""
    check_size("mask", matte.shape, image.shape, "the frame is")
    return np.dstack([image, matte])
