"""Reader -> tracker -> writer for one video: :func:`segment_video`, the one way every command runs a video,
and :func:`write_frames`, its frame loop, which the page's Track runs too.

It runs a :class:`~persam_video.io.prompts.PromptSet` (clicks, boxes, masks on any frames,
references) through a :class:`~persam_video.tracking.session.VideoSession`, in one direction or both,
writes one label PNG per frame, and resumes a killed run (:mod:`persam_video.resume_file`).
"""
from __future__ import annotations

import copy
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Callable, ContextManager, Iterator, Optional, Sequence, Union

from tqdm.auto import tqdm

from . import resume_file
from .io.files import remove_temporaries
from .io.frames import FrameSource, open_frames
from .io.prompts import PromptSet
from .io.writer import LabelWriter
from .io.writer import write_behind as behind
from .options import TrackerOptions
from .runtime.system import adjust_threads
from .tracking.object_state import save_state
from .tracking.session import FrameResult, VideoSession


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
    resumed: int = 0  # frames an earlier, interrupted run of the same job had written
    numerics: str = ""  # how the model and the fit computed (run_numerics)

    def line(self) -> str:
        """A one-line human summary."""
        fps = self.frames / self.seconds if self.seconds > 0 else float("inf")
        return (f"{self.frames} frames, {len(self.objects)} object(s) [{','.join(map(str, self.objects))}] "
                f"in {self.seconds:.1f}s ({fps:.2f} frames/s): image encoder {self.encoder:.1f}s, "
                f"prompting+decoding {self.decoder:.1f}s, PerSAM-F fit {self.fit:.1f}s, "
                f"reading+writing {self.reading_writing:.1f}s" +
                (f"; {self.numerics}" if self.numerics else "") +
                (f"; resumed after {self.resumed} frames written before" if self.resumed else ""))


def segment_video(video: Union[str, os.PathLike, FrameSource], out_dir: Union[str, os.PathLike], prompts: PromptSet,
                  options: TrackerOptions, model, *, direction: str = "both", resume: bool = True,
                  restart: bool = False, read_ahead: int = 4, progress: bool = True, state: Optional[dict] = None,
                  state_out: Optional[Union[str, os.PathLike]] = None, desc: str = "segmenting",
                  write_behind: bool = True) -> RunSummary:
    """Segment ``video`` (a path, or a source :func:`~persam_video.io.frames.open_frames` opened) from
    ``prompts`` and write ``<out_dir>/<frame name>.png`` for every frame reached
    (forward from the earliest prompted frame, then, with ``direction="both"``, backward to frame 0).

    Everything is checked before anything is written. With ``resume``, progress is saved after every
    frame (:mod:`persam_video.resume_file`) and a run of the same job killed part-way continues after its last
    counted frame, byte-identical to an uninterrupted run; a folder holding a run with other inputs is
    refused (:class:`~persam_video.resume_file.ResumeMismatch`) unless ``restart``. ``state`` (from
    :func:`persam_video.tracking.object_state.load_state`) supplies fitted targets and weights; ``state_out`` is
    where the fitted state is saved (:func:`persam_video.tracking.object_state.save_state`) after the run. With
    ``write_behind`` the PNGs (and the progress after each) are written on a background thread while the next frame is
    tracked (:class:`~persam_video.io.writer.WriteBehind`): the same files, and a frame's progress is saved
    only once its PNG is in place."""
    began = time.perf_counter()
    source = video if isinstance(video, FrameSource) else open_frames(video, read_ahead=read_ahead)
    session = VideoSession(model, source, options)
    session.add_prompt_set(prompts)  # the one check of the prompts against the video
    expected = resume_file.fingerprint(source, prompts, options, model, direction, state) if resume else {}
    saved = resume_file.read_progress(out_dir) if resume and not restart else None
    if saved is not None:
        resume_file.check_progress(out_dir, saved, expected)
    writer = behind(LabelWriter(out_dir), write_behind)
    remove_temporaries(out_dir)
    if restart or not resume:
        resume_file.remove_progress(out_dir)
    ids = session.object_ids
    if saved is not None and saved["done"]:
        return RunSummary(0, ids, time.perf_counter() - began, 0.0, 0.0, 0.0, 0.0, resumed=_counted(saved),
                          numerics=run_numerics(model, options))
    resumed = 0 if saved is None else _counted(saved)
    first = session.start_frame
    total = {"both": len(source), "forward": len(source) - first, "backward": first + 1}.get(direction, 0)
    try:
        with tqdm(total=total, initial=resumed, unit="frame", desc=desc, disable=not progress,
                  dynamic_ncols=True) as bar:
            results = session.propagate(direction, state=state, resume=None if saved is None else saved["checkpoint"])
            adjust_threads()
            # the frame counts as done once its PNG is in place (the writer calls ``then`` after the rename);
            # the checkpoint is copied as the frame comes, as the session moves on while the writer catches up
            then = (lambda result: partial(resume_file.write_progress, out_dir, expected,
                                           copy.deepcopy(session.checkpoint()), False)) if resume else None
            for _ in write_frames(results, writer, then):
                bar.update(1)
                adjust_threads()
        writer.close()
    except BaseException:
        writer.abort()  # the frames already handed to the writer are finished (and counted), no temporary stays
        raise
    if resume:
        resume_file.write_progress(out_dir, expected, session.checkpoint(), done=True)
    if state_out is not None:
        save_state(session.segmenter.state_dict(), state_out)
    seconds = time.perf_counter() - began
    t = session.segmenter.timings
    return RunSummary(frames=writer.written, objects=ids, seconds=seconds, encoder=t.encoder, decoder=t.decoder,
                      fit=t.fit, reading_writing=max(seconds - t.encoder - t.decoder - t.fit, 0.0), resumed=resumed,
                      numerics=run_numerics(model, options))


def write_frames(results: Iterator[FrameResult], writer, then: Optional[Callable[[FrameResult], Callable]] = None,
                 guard: ContextManager = nullcontext(), stop: Callable[[], bool] = lambda: False
                 ) -> Iterator[FrameResult]:
    """Each frame of a session's ``propagate`` handed to ``writer`` (``then(result)``: what the writer
    calls once its PNG is in place), yielded after; the one frame loop of ``segment_video`` and the
    page's Track. ``guard`` is held while the next frame is tracked (the page's model lock) and
    ``stop()`` is asked between frames (the page's cancel)."""
    while not stop():
        with guard:
            result = next(results, None)
        if result is None:
            return
        writer.write(result.name, result.labels, then=None if then is None else then(result))
        yield result


def run_numerics(model, options: TrackerOptions) -> str:
    """The summary's words for the path a run took: the model's numerics, the fit's where it fits, and
    how long the encoder's compile took where it was compiled."""
    from .model.compiling import compile_note

    words = getattr(model, "numerics", "")
    if options.method == "persam-f":
        words += f", {options.fit_mode} fit"
    note = compile_note(model)
    return f"{words} ({note})" if note else words


def _counted(saved: dict) -> int:
    """Frames a saved run had written."""
    return int(saved["checkpoint"]["written"])
