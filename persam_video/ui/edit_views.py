"""The page's editing views of one frame: the objects removed, or the background blurred behind them.

Both are made by the exporters' own functions on the page's previews, so a view shows what the
"cleaned clip" download holds, at the preview's size. The removal view runs the removal over the
:data:`VIEW_REACH` frames on each side of the frame (the download looks farther).
"""
from __future__ import annotations

from typing import Callable, Optional

import cv2
import numpy as np

from ..export.background import DEFAULT_STRENGTH, blur_background
from ..export.holes import feather, grow
from ..export.removal import Remover

#: frames on each side of the shown frame the removal view looks at
VIEW_REACH = 4
#: the removal view grows the masks like ``export --kind remove`` does by default
VIEW_DILATE = 4
VIEW_FEATHER = 2.0


def fit_labels(labels: Optional[np.ndarray], shape) -> np.ndarray:
    """A label map at the preview's size (nearest), all background when there is none."""
    if labels is None:
        return np.zeros(shape[:2], np.uint8)
    if labels.shape != tuple(shape[:2]):
        return cv2.resize(labels, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return labels


def blurred_view(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The preview with everything but the objects blurred, as ``export --kind blur`` does by default."""
    alpha = feather((labels != 0) & (labels != 255), VIEW_FEATHER)
    return blur_background(image, alpha, DEFAULT_STRENGTH)


def removed_view(count: int, index: int, preview: Callable[[int], np.ndarray],
                 labels_of: Callable[[int], Optional[np.ndarray]]) -> np.ndarray:
    """Frame ``index`` of ``count`` with every object removed, from its neighbours' previews and label maps.

    Only neighbours with a label map count (a frame not tracked yet would show the object as
    background); with none, the hole is inpainted from the frame alone.
    """
    maps = {index: labels_of(index)}
    for step in (-1, 1):
        i = index + step
        while 0 <= i < count and abs(i - index) <= VIEW_REACH and (found := labels_of(i)) is not None:
            maps[i] = found
            i += step
    remover = Remover(preview(index).shape[:2], reach=VIEW_REACH)
    results = []
    first = min(maps)
    for i in sorted(maps):
        image = preview(i)
        labels = fit_labels(maps[i], image.shape)
        results += remover.push(image, grow((labels != 0) & (labels != 255), VIEW_DILATE))
    results += remover.finish()
    return results[index - first]
