"""What each export kind makes of a frame and its label map, and the sink for the annotation files.

A job takes the frames in order (:meth:`FrameJob.take`) and gives back ``(name, picture)`` pairs,
possibly later (the removal looks ahead); :meth:`FrameJob.finish` gives the rest.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from ..io.files import PathLike, ensure_writable_dir
from .background import DEFAULT_COLOUR, BackgroundSource, blur_background, over_background, solid
from .coco import CocoFile, YouTubeVisFile
from .holes import feather, grow
from .removal import REACH, Remover
from .render import chosen, cutout_frame, matte_frame, overlay_frame

Named = Tuple[str, np.ndarray]


@dataclass
class Settings:
    """The options of one export (see :func:`persam_video.export.export`)."""

    objects: Optional[Sequence[int]] = None
    feather: float = 0.0
    dilate: int = 0
    strength: float = 0.0
    background: Optional[PathLike] = None
    colour: Tuple[int, int, int] = DEFAULT_COLOUR
    reach: int = REACH


class FrameJob:
    """One picture per frame, made at once by ``render(image, labels)``."""

    def __init__(self, render: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.render = render

    def take(self, name: str, image: np.ndarray, labels: np.ndarray) -> List[Named]:
        """The pictures ready after this frame (here: this frame's)."""
        return [(name, self.render(image, labels))]

    def finish(self) -> List[Named]:
        """The pictures still held back when the clip ends."""
        return []


class RemovalJob(FrameJob):
    """The chosen objects removed (:class:`.removal.Remover`); each frame comes out ``reach`` frames later."""

    def __init__(self, size: Tuple[int, int], settings: Settings) -> None:
        self.settings = settings
        self.remover = Remover(size, reach=settings.reach)
        self.names: List[str] = []

    def take(self, name: str, image: np.ndarray, labels: np.ndarray) -> List[Named]:
        self.names.append(name)
        return self._named(self.remover.push(image, grow(chosen(labels, self.settings.objects), self.settings.dilate)))

    def finish(self) -> List[Named]:
        return self._named(self.remover.finish())

    def _named(self, pictures: List[np.ndarray]) -> List[Named]:
        names, self.names = self.names[:len(pictures)], self.names[len(pictures):]
        return list(zip(names, pictures))


def make_job(kind: str, size: Tuple[int, int], settings: Settings) -> FrameJob:
    """The job for ``kind`` on frames of ``size`` (height, width); opens a replacement background."""
    objects = settings.objects

    def alpha(labels: np.ndarray) -> np.ndarray:
        return feather(grow(chosen(labels, objects), settings.dilate), settings.feather)

    if kind == "remove":
        return RemovalJob(size, settings)
    if kind == "overlay":
        return FrameJob(lambda image, labels: overlay_frame(image, labels, objects))
    if kind == "matte":
        return FrameJob(lambda image, labels: matte_frame(labels, objects, settings.feather))
    if kind == "cutout":
        return FrameJob(lambda image, labels: cutout_frame(image, matte_frame(labels, objects, settings.feather)))
    if kind == "blur":
        return FrameJob(lambda image, labels: blur_background(image, alpha(labels), settings.strength))
    if kind == "keep":
        colour = solid(size, settings.colour)
        return FrameJob(lambda image, labels: over_background(image, alpha(labels), colour))
    if kind == "replace":
        backgrounds: Iterator[np.ndarray] = BackgroundSource(settings.background, size).frames()
        return FrameJob(lambda image, labels: over_background(image, alpha(labels), next(backgrounds)))
    if kind == "coco":
        return FrameJob(lambda image, labels: labels)
    raise ValueError(kind)


class AnnotationSink:
    """Writes ``<folder>/coco.json`` (COCO instances, one image per frame) and ``<folder>/youtube_vis.json``
    (one video, one entry per object) from the label maps, when closed; frames are named ``<name>.jpg``."""

    def __init__(self, folder: PathLike, object_ids: Sequence[int]) -> None:
        self.folder = Path(folder)
        ensure_writable_dir(self.folder)
        self.coco = CocoFile(object_ids=list(object_ids))
        self.vis = YouTubeVisFile(object_ids=list(object_ids))
        self.written = 0

    def write(self, name: str, labels: np.ndarray) -> None:
        """Add one frame's label map."""
        self.coco.add(f"{name}.jpg", labels)
        self.vis.add(f"{name}.jpg", labels)
        self.written += 1

    def close(self) -> None:
        """Write both files (each atomically)."""
        self.coco.write(self.folder / "coco.json")
        self.vis.write(self.folder / "youtube_vis.json")

    def abort(self) -> None:
        """Write nothing."""
