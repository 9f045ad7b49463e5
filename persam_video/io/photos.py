"""Photos on disk: which files a list of inputs names, and reading one upright (EXIF orientation applied)."""
from __future__ import annotations

from pathlib import Path
from typing import BinaryIO, List, Sequence, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import PersamError
from .files import PathLike

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
LIST_SUFFIXES = (".txt", ".lst")


def list_photos(inputs: Sequence[PathLike]) -> List[Path]:
    """The photos ``inputs`` name: files as given, folders searched recursively (sorted by path),
    list files (``.txt``, one path per line, relative to the list) read; repeats dropped."""
    found: List[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            photos = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in PHOTO_SUFFIXES
                            and not p.name.startswith("."))
            if not photos:
                raise PersamError(f"the folder {item} holds no photo ({', '.join(PHOTO_SUFFIXES)})")
            found.extend(photos)
        elif item.is_file() and item.suffix.lower() in LIST_SUFFIXES:
            lines = [line.strip() for line in item.read_text().splitlines()]
            found.extend(item.parent / line for line in lines if line and not line.startswith("#"))
        elif item.is_file():
            found.append(item)
        else:
            raise PersamError(f"no such photo, folder or list: {item}")
    return list(dict.fromkeys(found))


def read_photo(source: Union[PathLike, BinaryIO], name: str = "") -> np.ndarray:
    """An (H, W, 3) uint8 RGB photo from a file or an open binary stream (``name`` names it in the
    error), turned as its EXIF orientation says (as viewers show it)."""
    shown = name or str(source)
    try:
        with Image.open(source) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PersamError(f"cannot read the photo {shown}: {exc}") from None


def read_mask_colours(path: PathLike) -> np.ndarray:
    """A mask file as the public image scripts see it: its (H, W, 3) RGB colours (a palette PNG's
    indices become their colours), for the image recipe's grid rule."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PersamError(f"cannot read the mask {path}: {exc}") from None
