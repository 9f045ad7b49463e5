"""Background effects behind the chosen objects: blur it, replace it by a picture or video, or a solid colour.

Every effect mixes the frame with a new background by a soft matte (:func:`.holes.feather` of
the objects' mask), so the object's edge blends instead of showing a hard cut.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional, Tuple

import cv2
import numpy as np
from PIL import Image

from ..errors import PersamError, error_line
from ..io.files import PathLike
from ..io.frames import open_frames
from .holes import mix

#: ``--strength`` of the blur when none is given: the Gaussian's sigma in pixels at 1080 lines
DEFAULT_STRENGTH = 12.0
#: the colour behind the object in a ``keep`` export
DEFAULT_COLOUR = (0, 255, 0)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def blur_background(image: np.ndarray, alpha: np.ndarray, strength: float) -> np.ndarray:
    """The frame with everything outside ``alpha`` (the object, in [0, 1]) blurred by a Gaussian.

    ``strength`` is the sigma at 1080 lines, scaled with the frame's height so that a clip looks the
    same at every size.
    """
    sigma = max(0.1, strength * image.shape[0] / 1080.0)
    blurred = cv2.GaussianBlur(image, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)
    return mix(image, blurred, alpha)


def over_background(image: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The object (``alpha`` in [0, 1]) of ``image`` over ``background`` ((H, W, 3) uint8 of the frame's size)."""
    return mix(image, background, alpha)


def solid(size: Tuple[int, int], colour: Tuple[int, int, int] = DEFAULT_COLOUR) -> np.ndarray:
    """An (H, W, 3) uint8 image of one colour."""
    return np.broadcast_to(np.asarray(colour, dtype=np.uint8), (*size, 3)).copy()


def _fit(image: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """``image`` scaled and centre-cropped to fill ``size`` (height, width) without distortion."""
    h, w = size
    scale = max(h / image.shape[0], w / image.shape[1])
    nh, nw = max(h, round(image.shape[0] * scale)), max(w, round(image.shape[1] * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top, left = (nh - h) // 2, (nw - w) // 2
    return np.ascontiguousarray(resized[top:top + h, left:left + w])


class BackgroundSource:
    """A replacement background, a picture or a video, fitted to the frames' size; a video loops."""

    def __init__(self, path: PathLike, size: Tuple[int, int]) -> None:
        self.path = Path(path)
        self.size = tuple(size)
        self._still: Optional[np.ndarray] = None
        if not self.path.exists():
            raise PersamError(f"background not found: {self.path}")
        if self.path.is_file() and self.path.suffix.lower() in IMAGE_SUFFIXES:
            try:
                with Image.open(self.path) as picture:
                    self._still = _fit(np.asarray(picture.convert("RGB")), self.size)
            except Exception as exc:
                raise PersamError(f"cannot read the background {self.path}: {error_line(exc)}") from None
        else:
            try:
                self._video = open_frames(self.path)
                first = self._video.read(0).image
            except PersamError as exc:
                raise PersamError(f"cannot read the background {self.path}: {exc}") from None
            except Exception as exc:
                raise PersamError(f"cannot read the background {self.path}: {error_line(exc)}") from None
            if len(self._video) == 1:
                self._still = _fit(first, self.size)

    def frames(self) -> Iterator[np.ndarray]:
        """The background for each frame of the clip, endlessly (a video starts over at its end)."""
        while True:
            if self._still is not None:
                yield self._still
                continue
            for frame in self._video.frames():
                yield _fit(frame.image, self.size)
