"""Masks as annotation files that CVAT, Label Studio and Roboflow import: COCO instances and YouTube-VIS.

Both formats store each mask as COCO's compressed run-length encoding (pycocotools), one
category per object id. A photo collection or a clip's frames become COCO images; a clip also
becomes one YouTube-VIS video whose objects carry one RLE per frame (``None`` where absent).
pycocotools is imported when a file is made, so the package imports without it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..errors import PersamError
from ..io.files import PathLike, atomic_write
from ..io.masks import VOID_ID

__all__ = ["CocoFile", "YouTubeVisFile", "decode_rle", "encode_mask"]

#: what ``pip install`` needs for these exports
EXTRA = "pycocotools"


def _mask_api() -> Any:
    try:
        from pycocotools import mask as mask_api
    except ImportError:
        raise PersamError(f"COCO and YouTube-VIS files need pycocotools: pip install {EXTRA}") from None
    return mask_api


def encode_mask(mask: np.ndarray) -> Dict[str, Any]:
    """COCO's compressed RLE of a boolean (H, W) mask, with ``counts`` as text (JSON-ready)."""
    rle = _mask_api().encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: Mapping[str, Any]) -> np.ndarray:
    """The boolean (H, W) mask of a compressed RLE as :func:`encode_mask` writes it."""
    counts = rle["counts"]
    raw = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return _mask_api().decode(raw).astype(bool)


def _box_and_area(mask: np.ndarray) -> Tuple[List[float], int]:
    """``([x, y, width, height], pixels)`` of a non-empty mask, as COCO records them."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    box = [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]
    return box, int(mask.sum())


def _categories(ids: Sequence[int], names: Optional[Mapping[int, str]]) -> List[Dict[str, Any]]:
    """One category per object id (the id itself), named by ``names`` or ``object <id>``."""
    bad = [k for k in ids if not 0 < int(k) < VOID_ID]
    if bad:
        raise PersamError(f"object ids must be between 1 and 254, got {bad}")
    names = names or {}
    return [{"id": int(k), "name": names.get(int(k), f"object {int(k)}"), "supercategory": "object"}
            for k in sorted({int(k) for k in ids})]


def _write_json(path: PathLike, document: Mapping[str, Any]) -> Path:
    path = Path(path)
    if path.parent and not path.parent.is_dir():
        raise PersamError(f"cannot write {path}: the folder {path.parent} does not exist")

    def write(tmp: str) -> None:
        with open(tmp, "w") as handle:
            json.dump(document, handle)

    atomic_write(path, write)
    return path


@dataclass
class CocoFile:
    """A COCO instances document built image by image: one annotation per object on each image."""

    object_ids: Sequence[int]
    names: Optional[Mapping[int, str]] = None
    images: List[Dict[str, Any]] = field(default_factory=list)
    annotations: List[Dict[str, Any]] = field(default_factory=list)

    def add(self, file_name: str, labels: np.ndarray) -> int:
        """Add an image by its label map (0 background, ids as in ``object_ids``); returns its image id."""
        image_id = len(self.images) + 1
        height, width = labels.shape[:2]
        self.images.append({"id": image_id, "file_name": str(file_name), "height": int(height), "width": int(width)})
        for object_id in sorted({int(k) for k in self.object_ids}):
            mask = labels == object_id
            if not mask.any():
                continue
            box, area = _box_and_area(mask)
            self.annotations.append({
                "id": len(self.annotations) + 1, "image_id": image_id, "category_id": object_id,
                "segmentation": encode_mask(mask), "area": area, "bbox": box, "iscrowd": 0,
            })
        return image_id

    def document(self) -> Dict[str, Any]:
        """The JSON document: ``images``, ``annotations`` and ``categories``."""
        return {"info": {"description": "masks by persam-video"}, "images": self.images,
                "annotations": self.annotations, "categories": _categories(self.object_ids, self.names)}

    def write(self, path: PathLike) -> Path:
        """Write the document to ``path`` atomically."""
        return _write_json(path, self.document())


@dataclass
class YouTubeVisFile:
    """A YouTube-VIS document of one clip: each object one entry with an RLE per frame."""

    object_ids: Sequence[int]
    names: Optional[Mapping[int, str]] = None
    file_names: List[str] = field(default_factory=list)
    size: Optional[Tuple[int, int]] = None
    _tracks: Dict[int, Dict[str, list]] = field(default_factory=dict)

    def add(self, file_name: str, labels: np.ndarray) -> None:
        """Add the clip's next frame by its label map."""
        shape = tuple(int(s) for s in labels.shape[:2])
        if self.size is None:
            self.size = shape  # type: ignore[assignment]
        elif shape != self.size:
            raise PersamError(f"frame {file_name} is {shape[1]}x{shape[0]} but the clip's first frame "
                              f"is {self.size[1]}x{self.size[0]} (width x height)")
        self.file_names.append(str(file_name))
        for object_id in sorted({int(k) for k in self.object_ids}):
            track = self._tracks.setdefault(object_id, {"segmentations": [], "areas": [], "bboxes": []})
            mask = labels == object_id
            if mask.any():
                box, area = _box_and_area(mask)
                track["segmentations"].append(encode_mask(mask))
                track["areas"].append(area)
                track["bboxes"].append(box)
            else:
                for key in track:
                    track[key].append(None)

    def document(self) -> Dict[str, Any]:
        """The JSON document: one ``videos`` entry, one annotation per object, the categories."""
        height, width = self.size or (0, 0)
        video = {"id": 1, "width": width, "height": height, "length": len(self.file_names),
                 "file_names": self.file_names}
        annotations = [{"id": index + 1, "video_id": 1, "category_id": object_id, "iscrowd": 0,
                        "height": height, "width": width, **track}
                       for index, (object_id, track) in enumerate(sorted(self._tracks.items()))]
        return {"info": {"description": "masks by persam-video"}, "videos": [video],
                "annotations": annotations, "categories": _categories(self.object_ids, self.names)}

    def write(self, path: PathLike) -> Path:
        """Write the document to ``path`` atomically."""
        return _write_json(path, self.document())
