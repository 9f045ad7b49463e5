"""A browser session's video: the size-limited upload, opening it, and the frames the page shows.

The upload is written into the session's own folder under a name the server chooses (only the
browser's file extension is kept, and only from a known list), under a temporary name renamed
when complete. The frames the page shows are JPEG copies, decoded once when the video is
loaded; the tracker reads the uploaded file itself, so it sees the pixels ``segment`` would.
"""
from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, List, Optional, Tuple

import imageio_ffmpeg
import numpy as np
from PIL import Image

from ..errors import PersamError, error_line
from ..export.sinks import source_fps
from ..io.frames import FrameSource, open_frames

#: file extensions kept from the browser's file name (anything else is saved as ``.bin``)
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".gif", ".mpg", ".mpeg", ".ogv", ".wmv")
PREVIEW_MAX_SIDE = 1280  # the page's frames are scaled down to this many pixels on their longer side
PREVIEW_QUALITY = 90


class UiError(PersamError):
    """A request the page cannot carry out; ``status`` is the HTTP status the server answers with."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def display_name(name: Optional[str]) -> str:
    """The browser's file name reduced to something safe to show: no folders, printable, 80 characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:80] or "video"


def upload_suffix(name: str) -> str:
    """The extension the uploaded file is saved with: the browser's, when it is a known video one."""
    suffix = Path(name).suffix.lower()
    return suffix if suffix in VIDEO_EXTENSIONS else ".bin"


async def save_upload(chunks: AsyncIterator[bytes], folder: Path, name: str, limit: int) -> Path:
    """Write the uploaded bytes to ``folder/upload<suffix>``; refuse more than ``limit`` bytes.

    The bytes go to a temporary file in ``folder``, renamed when complete; an upload over the
    limit, an empty one or a broken connection leaves nothing behind.
    """
    target = folder / f"upload{upload_suffix(name)}"
    fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=str(folder))
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                received += len(chunk)
                if received > limit:
                    raise UiError(too_large(limit), status=413)
                out.write(chunk)
        if received == 0:
            raise UiError("the uploaded file is empty")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def too_large(limit: int) -> str:
    """The message for an upload above the limit."""
    return f"the video is larger than the upload limit of {human_size(limit)}"


def human_size(size: int) -> str:
    """``200 MB``, ``1.5 GB``, ``100 bytes``."""
    for unit, scale in (("GB", 2 ** 30), ("MB", 2 ** 20), ("KB", 2 ** 10)):
        if size >= scale:
            return f"{size / scale:.4g} {unit}"
    return f"{size} bytes"


@dataclass
class LoadedVideo:
    """A video the session has opened: its frames, their names and the page's JPEG copies."""

    path: Path
    name: str
    source: FrameSource
    names: List[str]
    size: Tuple[int, int]  # (height, width) of the frames
    fps: float
    previews: Path

    def __len__(self) -> int:
        return len(self.names)

    def preview(self, index: int) -> np.ndarray:
        """The page's copy of frame ``index``: (h, w, 3) uint8, at most PREVIEW_MAX_SIDE pixels wide or high."""
        with Image.open(self.previews / f"{index:06d}.jpg") as image:
            return np.asarray(image.convert("RGB"))


def media_container(path: Path) -> bool:
    """Whether ffmpeg opens ``path`` as a media file (it may still have no video in it)."""
    try:
        probe = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return "Error opening input" not in probe.stderr and "Invalid data found" not in probe.stderr


def preview_size(size: Tuple[int, int]) -> Tuple[int, int]:
    """(width, height) of the page's copy of a frame of ``size`` (height, width)."""
    h, w = size
    scale = min(1.0, PREVIEW_MAX_SIDE / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def load_video(path: Path, name: str, previews: Path) -> LoadedVideo:
    """Open the video at ``path`` (the server's own file) and write the page's frames into ``previews``.

    A file that is not a video, or a video with no frames, raises :class:`UiError` with a
    message for the page.
    """
    try:
        source = open_frames(path)
        total = len(source)
    except Exception as exc:  # PersamError, or decord's and imageio's own types for odd files
        if path.is_file() and media_container(path):
            raise UiError(f"{name} has no frames: it holds no video stream") from None
        detail = "" if isinstance(exc, PersamError) else f": {error_line(exc)}"
        raise UiError(f"{name} is not a video this tool can read (mp4, mov, mkv, avi, webm, gif, ...){detail}") \
            from None
    if total == 0:
        raise UiError(f"{name} has no frames")
    previews.mkdir(parents=True, exist_ok=True)
    size: Optional[Tuple[int, int]] = None
    try:
        for frame in source.frames(0):
            size = size or frame.image.shape[:2]
            image = Image.fromarray(frame.image)
            if max(size) > PREVIEW_MAX_SIDE:
                image = image.resize(preview_size(size), Image.BILINEAR)
            image.save(previews / f"{frame.index:06d}.jpg", quality=PREVIEW_QUALITY)
    except PersamError as exc:
        raise UiError(f"{name}: {exc}") from None
    if size is None:
        raise UiError(f"{name} has no frames")
    return LoadedVideo(path=path, name=name, source=source, names=source.names(), size=tuple(size),
                       fps=source_fps(path), previews=previews)
