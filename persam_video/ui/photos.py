"""The page's photo mode for one browser session: a reference photo and its clicks, a batch of
photos, their masks from an :class:`ImagePersonalizer`, corrections that become references, a zip.

A click on the reference (or on a photo, as a correction) is decoded by SAM as the video page's
clicks are (one click: the best of SAM's three masks; more: its single mask). A correction
replaces that photo's mask and adds the photo with it as one more reference of the object, so the
next Run learns from it; the other photos keep their masks until then.
"""
from __future__ import annotations

import csv
import io
import itertools
import threading
import zipfile
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np
from PIL import Image

from ..errors import PersamError
from ..export.render import cutout_frame, matte_frame, overlay_frame
from ..io.photos import read_photo
from ..model.features import FeatureStore
from ..model.predictor import FramePredictor
from ..photos.personalizer import ImagePersonalizer, ObjectOnPhoto, PhotoOptions, PhotoReference
from .video import UiError

_KEYS = itertools.count()
MAX_PHOTOS = 200
MAX_SIDE = 2048  # photos are shown and segmented at most this large (the long side), to keep the page fast


def decode_photo(data: bytes, name: str) -> np.ndarray:
    """An uploaded photo as RGB, upright (EXIF), at most ``MAX_SIDE`` on its long side."""
    try:
        image = read_photo(io.BytesIO(data), name)
    except PersamError:
        raise UiError(f"{name or 'the upload'} is not a photo this page can read (JPEG, PNG, WebP, ...)") from None
    scale = MAX_SIDE / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


@dataclass
class Clicked:
    """A photo with the clicks that make an object's mask on it."""

    image: np.ndarray
    name: str
    points: List[Tuple[float, float, bool]] = field(default_factory=list)
    mask: Optional[np.ndarray] = None
    key: int = field(default_factory=lambda: next(_KEYS))  # names its image in the predictor's store


@dataclass
class PhotoEntry:
    """One photo of the batch and its latest result."""

    image: np.ndarray
    name: str
    result: Optional[ObjectOnPhoto] = None
    corrected: Optional[Clicked] = None


class PhotoWorkspace:
    """The photo mode's state; every method takes the lock, model work also the model's lock."""

    def __init__(self, model, model_lock: threading.Lock) -> None:
        self.model = model
        self.model_lock = model_lock
        self.predictor: Optional[FramePredictor] = None  # for clicks, made at the first one
        self.clicked_store: Optional[FeatureStore] = None  # the photo last clicked, kept encoded
        self.lock = threading.RLock()
        self.reference: Optional[Clicked] = None
        self.photos: List[PhotoEntry] = []
        self.method = "persam"

    def set_reference(self, data: bytes, name: str) -> None:
        """A new reference photo: its clicks, the batch's masks and corrections start over."""
        image = decode_photo(data, name)
        with self.lock:
            self.reference = Clicked(image, name)
            for entry in self.photos:
                entry.result, entry.corrected = None, None

    def add_photo(self, data: bytes, name: str) -> None:
        """One more photo for the batch."""
        image = decode_photo(data, name)
        with self.lock:
            if len(self.photos) >= MAX_PHOTOS:
                raise UiError(f"at most {MAX_PHOTOS} photos at once")
            self.photos.append(PhotoEntry(image, name))

    def clear_photos(self) -> None:
        with self.lock:
            self.photos = []

    def click_reference(self, x: float, y: float, positive: bool) -> None:
        """A click on the reference photo: SAM's mask for all its clicks."""
        with self.lock:
            if self.reference is None:
                raise UiError("load a reference photo first")
            self._click(self.reference, x, y, positive)

    def correct(self, index: int, x: float, y: float, positive: bool) -> None:
        """A click on photo ``index``: its mask from its clicks, and the photo becomes a reference."""
        with self.lock:
            entry = self._entry(index)
            if entry.corrected is None:
                entry.corrected = Clicked(entry.image, entry.name)
            self._click(entry.corrected, x, y, positive)
            entry.result = corrected_result(entry.corrected)

    def run(self, method: str) -> None:
        """Every photo's mask from the reference and the corrections (PerSAM or PerSAM-F)."""
        with self.lock:
            if self.reference is None or self.reference.mask is None:
                raise UiError("click the object on the reference photo first")
            if not self.photos:
                raise UiError("add the photos to search first")
            options = PhotoOptions(method=method)
            references = [PhotoReference(self.reference.image, self.reference.mask)]
            references += [PhotoReference(e.image, e.corrected.mask) for e in self.photos
                           if e.corrected is not None and e.corrected.mask is not None]
            with self.model_lock:
                personalizer = ImagePersonalizer(self.model, references, options)
                for entry in self.photos:
                    if entry.corrected is not None and entry.corrected.mask is not None:
                        entry.result = corrected_result(entry.corrected)
                    else:
                        entry.result = personalizer.segment(entry.image).objects[0]
            self.method = method

    def describe(self) -> dict:
        """What the page shows: the reference, and each photo's name, score and state."""
        with self.lock:
            ref = self.reference
            return {
                "reference": None if ref is None else {"name": ref.name, "width": ref.image.shape[1],
                                                       "height": ref.image.shape[0], "clicks": len(ref.points),
                                                       "masked": ref.mask is not None},
                "method": self.method,
                "photos": [{"name": e.name, "width": e.image.shape[1], "height": e.image.shape[0],
                            "found": None if e.result is None else e.result.found,
                            "score": None if e.result is None else round(e.result.score, 3),
                            "corrected": e.corrected is not None and e.corrected.mask is not None}
                           for e in self.photos]}

    def preview(self, which: str, index: int) -> bytes:
        """The reference (``which`` = reference) or photo ``index`` with its mask tinted, as a JPEG."""
        with self.lock:
            if which == "reference":
                if self.reference is None:
                    raise UiError("no reference photo yet", status=404)
                image, mask = self.reference.image, self.reference.mask
            else:
                entry = self._entry(index)
                image, mask = entry.image, None if entry.result is None else entry.result.mask
        shown = image if mask is None else overlay_frame(image, mask.astype(np.uint8))
        buffer = io.BytesIO()
        Image.fromarray(shown).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    def zip(self) -> bytes:
        """Label PNGs, RGBA cut-outs of the found objects and a summary, in one zip."""
        with self.lock:
            entries = [e for e in self.photos if e.result is not None]
            if not entries:
                raise UiError("run the batch first: there is nothing to download")
            buffer = io.BytesIO()
            summary = io.StringIO()
            writer = csv.writer(summary)
            writer.writerow(["photo", "found", "score", "area", "corrected"])
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for i, entry in enumerate(entries):
                    stem = f"{i:03d}_{entry.name.rsplit('.', 1)[0] or 'photo'}"
                    labels = entry.result.mask.astype(np.uint8)
                    archive.writestr(f"masks/{stem}.png", _png(Image.fromarray(labels * 255)))
                    if entry.result.found:
                        cutout = cutout_frame(entry.image, matte_frame(labels, [1]))
                        archive.writestr(f"cutouts/{stem}.png", _png(Image.fromarray(cutout, "RGBA")))
                    writer.writerow([entry.name, int(entry.result.found), f"{entry.result.score:.4f}",
                                     int(entry.result.mask.sum()), int(entry.corrected is not None)])
                archive.writestr("summary.csv", summary.getvalue())
            return buffer.getvalue()

    def _entry(self, index: int) -> PhotoEntry:
        if not 0 <= index < len(self.photos):
            raise UiError(f"there is no photo {index}", status=404)
        return self.photos[index]

    def _click(self, target: Clicked, x: float, y: float, positive: bool) -> None:
        h, w = target.image.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            raise UiError(f"the click ({x:.0f}, {y:.0f}) is outside the photo ({w}x{h})")
        points = target.points + [(x, y, positive)]
        with self.model_lock:  # the photo last clicked stays encoded: more clicks on it cost no encoder pass
            self.predictor = self.predictor or FramePredictor(self.model)
            self.clicked_store = self.clicked_store or self.predictor.store(capacity=1)
            self.predictor.use(self.clicked_store.get(target.key, target.image))
            mask = self.predictor.click_mask(np.array([p[:2] for p in points], np.float32),
                                             np.array([int(p[2]) for p in points]))
        if not mask.any():
            raise UiError("SAM finds nothing at that click: click inside the object")
        target.points, target.mask = points, mask


def corrected_result(clicked: Clicked) -> ObjectOnPhoto:
    """A photo's result given by the user's clicks: their mask, score 1."""
    return ObjectOnPhoto(1, clicked.mask, 1.0, 1.0, True)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
