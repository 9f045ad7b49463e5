"""Reader -> tracker -> writer for one video: the job behind ``persam-video segment``."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from tqdm.auto import tqdm

from .errors import PersamError
from .frames import FrameSource
from .masks import read_seed
from .tracker import VideoSegmenter
from .writer import LabelWriter


@dataclass
class RunSummary:
    """What one video run did and where the time went (seconds)."""

    frames: int
    objects: Sequence[int]
    seconds: float
    encoder: float
    decoder: float
    fit: float
    reading_writing: float

    def line(self) -> str:
        """A one-line human summary."""
        fps = self.frames / self.seconds if self.seconds > 0 else float("inf")
        return (f"{self.frames} frames, {len(self.objects)} object(s) [{','.join(map(str, self.objects))}] "
                f"in {self.seconds:.1f}s ({fps:.2f} frames/s): image encoder {self.encoder:.1f}s, "
                f"prompting+decoding {self.decoder:.1f}s, PerSAM-F fit {self.fit:.1f}s, "
                f"reading+writing {self.reading_writing:.1f}s")


def segment_video(source: FrameSource, seed_mask: Union[str, os.PathLike], out_dir: Union[str, os.PathLike],
                  segmenter: VideoSegmenter, objects: Optional[Sequence[int]] = None, start: int = 0,
                  state: Optional[dict] = None, progress: bool = True, desc: str = "segmenting") -> RunSummary:
    """Seed ``segmenter`` on frame ``start`` of ``source`` and write every later frame's labels.

    The start frame's PNG is the seed itself (restricted to the chosen objects). Every PNG is
    written atomically, so a failure part-way leaves only complete files behind.
    """
    began = time.perf_counter()
    total = len(source)
    if not 0 <= start < total:
        raise PersamError(f"--start {start} is outside the video, which has {total} frames (0..{total - 1})")
    seed, ids = read_seed(seed_mask, source.size, objects)
    writer = LabelWriter(out_dir)
    first = source.read(start)
    writer.write(first.name, segmenter.init(first.image, seed, ids, state=state))
    with tqdm(total=total - start, initial=1, unit="frame", desc=desc, disable=not progress,
              dynamic_ncols=True) as bar:
        for index, labels in _labelled(segmenter, source.frames(start + 1), writer):
            bar.update(1)
    seconds = time.perf_counter() - began
    t = segmenter.timings
    return RunSummary(frames=writer.written, objects=ids, seconds=seconds, encoder=t.encoder,
                      decoder=t.decoder, fit=t.fit,
                      reading_writing=max(seconds - t.encoder - t.decoder - t.fit, 0.0))


def _labelled(segmenter: VideoSegmenter, frames, writer: LabelWriter):
    """Step the segmenter over ``frames``, writing each label map as it comes."""
    for frame in frames:
        labels = segmenter.step(frame.image)
        writer.write(frame.name, labels)
        yield frame.index, labels
