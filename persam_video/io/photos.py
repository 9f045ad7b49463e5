"""Photos on disk: which files a list of inputs names (and which it skips, and why), and reading one
upright (EXIF orientation applied), HEIC/HEIF through the ``pillow-heif`` plugin, bounded in size."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, List, Sequence, Tuple, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import PersamError, error_line
from .files import PathLike

HEIF_SUFFIXES = (".heic", ".heif")
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".avif") + HEIF_SUFFIXES
LIST_SUFFIXES = (".txt", ".lst")
#: the ``pip install persam-video[...]`` extra that reads HEIC/HEIF photos
HEIF_EXTRA = "heif"
#: the largest photo read by default (pixels): 48 MP phones and 100 MP cameras pass, a 200 MP one is refused
MAX_PIXELS = 120_000_000
_PILLOW_LIMIT = threading.Lock()
#: the smallest side a photo may have: SAM needs a few pixels to find anything
MIN_SIDE = 8


@dataclass
class PhotoList:
    """The photos a list of inputs names, and the files of its folders that are not photos, each
    with the reason it was skipped (a summary lists them, so that nothing is dropped silently)."""

    photos: List[Path] = field(default_factory=list)
    skipped: List[Tuple[Path, str]] = field(default_factory=list)


def _skip_reason(path: Path) -> str:
    """Why a folder's file is not taken as a photo."""
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix:
        return f"not a photo ({path.suffix.lower()}; photos are {' '.join(PHOTO_SUFFIXES)})"
    return "not a photo (no file extension)"


def list_photos(inputs: Sequence[PathLike]) -> PhotoList:
    """The photos ``inputs`` name: files as given, folders searched recursively (sorted by path),
    list files (``.txt``, one path per line, relative to the list) read; repeats dropped. A folder's
    other files are returned as skipped, with the reason."""
    found = PhotoList()
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file())
            photos = [p for p in files if p.suffix.lower() in PHOTO_SUFFIXES and not p.name.startswith(".")]
            if not photos:
                raise PersamError(f"the folder {item} holds no photo ({', '.join(PHOTO_SUFFIXES)})")
            found.photos.extend(photos)
            taken = set(photos)
            found.skipped.extend((p, _skip_reason(p)) for p in files if p not in taken)
        elif item.is_file() and item.suffix.lower() in LIST_SUFFIXES:
            lines = [line.strip() for line in item.read_text().splitlines()]
            found.photos.extend(item.parent / line for line in lines if line and not line.startswith("#"))
        elif item.is_file():
            found.photos.append(item)
        else:
            raise PersamError(f"no such photo, folder or list: {item}")
    found.photos = list(dict.fromkeys(found.photos))
    return found


def _heif_plugin(shown: str) -> None:
    """Register pillow-heif's HEIC/HEIF opener with Pillow when it is installed; when it is not, a
    one-line error naming the extra for a photo whose name says HEIC/HEIF."""
    try:
        import pillow_heif
    except ImportError:
        if Path(shown).suffix.lower() in HEIF_SUFFIXES:
            raise PersamError(f"cannot read the photo {shown}: HEIC/HEIF photos need pillow-heif: "
                              f"pip install 'persam-video[{HEIF_EXTRA}]'") from None
        return
    pillow_heif.register_heif_opener()


def _check_pixels(size: Tuple[int, int], shown: str, max_pixels: int) -> None:
    """Refuse a photo by its header's size, before its pixels are decoded."""
    width, height = size
    if width * height > max_pixels:
        raise PersamError(f"the photo {shown} is too large: {width * height} pixels ({width}x{height}), the limit is "
                          f"{max_pixels}, set by --max-pixels")
    if min(width, height) < MIN_SIDE:
        raise PersamError(f"the photo {shown} is too small: {width}x{height} pixels, each side needs at least "
                          f"{MIN_SIDE}")


def read_photo(source: Union[PathLike, BinaryIO], name: str = "", max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An (H, W, 3) uint8 RGB photo from a file or an open binary stream (``name`` names it in the
    error), turned as its EXIF orientation says (as viewers show it). A photo of more than
    ``max_pixels`` is refused from its header, before decoding."""
    shown = name or str(source)
    _heif_plugin(shown)
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        raise PersamError(f"cannot read the photo {shown}: no such file")
    try:
        with _opened(source) as image:
            _check_pixels(image.size, shown, max_pixels)
            image.load()
            upright = ImageOps.exif_transpose(image)
            return np.asarray(upright.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise PersamError(f"cannot read the photo {shown}: {error_line(exc)}") from None


def _opened(source: Union[PathLike, BinaryIO]) -> Image.Image:
    """``Image.open`` with Pillow's own pixel limit lifted for the call (read_photo's ``max_pixels``,
    checked from the header, replaces it); the lock keeps threads from restoring each other's."""
    with _PILLOW_LIMIT:
        previous = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(source)
        finally:
            Image.MAX_IMAGE_PIXELS = previous


def read_mask_colours(path: PathLike) -> np.ndarray:
    """A mask file as the public image scripts see it: its (H, W, 3) RGB colours (a palette PNG's
    indices become their colours), for the image recipe's grid rule."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise PersamError(f"cannot read the mask {path}: {error_line(exc)}") from None
