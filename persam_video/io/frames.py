"""Streaming frame reader: video files (ffmpeg), frame folders (PIL) and gifs (imageio).

``open_frames(path)`` gives a ``FrameSource`` whose ``frames(start)`` yields RGB frames
one at a time, decoded a few frames ahead on a background thread. Nothing ever holds the
whole video, so memory stays flat however long it is.
"""
from __future__ import annotations

import math
import queue
import re
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, List, Optional, Tuple, TypeVar

import numpy as np
from PIL import Image

from ..errors import PersamError, error_line
from .files import PathLike

T = TypeVar("T")

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class Frame:
    """One decoded frame: its position in the sequence, its name and its RGB pixels."""

    index: int
    name: str
    image: np.ndarray  # (H, W, 3) uint8 RGB


def prefetch(iterable: Iterable[T], depth: int) -> Iterator[T]:
    """Yield the items of ``iterable``, produced up to ``depth`` items ahead on a thread.

    An exception raised by the producer is re-raised to the consumer once it has taken
    every item produced before it. Closing the returned generator (``break``, ``close()``,
    garbage collection) stops the thread and closes ``iterable``'s iterator before
    returning; it waits for at most the item being produced. ``depth <= 0`` reads inline.
    """
    if depth <= 0:
        yield from iterable
        return
    iterator = iter(iterable)
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: Tuple[bool, object]) -> bool:
        while not stop.is_set():
            try:
                items.put(entry, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def produce() -> None:
        try:
            for item in iterator:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as error:  # forwarded to the consumer, re-raised there
            put((False, error))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="persam-frames-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            is_item, value = items.get()
            if is_item:
                yield value
            elif value is None:
                return
            else:
                raise value
    finally:
        stop.set()
        thread.join()


def _rgb(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) RGB from a grey, grey+alpha, RGB or RGBA uint8 array (alpha dropped)."""
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] < 3:
        return np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


class FrameSource(ABC):
    """A sequence of frames read lazily from ``path``; see ``open_frames``."""

    def __init__(self, path: Path, read_ahead: int) -> None:
        self.path = path
        self.read_ahead = read_ahead
        self._size: Optional[Tuple[int, int]] = None

    @abstractmethod
    def __len__(self) -> int:
        """The number of frames."""

    @abstractmethod
    def names(self) -> List[str]:
        """The frame names, in order: file stems for folders, ``00000``... otherwise."""

    @abstractmethod
    def _load(self, index: int) -> np.ndarray:
        """Decode one frame, raising the backend's own error on failure."""

    def _decode(self, start: int) -> Iterator[Tuple[int, np.ndarray]]:
        """(index, image) from ``start`` to the end, raising the backend's own errors."""
        for index in range(start, len(self)):
            yield index, self._load(index)

    @property
    def size(self) -> Tuple[int, int]:
        """(height, width), from the first frame, decoded on first use."""
        if self._size is None:
            self._size = self.read(0).image.shape[:2]
        return self._size

    def read(self, index: int) -> Frame:
        """Decode the single frame at ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range: {self.path} has {len(self)} frames")
        try:
            image = self._load(index)
        except Exception as error:
            raise self._frame_error(index, error) from error
        return Frame(index, self.names()[index], _rgb(image))

    def frames(self, start: int = 0) -> Iterator[Frame]:
        """Stream the frames from ``start`` to the end, decoded ``read_ahead`` frames ahead.

        A frame that fails to decode raises ``PersamError`` naming it when the stream
        reaches it; the frames before it are delivered first.
        """
        if not 0 <= start <= len(self):
            raise IndexError(f"start {start} out of range: {self.path} has {len(self)} frames")
        return prefetch(self._stream(start), self.read_ahead)

    def _stream(self, start: int) -> Iterator[Frame]:
        names = self.names()
        index = start
        try:
            for index, image in self._decode(start):
                yield Frame(index, names[index], _rgb(image))
                index += 1
        except Exception as error:
            raise self._frame_error(index, error) from error

    def _frame_error(self, index: int, error: BaseException) -> PersamError:
        name = self.names()[index] if index < len(self) else "?"
        return PersamError(f"cannot decode frame {index} ({name}) of {self.path}: {error_line(error)}")


BACKWARD_CHUNK = 32  # frames decoded at once, in order, for a backward pass


def frames_backward(source: FrameSource, first: int, chunk: int = BACKWARD_CHUNK) -> Iterator[Frame]:
    """Frames ``first``, ``first - 1``, ..., 0: decoded ``chunk`` at a time in order and yielded reversed,
    so at most ``chunk`` frames are held (a video file is decoded from its start for each chunk)."""
    high = first
    while high >= 0:
        low = max(0, high - chunk + 1)
        stream = source.frames(low)
        try:
            batch = [next(stream) for _ in range(high - low + 1)]
        finally:
            stream.close()
        yield from reversed(batch)
        high = low - 1


class _FolderSource(FrameSource):
    """JPEG/PNG files in one folder, ordered by name (digit runs compared as numbers)."""

    def __init__(self, path: Path, read_ahead: int) -> None:
        super().__init__(path, read_ahead)
        files = [p for p in path.iterdir()
                 if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()]
        if not files:
            raise PersamError(f"no JPEG or PNG frames in folder {path}")
        self._files = sorted(files, key=lambda p: [int(s) if s.isdigit() else s
                                                   for s in re.split(r"(\d+)", p.name)])
        self._names = [p.stem for p in self._files]
        if len(set(self._names)) != len(self._names):
            raise PersamError(f"two frames share a name (e.g. 00000.jpg and 00000.png) in {path}")
        self._check_sizes()

    def _check_sizes(self) -> None:
        """Compare the image headers up front; unreadable files fail later, when reached."""
        first: Optional[Tuple[str, Tuple[int, int]]] = None
        for file in self._files:
            try:
                with Image.open(file) as image:
                    size = image.size
            except Exception:
                continue
            if first is None:
                first = (file.name, size)
            elif size != first[1]:
                raise PersamError(
                    f"frames in {self.path} differ in size: {first[0]} is {first[1][1]}x{first[1][0]}, "
                    f"{file.name} is {size[1]}x{size[0]} (height x width)")

    def __len__(self) -> int:
        return len(self._files)

    def names(self) -> List[str]:
        return list(self._names)

    def _load(self, index: int) -> np.ndarray:
        with Image.open(self._files[index]) as image:
            return np.array(image.convert("RGB"))


class _VideoFileSource(FrameSource):
    """A video file: decord for its frame count, an ffmpeg pipe for the pixels.

    Once decord has decoded one frame it goes on decoding the rest of the video on a
    background thread, without bound, whether or not anything reads it (decord issues #157,
    #208; figures in benchmarks/README.md). So frames come from imageio-ffmpeg instead: a pipe
    from an ffmpeg process, which blocks when we stop reading. Frames before ``start`` are decoded and dropped (exact,
    and fast next to the model); decord is only asked for the length, which decodes nothing.
    """

    def __init__(self, path: Path, read_ahead: int) -> None:
        super().__init__(path, read_ahead)
        import decord  # here, not at the top: a folder of frames needs neither it nor ffmpeg (start-up)

        self._length = len(decord.VideoReader(str(path), ctx=decord.cpu(0)))

    def __len__(self) -> int:
        return self._length

    def names(self) -> List[str]:
        return [f"{i:05d}" for i in range(len(self))]

    def _load(self, index: int) -> np.ndarray:
        stream = self._decode(index)
        try:
            return next(stream)[1]
        finally:
            stream.close()

    def _decode(self, start: int) -> Iterator[Tuple[int, np.ndarray]]:
        import imageio_ffmpeg

        stream = imageio_ffmpeg.read_frames(str(self.path), pix_fmt="rgb24", bits_per_pixel=24)
        try:
            width, height = next(stream)["size"]
            index = -1
            for index, raw in enumerate(stream):
                if index >= len(self):
                    return
                if index >= start:
                    yield index, np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3).copy()
            if index < len(self) - 1:
                raise RuntimeError(f"the stream ended after {index + 1} of {len(self)} frames")
        finally:
            stream.close()


def _iio():
    """imageio's v3 API, imported on first use (start-up pays only for what it reads)."""
    import imageio.v3

    return imageio.v3


class _ImageioSource(FrameSource):
    """Anything imageio reads (gifs; videos decord cannot open), read sequentially."""

    def __init__(self, path: Path, read_ahead: int) -> None:
        super().__init__(path, read_ahead)
        count = _iio().improps(path, index=None).n_images
        self._length = int(count) if count is not None and math.isfinite(count) else None

    def __len__(self) -> int:
        if self._length is None:  # no frame count in the metadata: count by decoding once
            self._length = sum(1 for _ in _iio().imiter(self.path))
        return self._length

    def names(self) -> List[str]:
        return [f"{i:05d}" for i in range(len(self))]

    def _load(self, index: int) -> np.ndarray:
        return _iio().imread(self.path, index=index)

    def _decode(self, start: int) -> Iterator[Tuple[int, np.ndarray]]:
        images = _iio().imiter(self.path)
        try:
            for index, image in enumerate(images):
                if index >= start:
                    yield index, image
        finally:
            images.close()


def open_frames(path: PathLike, read_ahead: int = 4) -> FrameSource:
    """Open a video file, a gif or a folder of JPEG/PNG frames for streaming.

    Video files are counted by decord and decoded by ffmpeg, falling back to imageio when
    decord cannot open them; gifs go through imageio. Raises ``PersamError`` when the path
    is missing, unreadable, an empty folder or a folder of frames with different sizes.
    """
    path = Path(path)
    if not path.exists():
        raise PersamError(f"video not found: {path}")
    if path.is_dir():
        return _FolderSource(path, read_ahead)
    if path.suffix.lower() == ".gif":
        backends = [_ImageioSource]
    else:
        backends = [_VideoFileSource, _ImageioSource]
    reasons = []
    for backend in backends:
        try:
            return backend(path, read_ahead)
        except Exception as error:
            reasons.append(error_line(error))
    raise PersamError(f"cannot open video {path}: unreadable or unsupported ({'; '.join(reasons)})")
