"""Segment every PerSeg object from its reference photo (behind ``persam-video perseg run``).

Each object's photos, the reference's included (``eval_miou.py`` pairs results and annotations by
position), are written to ``OUT/<object>/<name>.png``; ``OUT/<object>/.done`` marks a finished
object, and a rerun with the same settings skips it.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..batch.markers import clear_partial, read_marker, write_marker
from ..errors import PersamError
from ..io.files import PathLike, ensure_writable_dir
from ..io.masks import read_label_png, write_label_png
from ..io.photos import MAX_PIXELS, list_photos, read_photo
from ..model.loading import ModelSpec
from ..photos.collection import photo_references
from ..photos.fit_report import FitBar, fit_summary
from ..photos.personalizer import ImagePersonalizer, PhotoOptions
from .layout import PersegLayout


def settings_record(options: PhotoOptions, model: ModelSpec) -> dict:
    """What decides an object's masks: the photo options, the model type and its weights."""
    return {**asdict(options), "model_type": model.model_type, "weights_sha256": model.weights_sha256()}


def run_perseg(root: PathLike, out: PathLike, options: PhotoOptions, model: ModelSpec, loaded: torch.nn.Module,
               ref_idx: str = "00", objects: Optional[Sequence[str]] = None, progress: bool = True,
               log: Callable[[str], None] = lambda text: None, max_pixels: int = MAX_PIXELS,
               coco: Optional[PathLike] = None) -> List[str]:
    """Segment the chosen objects (default: all) into ``out``; returns the objects segmented now.
    ``coco`` also writes every chosen object's masks as one COCO instances file (a category each)."""
    layout = PersegLayout(root)
    names = layout.objects(objects)
    settings = settings_record(options, model)
    out = ensure_writable_dir(out)
    done: List[str] = []
    for name in tqdm(names, unit="object", desc="objects", disable=not progress, dynamic_ncols=True):
        folder = out / name
        if read_marker(folder) == settings:
            log(f"{name}: done already, skipped")
            continue
        photos = list_photos([layout.root / "Images" / name]).photos
        reference = [p for p in photos if p.stem == ref_idx]
        if not reference:
            raise PersamError(f"object {name} has no reference photo {ref_idx}.* in {layout.root / 'Images' / name}")
        mask = layout.root / "Annotations" / name / f"{ref_idx}.png"
        if not mask.is_file():
            raise PersamError(f"object {name} has no reference mask {mask}")
        bar = FitBar(options, enabled=progress)
        try:
            personalizer = ImagePersonalizer(loaded, photo_references(reference[0], mask), options, bar)
        finally:
            bar.close()
        for line in fit_summary(personalizer):
            log(f"{name}: {line}")
        ensure_writable_dir(folder)
        clear_partial(folder)  # its label PNGs, temporaries and a marker of other settings
        for photo in photos:
            image = read_photo(photo, max_pixels=max_pixels)
            write_label_png(folder / f"{photo.stem}.png", personalizer.segment(image).labels)
        write_marker(folder, settings)
        done.append(name)
    if coco is not None:
        write_perseg_coco(coco, layout, names, out)
    return done


def write_perseg_coco(path: PathLike, layout: PersegLayout, names: Sequence[str], out: Path) -> Path:
    """The results of ``names`` as one COCO instances file: object ``i`` (1-based, in ``names``'
    order) is category ``i`` named after it; each photo is named ``<object>/<photo file>``."""
    from ..export.coco import CocoFile

    document = CocoFile(range(1, len(names) + 1), {i: name for i, name in enumerate(names, 1)})
    for index, name in enumerate(names, 1):
        for photo in list_photos([layout.root / "Images" / name]).photos:
            labels = read_label_png(out / name / f"{photo.stem}.png")
            document.add(f"{name}/{photo.name}", np.where(labels > 0, index, 0).astype(np.uint8))
    return document.write(path)

