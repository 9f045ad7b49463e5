"""Exports for video editors from a video and its label PNGs: overlay, matte and cut-out.

The label PNGs are those ``persam-video segment`` writes: ``<masks>/<frame name>.png``
for every frame of the video (indexed DAVIS PNGs or 8-bit grey label maps).

* **overlay** – every object tinted with the DAVIS palette colour of its id at
  :data:`OVERLAY_ALPHA` plus a :data:`CONTOUR_WIDTH`-pixel contour in that colour, as an
  H.264 video (yuv420p) or a folder of RGB PNGs;
* **matte** – one grey 8-bit PNG per frame, 255 inside the chosen objects and 0 elsewhere,
  optionally feathered (Gaussian blur) for soft edges;
* **cutout** – one RGBA PNG per frame: RGB is the frame, alpha the matte.

Everything streams one frame at a time (memory does not grow with the video's length),
every file is written under a temporary name and renamed when complete, and the frame
operations (:func:`overlay_frame`, :func:`matte_frame`, :func:`cutout_frame`) are
vectorised numpy/OpenCV usable on their own.
"""
from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set, Tuple, Union

import cv2
import imageio_ffmpeg
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .errors import PersamError
from .frames import FrameSource, open_frames
from .masks import DAVIS_PALETTE, VOID_ID, atomic_write, read_label_png
from .writer import ensure_writable_dir

PathLike = Union[str, os.PathLike]

KINDS = ("overlay", "matte", "cutout")
#: Output suffixes written as an H.264 video (overlay only); anything else is a PNG folder.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
OVERLAY_ALPHA = 0.5
CONTOUR_WIDTH = 2
#: Frame rate of a video made from a frame folder (DAVIS was shot at 24 frames/s).
DEFAULT_FPS = 24.0
#: imageio-ffmpeg quality (0-10) of H.264 exports.
VIDEO_QUALITY = 8


# ------------------------------------------------------------------ frame operations

def _chosen(labels: np.ndarray, objects: Optional[Sequence[int]]) -> np.ndarray:
    """Boolean (H, W): the pixels of the chosen ids (all ids except 0 and void 255 when None)."""
    if objects is None:
        return (labels != 0) & (labels != VOID_ID)
    lut = np.zeros(256, dtype=bool)
    lut[np.asarray(list(objects), dtype=np.intp)] = True
    return lut[labels]


def contour_mask(labels: np.ndarray, width: int = CONTOUR_WIDTH) -> np.ndarray:
    """Boolean (H, W): object pixels within ``width`` pixels (chessboard distance) of another label.

    Each object gets an inner band of ``width`` pixels along its outline, also where it
    touches another object; the image border does not count as an outline.
    """
    if width <= 0:
        return np.zeros(labels.shape, dtype=bool)
    kernel = np.ones((2 * width + 1, 2 * width + 1), dtype=np.uint8)
    band = cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)
    return band & (labels != 0)


def overlay_frame(image: np.ndarray, labels: np.ndarray, objects: Optional[Sequence[int]] = None,
                  alpha: float = OVERLAY_ALPHA, contour: int = CONTOUR_WIDTH) -> np.ndarray:
    """The frame with each chosen object tinted in its DAVIS colour and outlined.

    ``image`` is (H, W, 3) uint8 RGB, ``labels`` (H, W) uint8 ids. Inside an object a
    pixel becomes ``rint((1 - alpha) * pixel + alpha * colour)``; its ``contour``-pixel
    inner outline is the plain colour; every other pixel (background, void, objects not
    chosen) is the frame's own. Returns a new (H, W, 3) uint8 array.
    """
    _check_shapes(image, labels)
    shown = np.where(_chosen(labels, objects), labels, 0).astype(np.uint8)
    inside = shown != 0
    colours = DAVIS_PALETTE[shown]
    out = image.copy()
    blend = (1.0 - alpha) * image[inside].astype(np.float32) + alpha * colours[inside].astype(np.float32)
    out[inside] = np.clip(np.rint(blend), 0, 255).astype(np.uint8)
    edge = contour_mask(shown, contour)
    out[edge] = colours[edge]
    return out


def matte_frame(labels: np.ndarray, objects: Optional[Sequence[int]] = None, feather: float = 0.0) -> np.ndarray:
    """(H, W) uint8 matte: 255 on the chosen objects, 0 elsewhere.

    ``feather`` > 0 softens the edges with a Gaussian blur of that radius in pixels
    (kernel ``2 * ceil(feather) + 1`` wide, sigma ``feather / 2``), rounded back to uint8.
    """
    matte = _chosen(labels, objects).astype(np.uint8) * np.uint8(255)
    if feather > 0:
        size = 2 * int(math.ceil(feather)) + 1
        soft = cv2.GaussianBlur(matte.astype(np.float32), (size, size), sigmaX=feather / 2.0,
                                borderType=cv2.BORDER_REPLICATE)
        matte = np.clip(np.rint(soft), 0, 255).astype(np.uint8)
    return matte


def cutout_frame(image: np.ndarray, matte: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA: the frame's RGB with the matte as alpha."""
    _check_shapes(image, matte)
    return np.dstack([image, matte])


def _check_shapes(image: np.ndarray, labels: np.ndarray) -> None:
    if image.shape[:2] != labels.shape[:2]:
        raise PersamError(f"mask is {labels.shape[1]}x{labels.shape[0]} but the frame is "
                          f"{image.shape[1]}x{image.shape[0]} (width x height)")


# --------------------------------------------------------------------------- outputs

def is_video_path(path: PathLike) -> bool:
    """Whether ``path`` names a video file (by suffix) rather than a PNG folder."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def _reason(error: BaseException) -> str:
    """One line of an OS or ffmpeg error."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


class PngFolderSink:
    """Writes ``<folder>/<name>.png`` atomically; checks up front that it can write there."""

    def __init__(self, folder: PathLike) -> None:
        self.folder = ensure_writable_dir(folder)
        self.written = 0

    def write(self, name: str, image: np.ndarray) -> Path:
        """Write one RGB, RGBA or grey image; the file appears complete or not at all."""
        path = self.folder / f"{name}.png"
        picture = Image.fromarray(np.ascontiguousarray(image))
        try:
            atomic_write(path, lambda tmp: picture.save(tmp, format="PNG", compress_level=1))
        except OSError as exc:
            raise PersamError(f"cannot write {path}: {_reason(exc)}") from None
        self.written += 1
        return path

    def close(self) -> None:
        """Nothing to finish: every PNG is complete once written."""

    def abort(self) -> None:
        """Keep the complete PNGs written so far."""


class VideoSink:
    """Streams RGB frames into an H.264 (yuv420p) file through imageio-ffmpeg.

    The video is encoded under a temporary name in the destination folder and renamed
    onto ``path`` by :meth:`close`, so the destination never holds half a video. yuv420p
    needs even sizes: an odd width or height gets one more column or row, a copy of the
    last one, so the original pixels keep their places.
    """

    def __init__(self, path: PathLike, size: Tuple[int, int], fps: float, quality: float = VIDEO_QUALITY) -> None:
        self.path = Path(path)
        self.size = size  # (height, width) of the frames sent in
        h, w = size
        self._pad = (h % 2, w % 2)
        self._tmp: Optional[str] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, self._tmp = tempfile.mkstemp(prefix="." + self.path.stem + ".", suffix=".tmp" + self.path.suffix,
                                             dir=str(self.path.parent))
            os.close(fd)
        except OSError as exc:
            raise PersamError(f"cannot write {self.path}: {_reason(exc)}") from None
        output_params = ["-movflags", "+faststart"] if self.path.suffix.lower() != ".mkv" else []
        self._writer = imageio_ffmpeg.write_frames(
            self._tmp, (w + self._pad[1], h + self._pad[0]), pix_fmt_in="rgb24", pix_fmt_out="yuv420p",
            fps=Fraction(fps).limit_denominator(1001), quality=quality, codec="libx264", macro_block_size=1,
            ffmpeg_log_level="error", output_params=output_params)
        try:
            self._writer.send(None)
        except Exception as exc:
            self.abort()
            raise PersamError(f"cannot start the video encoder for {self.path}: {_reason(exc)}") from None
        self.written = 0

    def write(self, name: str, image: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame (``name`` is unused: frames are in order)."""
        if image.shape[:2] != tuple(self.size):
            raise PersamError(f"frame {name} is {image.shape[1]}x{image.shape[0]}, the video "
                              f"{self.size[1]}x{self.size[0]}")
        if any(self._pad):
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            self._writer.send(np.ascontiguousarray(image))
        except Exception as exc:
            self.abort()
            raise PersamError(f"cannot write {self.path}: {_reason(exc)}") from None
        self.written += 1

    def close(self) -> None:
        """Finish the encoding and move the complete video onto its name."""
        try:
            self._writer.close()
            os.replace(self._tmp, self.path)
        except Exception as exc:
            self.abort()
            raise PersamError(f"cannot write {self.path}: {_reason(exc)}") from None
        self._tmp = None

    def abort(self) -> None:
        """Stop the encoder and remove the temporary file."""
        try:
            self._writer.close()
        except Exception:
            pass
        if self._tmp is not None and os.path.exists(self._tmp):
            os.unlink(self._tmp)
        self._tmp = None


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: float = DEFAULT_FPS,
                quality: float = VIDEO_QUALITY) -> int:
    """Encode RGB frames (an iterable, consumed one at a time) as an H.264 video; returns the count."""
    sink: Optional[VideoSink] = None
    try:
        for i, image in enumerate(frames):
            if sink is None:
                sink = VideoSink(path, image.shape[:2], fps, quality)
            sink.write(f"{i:05d}", image)
    except BaseException:
        if sink is not None:
            sink.abort()
        raise
    if sink is None:
        raise PersamError(f"no frames to write to {path}")
    sink.close()
    return sink.written


def source_fps(path: PathLike, default: float = DEFAULT_FPS) -> float:
    """The frame rate of a video file as ffmpeg reports it; ``default`` for folders or when unknown."""
    path = Path(path)
    if path.is_dir():
        return default
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        try:
            meta = next(reader)
        finally:
            reader.close()
        fps = float(meta.get("fps") or 0)
    except Exception:
        return default
    return fps if math.isfinite(fps) and 0 < fps <= 1000 else default


# ---------------------------------------------------------------------------- export

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
        raise PersamError(f"cannot read mask {path}: {_reason(exc)}") from None
    if (h, w) != tuple(size):
        raise PersamError(f"mask {path} is {w}x{h} but the frames are {size[1]}x{size[0]} (width x height)")


def _read_labels(path: Path, size: Tuple[int, int]) -> np.ndarray:
    labels = read_label_png(path)
    if labels.shape != tuple(size):
        raise PersamError(f"mask {path} is {labels.shape[1]}x{labels.shape[0]} but the frames are "
                          f"{size[1]}x{size[0]} (width x height)")
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
        raise PersamError(f"--feather must be a radius of 0 or more pixels, not {feather}")
    if kind == "overlay" and feather > 0:
        raise PersamError("--feather applies to matte and cutout exports, not to overlay")
    wanted = None if objects is None else sorted({int(k) for k in objects})
    if wanted is not None and (not wanted or any(not 0 < k < VOID_ID for k in wanted)):
        raise PersamError(f"object ids must be between 1 and 254, got {objects}")
    as_video = kind == "overlay" and is_video_path(out)
    if kind != "overlay" and is_video_path(out):
        raise PersamError(f"{kind} exports are folders of PNGs (they keep an alpha or grey channel); "
                          f"--out {out} names a video file")
    if fps is not None and not as_video:
        raise PersamError("--fps applies only to an overlay written as a video file (.mp4, .mov, .m4v, .mkv)")
    if fps is not None and not (math.isfinite(fps) and 0 < fps <= 1000):
        raise PersamError(f"--fps must be above 0 and at most 1000, not {fps}")

    source = open_frames(video, read_ahead=read_ahead)
    first, paths = mask_paths(source, masks_dir)
    size = source.size
    _check_mask_size(paths[0], size)
    out = Path(out)
    rate = None
    if as_video:
        rate = float(fps) if fps is not None else source_fps(video)
        sink: Union[PngFolderSink, VideoSink] = VideoSink(out, size, rate)
    else:
        sink = PngFolderSink(out)

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
