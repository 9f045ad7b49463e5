"""SAM's resize of an image to its input size, longest side first, and of points and boxes with it
(``segment_anything.utils.transforms.ResizeLongestSide``'s results, without torchvision)."""
from __future__ import annotations

from typing import Tuple

import numpy as np
import torch
from PIL import Image

from ..errors import PersamError


class LongestSide:
    """Scale images, points and boxes so that an image's longest side becomes ``target_length``
    (SAM's input size), the other side in proportion, rounded to the nearest pixel."""

    def __init__(self, target_length: int) -> None:
        self.target_length = int(target_length)

    @staticmethod
    def get_preprocess_shape(old_h: int, old_w: int, long_side_length: int) -> Tuple[int, int]:
        """(height, width) of an ``old_h`` x ``old_w`` image scaled to ``long_side_length``."""
        scale = long_side_length * 1.0 / max(old_h, old_w)
        return int(old_h * scale + 0.5), int(old_w * scale + 0.5)

    def _scales(self, original_size: Tuple[int, ...]) -> Tuple[float, float]:
        old_h, old_w = original_size
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        return new_w / old_w, new_h / old_h

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Resize an (H, W, 3) image (uint8; floats in [0, 1] are scaled to uint8 first) with
        Pillow's bilinear filter. Always a new, writable, C-ordered array."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise PersamError(f"expected an (H, W, 3) RGB image, got an array of shape {tuple(image.shape)}")
        if np.issubdtype(image.dtype, np.floating):
            image = (image * 255).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise PersamError(f"expected an RGB image of uint8 pixels, got {image.dtype}")
        height, width = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        if (height, width) == image.shape[:2]:
            return np.array(image, order="C")
        return np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))

    def apply_coords(self, coords: np.ndarray, original_size: Tuple[int, ...]) -> np.ndarray:
        """(..., 2) (x, y) pixels of an ``original_size`` (H, W) image -> the resized image's (float64 copy)."""
        sx, sy = self._scales(original_size)
        out = np.array(coords, dtype=float)
        out[..., 0] = out[..., 0] * sx
        out[..., 1] = out[..., 1] * sy
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: Tuple[int, ...]) -> np.ndarray:
        """(B, 4) (x0, y0, x1, y1) boxes -> the resized image's."""
        return self.apply_coords(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_coords_torch(self, coords: torch.Tensor, original_size: Tuple[int, ...]) -> torch.Tensor:
        """As :meth:`apply_coords` on a tensor (a float32 copy)."""
        sx, sy = self._scales(original_size)
        out = coords.detach().clone().to(torch.float)
        out[..., 0] = out[..., 0] * sx
        out[..., 1] = out[..., 1] * sy
        return out

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: Tuple[int, ...]) -> torch.Tensor:
        """As :meth:`apply_boxes` on a tensor."""
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)
