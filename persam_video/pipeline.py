"""Reader -> tracker -> writer for one video: the job behind ``persam-video segment``."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import numpy as np

from tqdm.auto import tqdm

from .errors import PersamError
from .frames import FrameSource, open_frames
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


@dataclass
class VideoJob:
    """A checked video run: frames, seed, output folder. Build it with :func:`prepare_job`."""

    source: FrameSource
    seed: np.ndarray
    ids: List[int]
    writer: LabelWriter
    start: int = 0


def prepare_job(video: Union[str, os.PathLike], mask: Union[str, os.PathLike], out_dir: Union[str, os.PathLike],
                objects: Optional[Sequence[int]] = None, start: int = 0, read_ahead: int = 4) -> VideoJob:
    """Open and check every input (video, mask, ids, start frame, output folder) before any model work."""
    source = open_frames(video, read_ahead=read_ahead)
    total = len(source)
    if not 0 <= start < total:
        raise PersamError(f"the start frame {start} is outside the video, which has {total} frames (0..{total - 1})")
    seed, ids = read_seed(mask, source.size, objects)
    return VideoJob(source=source, seed=seed, ids=ids, writer=LabelWriter(out_dir), start=start)


def run_job(job: VideoJob, segmenter: VideoSegmenter, state: Optional[dict] = None, progress: bool = True,
            desc: str = "segmenting") -> RunSummary:
    """Seed ``segmenter`` on the start frame and write every later frame's labels.

    The start frame's PNG is the seed itself (restricted to the chosen objects). Every PNG is
    written atomically, so a failure part-way leaves only complete files behind.
    """
    began = time.perf_counter()
    total = len(job.source)
    first = job.source.read(job.start)
    job.writer.write(first.name, segmenter.init(first.image, job.seed, job.ids, state=state))
    with tqdm(total=total - job.start, initial=1, unit="frame", desc=desc, disable=not progress,
              dynamic_ncols=True) as bar:
        for _ in _labelled(segmenter, job.source.frames(job.start + 1), job.writer):
            bar.update(1)
    seconds = time.perf_counter() - began
    t = segmenter.timings
    return RunSummary(frames=job.writer.written, objects=job.ids, seconds=seconds, encoder=t.encoder,
                      decoder=t.decoder, fit=t.fit,
                      reading_writing=max(seconds - t.encoder - t.decoder - t.fit, 0.0))


def _labelled(segmenter: VideoSegmenter, frames, writer: LabelWriter):
    """Step the segmenter over ``frames``, writing each label map as it comes."""
    for frame in frames:
        labels = segmenter.step(frame.image)
        writer.write(frame.name, labels)
        yield frame.index, labels
