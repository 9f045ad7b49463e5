"""Exports for video editors from a video and its label PNGs.

The label PNGs are those ``persam-video segment`` writes: ``<masks>/<frame name>.png``
for every frame of the video (indexed DAVIS PNGs or 8-bit grey label maps).

* **overlay** – every object tinted with its DAVIS palette colour plus a contour (PNGs or H.264);
* **matte** – 255 inside the chosen objects, 0 elsewhere (grey PNGs, or an H.264 for a luma key);
* **cutout** – the frame with the matte as alpha (RGBA PNGs, ProRes 4444 .mov or VP9 .webm);
* **remove** – the objects removed, filled from other frames along optical flow (:mod:`.removal`);
* **blur**, **replace**, **keep** – the background blurred, replaced, or a solid colour (:mod:`.background`);
* **coco** – COCO and YouTube-VIS annotation files (:mod:`.coco`).

Everything streams (memory does not grow with the video's length; the removal holds a window
of frames) and every file is written under a temporary name and renamed when complete.
What each kind makes of a frame is in :mod:`.kinds`, the file formats in :mod:`.formats`,
the writers in :mod:`.sinks`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import PersamError, check_size, error_line
from ..io.frames import FrameSource, open_frames
from ..io.masks import VOID_ID, read_label_png
from .background import DEFAULT_COLOUR, DEFAULT_STRENGTH
from .formats import KIND_FORMATS, VIDEO_FORMATS, choose_format
from .kinds import AnnotationSink, Settings, make_job
from .removal import REACH
from .render import CONTOUR_WIDTH, OVERLAY_ALPHA, contour_mask, cutout_frame, matte_frame, overlay_frame
from .sinks import (
    DEFAULT_FPS,
    VIDEO_QUALITY,
    VIDEO_SUFFIXES,
    PathLike,
    VideoSink,
    is_video_path,
    png_folder,
    source_fps,
    write_video,
)

__all__ = [
    "CONTOUR_WIDTH", "DEFAULT_FPS", "KINDS", "KIND_FORMATS", "OVERLAY_ALPHA", "VIDEO_QUALITY", "VIDEO_SUFFIXES",
    "ExportResult",
    "VideoSink", "contour_mask", "cutout_frame", "export", "is_video_path", "mask_paths", "matte_frame",
    "overlay_frame", "png_folder", "source_fps", "write_video",
]

KINDS = ("overlay", "matte", "cutout", "remove", "blur", "replace", "keep", "coco")
#: kinds whose edges are soft by default (pixels of feather)
SOFT_KINDS = {"blur": 2.0, "replace": 2.0, "keep": 2.0}
#: pixels the masks grow by before a removal when no --dilate is given
DEFAULT_DILATE = 4


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    kind: str
    out: Path
    frames: int
    format: str
    fps: Optional[float] = None

    @property
    def is_video(self) -> bool:
        """Whether ``out`` is one video file."""
        return self.format in VIDEO_FORMATS


def mask_paths(source: FrameSource, masks_dir: PathLike) -> Tuple[int, List[Path]]:
    """``(first, paths)``: ``<masks_dir>/<frame name>.png`` from the first frame that has a mask.

    Frames before the first mask are left out (``segment --start N`` writes none for
    them); from there on every frame needs its mask: a clear error names the first missing,
    and one names a PNG that belongs to no frame (masks of a longer or another clip).
    """
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise PersamError(f"masks folder not found: {masks_dir}")
    names = source.names()
    known = set(names)
    strays = sorted(p.name for p in masks_dir.glob("*.png") if p.stem not in known)
    if strays:
        raise PersamError(f"{len(strays)} mask(s) in {masks_dir} name no frame of the video ({len(names)} frames), "
                          f"e.g. {strays[0]}: are these the masks of another clip?")
    paths = [masks_dir / f"{name}.png" for name in names]
    present = [p.is_file() for p in paths]
    first = present.index(True) if any(present) else 0
    names, paths, present = names[first:], paths[first:], present[first:]
    missing = [(name, p) for name, p, ok in zip(names, paths, present) if not ok]
    if missing:
        name, path = missing[0]
        more = f" ({len(missing)} of {len(names)} frames have no mask)" if len(missing) > 1 else ""
        raise PersamError(f"no mask for frame {name}: {path} is missing{more}")
    return first, paths


def _check_mask_size(path: Path, size: Tuple[int, int]) -> None:
    """Compare a mask PNG's header with the frames' (height, width)."""
    try:
        with Image.open(path) as image:
            w, h = image.size
    except Exception as exc:
        raise PersamError(f"cannot read mask {path}: {error_line(exc)}") from None
    check_size(f"mask {path}", (h, w), size, "the frames are")


def _read_labels(path: Path, size: Tuple[int, int]) -> np.ndarray:
    labels = read_label_png(path)
    check_size(f"mask {path}", labels.shape, size, "the frames are")
    return labels


def ids_in_masks(paths: Sequence[Path], size: Tuple[int, int]) -> Set[int]:
    """Every object id (not 0, not void) in the label PNGs, each checked against the frames' size."""
    seen = np.zeros(256, dtype=bool)
    for path in paths:
        seen |= np.bincount(_read_labels(path, size).ravel(), minlength=256) > 0
    return {k for k in np.flatnonzero(seen).tolist() if 0 < k < VOID_ID}


def _check_options(kind: str, feather: float, fps: Optional[float], dilate: int, strength: float,
                   background: Optional[PathLike]) -> None:
    if kind not in KINDS:
        raise PersamError(f"unknown export kind {kind!r}; choose one of {', '.join(KINDS)}")
    if feather < 0 or not math.isfinite(feather):
        raise PersamError(f"the feather radius must be 0 or more pixels, not {feather}")
    if kind in ("overlay", "remove", "coco") and feather > 0:
        raise PersamError(f"feathering applies to matte, cutout, blur, replace and keep exports, not to {kind}")
    if dilate < 0 or dilate > 500:
        raise PersamError(f"--dilate must be 0 to 500 pixels, not {dilate}")
    if not (math.isfinite(strength) and 0 < strength <= 500):
        raise PersamError(f"the blur strength must be above 0 and at most 500, not {strength}")
    if (background is not None) != (kind == "replace"):
        raise PersamError("--background is what a replace export puts behind the objects; it needs --kind replace"
                          if background is not None else "a replace export needs --background IMAGE_OR_VIDEO")
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise PersamError(f"the frame rate must be above 0 and at most 1000, not {fps}")


def _sink(fmt: str, out: Path, size: Tuple[int, int], rate: Optional[float], ids: Sequence[int]):
    if fmt == "png":
        return png_folder(out)
    if fmt == "json":
        return AnnotationSink(out, ids)
    video = VIDEO_FORMATS[fmt]
    return VideoSink(out, size, rate, quality=video.quality, codec=video.codec, pix_fmt_in=video.pix_fmt_in,
                     pix_fmt_out=video.pix_fmt_out, output_params=list(video.output_params) or None)


def export(video: PathLike, masks_dir: PathLike, out: PathLike, kind: str = "overlay",
           objects: Optional[Sequence[int]] = None, feather: Optional[float] = None, fps: Optional[float] = None,
           progress: bool = False, read_ahead: int = 4, format: Optional[str] = None,
           dilate: Optional[int] = None, strength: float = DEFAULT_STRENGTH, background: Optional[PathLike] = None,
           colour: Tuple[int, int, int] = DEFAULT_COLOUR, reach: int = REACH) -> ExportResult:
    """Export ``video`` with its label PNGs in ``masks_dir`` as ``kind`` into ``out``.

    ``kind`` is one of :data:`KINDS` (see ``persam-video export --help``); ``format`` one of the
    kind's :data:`.formats.KIND_FORMATS`, by default chosen by ``out``'s suffix (a folder: PNGs).
    ``objects`` restricts the export to these ids (default: every id); each must appear in some mask.
    Every input is checked (masks present, as many as the frames and of their size, options,
    the encoder) before the first frame is written; problems raise :class:`PersamError`.
    """
    feather = SOFT_KINDS.get(kind, 0.0) if feather is None else float(feather)
    dilate = (DEFAULT_DILATE if kind == "remove" else 0) if dilate is None else int(dilate)
    _check_options(kind, feather, fps, dilate, strength, background)
    wanted = None if objects is None else sorted({int(k) for k in objects})
    if wanted is not None and (not wanted or any(not 0 < k < VOID_ID for k in wanted)):
        raise PersamError(f"object ids must be between 1 and 254, got {objects}")
    fmt = choose_format(kind, out, format)
    if fps is not None and fmt not in VIDEO_FORMATS:
        raise PersamError("a frame rate applies only to an export written as a video file (.mp4, .mov, .webm)")

    source = open_frames(video, read_ahead=read_ahead)
    first, paths = mask_paths(source, masks_dir)
    size = source.size
    _check_mask_size(paths[0], size)
    ids: Sequence[int] = wanted or []
    if wanted is not None or kind == "coco":
        present = ids_in_masks(paths, size)
        missing = [k for k in (wanted or []) if k not in present]
        if missing:
            raise PersamError(f"object id(s) {','.join(map(str, missing))} appear in no mask of {masks_dir} "
                              f"(ids there: {','.join(map(str, sorted(present))) or 'none'})")
        ids = wanted or sorted(present)
    settings = Settings(objects=wanted, feather=feather, dilate=dilate, strength=strength, background=background,
                        colour=colour, reach=reach)
    job = make_job(kind, size, settings)
    out = Path(out)
    rate = None
    if fmt in VIDEO_FORMATS:
        rate = float(fps) if fps is not None else source_fps(video)
    sink = _sink(fmt, out, size, rate, ids)

    try:
        with tqdm(total=len(paths), unit="frame", desc=f"exporting {kind}", disable=not progress,
                  dynamic_ncols=True) as bar:
            for frame, path in zip(source.frames(first), paths):
                for name, result in job.take(frame.name, frame.image, _read_labels(path, size)):
                    sink.write(name, result)
                    bar.update(1)
            for name, result in job.finish():
                sink.write(name, result)
                bar.update(1)
        sink.close()
    except BaseException:
        sink.abort()
        raise
    return ExportResult(kind=kind, out=out, frames=sink.written, format=fmt, fps=rate)
