"""Exports for video editors from a video and its label PNGs: overlay, matte and cut-out.

The label PNGs are those ``persam-video segment`` writes: ``<masks>/<frame name>.png``
for every frame of the video (indexed DAVIS PNGs or 8-bit grey label maps).

* **overlay** – every object tinted with the DAVIS palette colour of its id at
  :data:`OVERLAY_ALPHA` plus a :data:`CONTOUR_WIDTH`-pixel contour in that colour, as an
  H.264 video (yuv420p) or a folder of RGB PNGs;
* **matte** – one grey 8-bit PNG per frame, 255 inside the chosen objects and 0 elsewhere,
  optionally feathered (Gaussian blur) for soft edges;
* **cutout** – one RGBA PNG per frame: RGB is the frame, alpha the matte.

Everything streams one frame at a time (memory does not grow with the video's length) and
every file is written under a temporary name and renamed when complete. The frame
renderers (:func:`overlay_frame`, :func:`matte_frame`, :func:`cutout_frame`) are in
:mod:`.render`, the writers (a PNG folder, :class:`VideoSink`, :func:`write_video`) in
:mod:`.sinks`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..errors import PersamError, check_size, error_line
from ..io.frames import FrameSource, open_frames
from ..io.masks import VOID_ID, read_label_png
from ..io.writer import PngFolderWriter
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
    "CONTOUR_WIDTH", "DEFAULT_FPS", "KINDS", "OVERLAY_ALPHA", "VIDEO_QUALITY", "VIDEO_SUFFIXES", "ExportResult",
    "VideoSink", "contour_mask", "cutout_frame", "export", "is_video_path", "mask_paths", "matte_frame",
    "overlay_frame", "png_folder", "source_fps", "write_video",
]

KINDS = ("overlay", "matte", "cutout")


@dataclass
class ExportResult:
    """What :func:`export` wrote."""

    kind: str
    out: Path
    frames: int
    is_video: bool
    fps: Optional[float] = None
    #: requested ids (``objects``) that appear in no mask
    never_seen: List[int] = field(default_factory=list)


def mask_paths(source: FrameSource, masks_dir: PathLike) -> Tuple[int, List[Path]]:
    """``(first, paths)``: ``<masks_dir>/<frame name>.png`` from the first frame that has a mask.

    Frames before the first mask are left out (``segment --start N`` writes none for
    them); from there on every frame needs its mask: a clear error names the first missing.
    """
    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise PersamError(f"masks folder not found: {masks_dir}")
    names = source.names()
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


def export(video: PathLike, masks_dir: PathLike, out: PathLike, kind: str = "overlay",
           objects: Optional[Sequence[int]] = None, feather: float = 0.0, fps: Optional[float] = None,
           progress: bool = False, read_ahead: int = 4) -> ExportResult:
    """Export ``video`` with its label PNGs in ``masks_dir`` as ``kind`` into ``out``.

    ``kind`` is ``overlay`` (``out`` ending in .mp4/.mov/.m4v/.mkv: an H.264 video at
    ``fps``, default the source's frame rate; otherwise a folder of PNGs), ``matte`` or
    ``cutout`` (folders of PNGs named like the frames). ``objects`` restricts the export
    to these ids (default: every id); ``feather`` softens matte and cut-out edges.
    Every input is checked (masks present and of the frames' size, output writable)
    before the first frame is written; problems raise :class:`PersamError`.
    """
    if kind not in KINDS:
        raise PersamError(f"unknown export kind {kind!r}; choose one of {', '.join(KINDS)}")
    if feather < 0 or not math.isfinite(feather):
        raise PersamError(f"the feather radius must be 0 or more pixels, not {feather}")
    if kind == "overlay" and feather > 0:
        raise PersamError("feathering applies to matte and cutout exports, not to overlay")
    wanted = None if objects is None else sorted({int(k) for k in objects})
    if wanted is not None and (not wanted or any(not 0 < k < VOID_ID for k in wanted)):
        raise PersamError(f"object ids must be between 1 and 254, got {objects}")
    as_video = kind == "overlay" and is_video_path(out)
    if kind != "overlay" and is_video_path(out):
        raise PersamError(f"{kind} exports are folders of PNGs (they keep an alpha or grey channel); "
                          f"the output {out} names a video file")
    if fps is not None and not as_video:
        raise PersamError("a frame rate applies only to an overlay written as a video file (.mp4, .mov, .m4v, .mkv)")
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise PersamError(f"the frame rate must be above 0 and at most 1000, not {fps}")

    source = open_frames(video, read_ahead=read_ahead)
    first, paths = mask_paths(source, masks_dir)
    size = source.size
    _check_mask_size(paths[0], size)
    out = Path(out)
    rate = None
    if as_video:
        rate = float(fps) if fps is not None else source_fps(video)
        sink: Union[PngFolderWriter, VideoSink] = VideoSink(out, size, rate)
    else:
        sink = png_folder(out)

    seen: Set[int] = set()
    wanted_lut = None if wanted is None else np.asarray(wanted, dtype=np.intp)
    try:
        with tqdm(total=len(paths), unit="frame", desc=f"exporting {kind}", disable=not progress,
                  dynamic_ncols=True) as bar:
            for frame, path in zip(source.frames(first), paths):
                labels = _read_labels(path, size)
                if wanted_lut is not None:
                    present = np.bincount(labels.ravel(), minlength=256)[wanted_lut] > 0
                    seen.update(int(k) for k in wanted_lut[present])
                if kind == "overlay":
                    result = overlay_frame(frame.image, labels, wanted)
                else:
                    matte = matte_frame(labels, wanted, feather)
                    result = matte if kind == "matte" else cutout_frame(frame.image, matte)
                sink.write(frame.name, result)
                bar.update(1)
    except BaseException:
        sink.abort()
        raise
    sink.close()
    never = [] if wanted is None else [k for k in wanted if k not in seen]
    return ExportResult(kind=kind, out=out, frames=sink.written, is_video=as_video, fps=rate, never_seen=never)
