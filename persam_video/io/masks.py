"""Label maps on disk: the DAVIS palette, reading and writing label PNGs, seed masks and object ids."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Optional, Sequence

import numpy as np
from PIL import Image

from ..errors import PersamError, check_size, choose
from .files import PathLike, atomic_write

VOID_ID = 255


def davis_palette() -> np.ndarray:
    """The 256-colour DAVIS palette (the PASCAL VOC bit-interleaving scheme), shape (256, 3)."""
    ids = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= (((ids >> channel) >> (3 * bit)) & 1).astype(np.uint8) << (7 - bit)
    return palette


DAVIS_PALETTE = davis_palette()


def write_label_png(path: PathLike, labels: np.ndarray) -> None:
    """Write an (H, W) uint8 label map as an indexed PNG with the DAVIS palette, atomically."""
    if labels.dtype != np.uint8:
        labels = labels.astype(np.uint8)
    image = Image.fromarray(labels, mode="P")
    image.putpalette(DAVIS_PALETTE.ravel().tolist())
    atomic_write(path, lambda tmp: image.save(tmp, format="PNG"))


def read_label_png(path: PathLike) -> np.ndarray:
    """Read a label map: an indexed PNG gives its indices, an 8-bit grey PNG its values.

    A binary mask saved as 0/255 is taken as one object with id 1 (255 would
    otherwise read as DAVIS void). RGB PNGs are refused: their colours are not ids.
    """
    path = Path(path)
    if not path.is_file():
        raise PersamError(f"mask file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            if mode == "P":
                labels = np.array(image, dtype=np.uint8)
            elif mode in ("L", "1"):
                labels = np.array(image.convert("L"), dtype=np.uint8)
                values = np.unique(labels)
                if set(values.tolist()) <= {0, 255} and 255 in values:
                    labels = (labels == 255).astype(np.uint8)
            elif mode in ("I;16", "I"):
                labels = np.array(image)
                if labels.max() > 255:
                    raise PersamError(f"{path}: object ids above 255 are not supported")
                labels = labels.astype(np.uint8)
            else:
                raise PersamError(
                    f"{path}: mask must be an indexed (palette) or 8-bit grey PNG, not mode {mode}")
    except PersamError:
        raise
    except Exception as exc:  # PIL raises many types for corrupt files
        raise PersamError(f"cannot read mask {path}: {exc}") from None
    return labels


def object_ids(labels: np.ndarray) -> List[int]:
    """The object ids of a label map: its non-zero values except void (255), ascending."""
    present = np.flatnonzero(np.bincount(labels.ravel(), minlength=256))
    return [int(i) for i in present if i not in (0, VOID_ID)]


def select_objects(labels: np.ndarray, wanted: Optional[Sequence[int]] = None,
                   source: str = "mask") -> List[int]:
    """Pick the objects to track; raise a clear error for an empty mask or an unknown id."""
    present = object_ids(labels)
    if not present:
        raise PersamError(f"{source} has no object: every pixel is background (0) or void (255)")
    return choose(present, wanted, lambda missing: f"object id(s) {','.join(map(str, missing))} not in {source}; "
                                                   f"it holds {','.join(map(str, present))}")


def read_seed(path: PathLike, frame_size: tuple, wanted: Optional[Iterable[int]] = None):
    """Read a seed mask and check it against the frames' (height, width).

    Returns ``(labels, ids)`` where ``labels`` keeps only the chosen objects.
    """
    labels = read_label_png(path)
    check_size(f"mask {path}", labels.shape, frame_size, "the frames are")
    ids = select_objects(labels, None if wanted is None else list(wanted), source=str(path))
    kept = np.where(np.isin(labels, ids), labels, 0).astype(np.uint8)
    return kept, ids
