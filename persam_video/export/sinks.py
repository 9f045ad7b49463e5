"""Where exports go: a folder of PNGs or an H.264 video, each file complete or not there at all."""
from __future__ import annotations

import math
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import imageio_ffmpeg
import numpy as np
from PIL import Image

from ..errors import PersamError, check_size, error_line
from ..io.files import PathLike, atomic_write, temporary_beside
from ..io.writer import PngFolderWriter

#: Output suffixes written as an H.264 video (overlay only); anything else is a PNG folder.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv")
#: Frame rate of a video made from a frame folder (DAVIS was shot at 24 frames/s).
DEFAULT_FPS = 24.0
#: imageio-ffmpeg quality (0-10) of H.264 exports.
VIDEO_QUALITY = 8


def is_video_path(path: PathLike) -> bool:
    """Whether ``path`` names a video file (by suffix) rather than a PNG folder."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def write_image_png(path: Path, image: np.ndarray) -> None:
    """Write an RGB, RGBA or grey uint8 image as a PNG, atomically."""
    picture = Image.fromarray(np.ascontiguousarray(image))
    atomic_write(path, lambda tmp: picture.save(tmp, format="PNG", compress_level=1))


def png_folder(folder: PathLike) -> PngFolderWriter:
    """A sink writing ``<folder>/<frame name>.png`` (RGB, RGBA or grey), checked writable up front."""
    return PngFolderWriter(folder, write_image_png)


class VideoSink:
    """Streams frames into a video file through imageio-ffmpeg: H.264 (yuv420p) RGB by default.

    The video is encoded under a temporary name in the destination folder and renamed
    onto ``path`` by :meth:`close`, so the destination never holds half a video. yuv420p
    needs even sizes: an odd width or height gets one more column or row, a copy of the
    last one, so the original pixels keep their places. ``pix_fmt_in`` ``rgba`` takes
    (H, W, 4) frames, for the alpha codecs of :mod:`.alpha`.
    """

    def __init__(self, path: PathLike, size: Tuple[int, int], fps: float, quality: Optional[float] = VIDEO_QUALITY,
                 codec: str = "libx264", pix_fmt_in: str = "rgb24", pix_fmt_out: str = "yuv420p",
                 output_params: Optional[List[str]] = None) -> None:
        self.path = Path(path)
        self.size = size  # (height, width) of the frames sent in
        self.channels = 4 if pix_fmt_in == "rgba" else 3
        h, w = size
        self._pad = (h % 2, w % 2)
        self._tmp: Optional[str] = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = temporary_beside(self.path)
        except OSError as exc:
            raise PersamError(f"cannot write {self.path}: {error_line(exc)}") from None
        if output_params is None:
            output_params = ["-movflags", "+faststart"] if self.path.suffix.lower() in (".mp4", ".mov", ".m4v") else []
        self._writer = imageio_ffmpeg.write_frames(
            self._tmp, (w + self._pad[1], h + self._pad[0]), pix_fmt_in=pix_fmt_in, pix_fmt_out=pix_fmt_out,
            fps=Fraction(fps).limit_denominator(1001), quality=quality, codec=codec, macro_block_size=1,
            ffmpeg_log_level="error", output_params=output_params)
        try:
            self._writer.send(None)
        except Exception as exc:
            self.abort()
            raise PersamError(f"cannot start the video encoder for {self.path}: {error_line(exc)}") from None
        self.written = 0

    def write(self, name: str, image: np.ndarray) -> None:
        """Encode one (H, W, 3) uint8 RGB frame, (H, W, 4) RGBA for ``rgba`` input or (H, W) grey
        (sent as RGB); ``name`` is unused: frames are in order."""
        check_size(f"frame {name}", image.shape, self.size, "the video is")
        if image.ndim == 2:
            image = np.repeat(image[..., None], self.channels, axis=2)
        if any(self._pad):
            image = np.pad(image, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            self._writer.send(np.ascontiguousarray(image))
        except Exception as exc:
            self.abort()
            raise PersamError(f"cannot write {self.path}: {error_line(exc)}") from None
        self.written += 1

    def close(self) -> None:
        """Finish the encoding and move the complete video onto its name."""
        try:
            self._writer.close()
            os.replace(self._tmp, self.path)
        except Exception as exc:
            self.abort()
            raise PersamError(f"cannot write {self.path}: {error_line(exc)}") from None
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
