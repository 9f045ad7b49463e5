"""Label maps on disk: the DAVIS palette, reading seed masks, atomic PNG writing."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Optional, Sequence, Union

import numpy as np
from PIL import Image

from .errors import PersamError, check_size, choose

VOID_ID = 255
PathLike = Union[str, os.PathLike]


def davis_palette() -> np.ndarray:
    """The 256-colour DAVIS palette (the PASCAL VOC bit-interleaving scheme), shape (256, 3)."""
    ids = np.arange(256)
    palette = np.zeros((256, 3), dtype=np.uint8)
    for bit in range(8):
        for channel in range(3):
            palette[:, channel] |= (((ids >> channel) >> (3 * bit)) & 1).astype(np.uint8) << (7 - bit)
    return palette


DAVIS_PALETTE = davis_palette()


def process_umask() -> int:
    """The process's umask, read without changing it where the kernel reports it (Linux), so that
    threads writing at the same time never see a wrong one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split(":", 1)[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_beside(path: PathLike) -> str:
    """A new empty file next to ``path`` (``.<stem>.*.tmp<suffix>``) with the mode ``open()`` would
    give ``path`` under the umask: mkstemp's private 0600 would survive the rename otherwise."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix="." + path.stem + ".", suffix=".tmp" + path.suffix, dir=str(path.parent))
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
    finally:
        os.close(fd)
    return tmp


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``.

    The temporary file lives in the destination folder, so the rename is atomic:
    a reader sees either the old file or the complete new one, never half of it.
    """
    tmp = temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def leftover_temporaries(folder: PathLike) -> List[Path]:
    """The temporary files of :func:`atomic_write` in ``folder`` (``.<name>.*.tmp*``), which only a
    write that was killed part-way leaves behind; empty when ``folder`` does not exist."""
    folder = Path(folder)
    return sorted(folder.glob(".*.tmp*")) if folder.is_dir() else []


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
