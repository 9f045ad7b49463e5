"""The page's photo mode for one browser session: a reference photo with one or more objects marked
by clicks, a batch of photos, their masks from an :class:`ImagePersonalizer`, corrections that become
references, undo of clicks, the run's progress, a zip.

A click on the reference (or on a photo, as a correction) marks the selected object and is decoded
by SAM as the video page's clicks are (one click: the best of SAM's three masks; more: its single
mask). A correction replaces that object's mask on that photo and adds the photo with it as one
more reference of the object, so the next Run learns from it; the other photos keep their masks
until then.
"""
from __future__ import annotations

import csv
import io
import itertools
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from ..errors import PersamError
from ..export.render import cutout_frame, matte_frame, overlay_frame
from ..io.masks import davis_palette
from ..io.photos import read_photo
from ..model.features import FeatureStore
from ..model.predictor import FramePredictor
from ..photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference, PhotoResult
from .object_prompts import colour
from .video import UiError

_KEYS = itertools.count()
MAX_PHOTOS = 200
MAX_OBJECTS = 20  # objects on one reference: enough for a page, few enough to tell their colours apart
MAX_SIDE = 2048  # photos are shown and segmented at most this large (the long side), to keep the page fast
Point = Tuple[float, float, bool]


def decode_photo(data: bytes, name: str) -> np.ndarray:
    """An uploaded photo as RGB, upright (EXIF), at most ``MAX_SIDE`` on its long side."""
    try:
        image = read_photo(io.BytesIO(data), name or "the upload")
    except PersamError as exc:
        raise UiError(str(exc)) from None  # "cannot read the photo NAME: why", "... is too large ..."
    scale = MAX_SIDE / max(image.shape[:2])
    if scale >= 1:
        return image
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.BILINEAR))


def run_options(method: str, fast: bool) -> PhotoOptions:
    """The photo options of the page's method and "fast" switch (PerSAM-F's fast fit)."""
    return PhotoOptions(method=method, fit_mode="fast" if fast else "exact")


@dataclass
class Clicked:
    """A photo with, per object id, the clicks that make that object's mask on it."""

    image: np.ndarray
    name: str
    points: Dict[int, List[Point]] = field(default_factory=dict)
    masks: Dict[int, np.ndarray] = field(default_factory=dict)
    key: int = field(default_factory=lambda: next(_KEYS))  # names its image in the predictor's store

    def labels(self) -> np.ndarray:
        """The masks as one (H, W) label map (a later id over an earlier one where they overlap)."""
        labels = np.zeros(self.image.shape[:2], np.uint8)
        for k in sorted(self.masks):
            labels[self.masks[k]] = k
        return labels


@dataclass
class PhotoEntry:
    """One photo of the batch and its latest result."""

    image: np.ndarray
    name: str
    result: Optional[PhotoResult] = None
    corrected: Optional[Clicked] = None


def shown(entry: PhotoEntry, ids: List[int]) -> Tuple[Optional[np.ndarray], List[dict]]:
    """What a photo shows: its label map (the run's, with each corrected object's clicked mask over
    it) and per object its id, found, score (1 where corrected) and whether it was corrected."""
    if entry.result is None and entry.corrected is None:
        return None, []
    labels = np.zeros(entry.image.shape[:2], np.uint8) if entry.result is None else entry.result.labels.copy()
    clicked = {} if entry.corrected is None else entry.corrected.masks
    for k, mask in clicked.items():
        labels[labels == k] = 0
        labels[mask] = k
    run = {} if entry.result is None else {o.obj_id: o for o in entry.result.objects}
    objects = []
    for k in ids:
        if k in clicked:
            objects.append({"id": k, "found": True, "score": 1.0, "corrected": True})
        elif k in run:
            objects.append({"id": k, "found": bool(run[k].found and (labels == k).any()),
                            "score": round(run[k].score, 3), "corrected": False})
    return labels, objects


class PhotoWorkspace:
    """The photo mode's state; every method takes the lock, model work also the model's lock. The
    run's progress is read without the lock (the page polls it while Run holds the lock)."""

    def __init__(self, model, model_lock: threading.Lock) -> None:
        self.model = model
        self.model_lock = model_lock
        self.predictor: Optional[FramePredictor] = None  # for clicks, made at the first one
        self.clicked_store: Optional[FeatureStore] = None  # the photo last clicked, kept encoded
        self.lock = threading.RLock()
        self.reference: Optional[Clicked] = None
        self.ids: List[int] = [1]  # the objects marked (or to be marked) on the reference
        self.photos: List[PhotoEntry] = []
        self.history: List[Tuple[Clicked, int]] = []  # (photo clicked, object): the clicks in order, for undo
        self.method = "persam"
        self.fast = False
        self.progress = ""  # what Run is doing now, e.g. "fitting object 1: 40 %"

    def set_reference(self, data: bytes, name: str) -> None:
        """A new reference photo: its clicks, the batch's masks and corrections start over."""
        image = decode_photo(data, name)
        with self.lock:
            self.reference = Clicked(image, name)
            self.history = []
            for entry in self.photos:
                entry.result, entry.corrected = None, None

    def add_object(self) -> int:
        """One more object to mark on the reference; returns its id (the next free one)."""
        with self.lock:
            if len(self.ids) >= MAX_OBJECTS:
                raise UiError(f"at most {MAX_OBJECTS} objects on one reference")
            self.ids.append(max(self.ids) + 1)
            return self.ids[-1]

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
            self.history = [(c, k) for c, k in self.history if c is self.reference]

    def click_reference(self, x: float, y: float, positive: bool, obj_id: int = 1) -> None:
        """A click on the reference photo: SAM's mask of object ``obj_id`` for all its clicks."""
        with self.lock:
            if self.reference is None:
                raise UiError("load a reference photo first")
            self._click(self.reference, self._known(obj_id), x, y, positive)

    def correct(self, index: int, x: float, y: float, positive: bool, obj_id: int = 1) -> None:
        """A click on photo ``index``: object ``obj_id``'s mask there from its clicks, and the photo
        becomes a reference of it."""
        with self.lock:
            entry = self._entry(index)
            if entry.corrected is None:
                entry.corrected = Clicked(entry.image, entry.name)
            self._click(entry.corrected, self._known(obj_id), x, y, positive)

    def undo(self) -> None:
        """Take back the last click (on the reference or a photo): that object's mask from the clicks
        before it, or no mask when it was the first."""
        with self.lock:
            if not self.history:
                raise UiError("there is no click to undo")
            target, k = self.history.pop()
            points = target.points[k][:-1]
            if points:
                target.masks[k] = self._decode(target, points)
                target.points[k] = points
            else:
                target.points.pop(k, None)
                target.masks.pop(k, None)

    def fit_progress(self, obj_id: int, fraction: float) -> None:
        """The fit's progress hook: object ``obj_id`` is ``fraction`` (0-1) fitted."""
        self.progress = f"fitting object {obj_id}: {round(100 * fraction)} %"

    def run(self, method: str, fast: bool = False) -> None:
        """Every photo's masks from the reference and the corrections (PerSAM or PerSAM-F; ``fast``:
        PerSAM-F's fast fit)."""
        with self.lock:
            if self.reference is None or not self.reference.masks:
                raise UiError("click the object on the reference photo first")
            if not self.photos:
                raise UiError("add the photos to search first")
            options = run_options(method, fast)
            references = [PhotoReference(self.reference.image, mask, k) for k, mask in self.reference.masks.items()]
            references += [PhotoReference(e.image, mask, k) for e in self.photos if e.corrected is not None
                           for k, mask in e.corrected.masks.items()]
            try:
                with self.model_lock:
                    self.progress = "learning the objects"
                    personalizer = self._personalize(references, options)
                    for i, entry in enumerate(self.photos):
                        self.progress = f"segmenting photo {i + 1} of {len(self.photos)}"
                        entry.result = personalizer.segment(entry.image)
            finally:
                self.progress = ""
            self.method, self.fast = method, fast

    def _personalize(self, references: List[PhotoReference], options: PhotoOptions) -> ImagePersonalizer:
        """The personalizer of a Run; its fit reports to :meth:`fit_progress`."""
        return ImagePersonalizer(self.model, references, options, on_progress=self.fit_progress)

    def describe(self) -> dict:
        """What the page shows: the reference and its objects, each photo's objects, undo, progress."""
        with self.lock:
            ref = self.reference
            marked = {} if ref is None else ref.masks
            return {
                "reference": None if ref is None else {"name": ref.name, "width": ref.image.shape[1],
                                                       "height": ref.image.shape[0],
                                                       "clicks": sum(map(len, ref.points.values())),
                                                       "masked": bool(ref.masks)},
                "objects": [{"id": k, "colour": colour(k), "masked": k in marked,
                             "clicks": 0 if ref is None else len(ref.points.get(k, []))} for k in self.ids],
                "method": self.method, "fast": self.fast, "can_undo": bool(self.history),
                "photos": [self._describe_photo(e) for e in self.photos]}

    def _describe_photo(self, entry: PhotoEntry) -> dict:
        objects = shown(entry, self.ids)[1]
        return {"name": entry.name, "width": entry.image.shape[1], "height": entry.image.shape[0],
                "objects": objects, "found": None if not objects else any(o["found"] for o in objects),
                "corrected": any(o["corrected"] for o in objects)}

    def preview(self, which: str, index: int) -> bytes:
        """The reference (``which`` = reference) or photo ``index`` with its objects tinted in their
        colours, as a JPEG."""
        with self.lock:
            if which == "reference":
                if self.reference is None:
                    raise UiError("no reference photo yet", status=404)
                image, labels = self.reference.image, self.reference.labels()
            else:
                entry = self._entry(index)
                image, labels = entry.image, shown(entry, self.ids)[0]
        picture = image if labels is None else overlay_frame(image, labels)
        buffer = io.BytesIO()
        Image.fromarray(picture).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    def zip(self) -> bytes:
        """Label PNGs (the objects' ids, DAVIS palette), RGBA cut-outs of the found objects and a
        summary, in one zip."""
        with self.lock:
            entries = [(e, *shown(e, self.ids)) for e in self.photos]
            entries = [(e, labels, objects) for e, labels, objects in entries if labels is not None]
            if not entries:
                raise UiError("run the batch first: there is nothing to download")
            buffer = io.BytesIO()
            summary = io.StringIO()
            writer = csv.writer(summary)
            writer.writerow(["photo", "object", "found", "score", "area", "corrected"])
            with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                for i, (entry, labels, objects) in enumerate(entries):
                    stem = f"{i:03d}_{entry.name.rsplit('.', 1)[0] or 'photo'}"
                    label_png = Image.fromarray(labels, "P")
                    label_png.putpalette(davis_palette().astype(np.uint8).ravel().tolist())
                    archive.writestr(f"masks/{stem}.png", _png(label_png))
                    for o in objects:
                        if o["found"]:
                            cutout = cutout_frame(entry.image, matte_frame(labels, [o["id"]]))
                            archive.writestr(f"cutouts/{stem}_{o['id']}.png", _png(Image.fromarray(cutout, "RGBA")))
                        writer.writerow([entry.name, o["id"], int(o["found"]), f"{o['score']:.4f}",
                                         int((labels == o["id"]).sum()), int(o["corrected"])])
                archive.writestr("summary.csv", summary.getvalue())
            return buffer.getvalue()

    def _entry(self, index: int) -> PhotoEntry:
        if not 0 <= index < len(self.photos):
            raise UiError(f"there is no photo {index}", status=404)
        return self.photos[index]

    def _known(self, obj_id: int) -> int:
        if obj_id not in self.ids:
            raise UiError(f"there is no object {obj_id}: add it first", status=404)
        return obj_id

    def _click(self, target: Clicked, obj_id: int, x: float, y: float, positive: bool) -> None:
        h, w = target.image.shape[:2]
        if not (0 <= x < w and 0 <= y < h):
            raise UiError(f"the click ({x:.0f}, {y:.0f}) is outside the photo ({w}x{h})")
        points = target.points.get(obj_id, []) + [(x, y, positive)]
        mask = self._decode(target, points)
        if not mask.any():
            raise UiError("SAM finds nothing at that click: click inside the object")
        target.points[obj_id], target.masks[obj_id] = points, mask
        self.history.append((target, obj_id))

    def _decode(self, target: Clicked, points: List[Point]) -> np.ndarray:
        """SAM's mask of ``points`` on ``target``'s photo (kept encoded: more clicks on it cost no
        encoder pass)."""
        with self.model_lock:
            self.predictor = self.predictor or FramePredictor(self.model)
            self.clicked_store = self.clicked_store or self.predictor.store(capacity=1)
            self.predictor.use(self.clicked_store.get(target.key, target.image))
            return self.predictor.click_mask(np.array([p[:2] for p in points], np.float32),
                                             np.array([int(p[2]) for p in points]))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
