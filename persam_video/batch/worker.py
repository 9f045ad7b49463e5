"""One worker: loads the model once, then segments clips one after another with it.

The same :class:`ClipWorker` runs in the command's own process, in a local pool's processes and
in a Ray actor, so every executor writes the same files. It writes where it runs: the clip's PNGs
(each atomic) and, after the last one, the clip's resume marker. A clip that fails is an
:class:`~persam_video.batch.summary.Outcome` with its reason, never an exception: one bad clip
does not stop the worker.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..errors import PersamError, error_line
from ..io.prompts import PromptSet, Reference, load_prompts, mask_prompts, references_from_files
from ..model.loading import ModelSpec
from ..options import TrackerOptions
from ..pipeline import RunSummary, segment_video
from ..runtime.memory import keep_freed_memory
from ..runtime.system import set_threads
from .manifest import ClipTask
from .markers import clear_partial, write_marker
from .summary import DONE, FAILED, Outcome


@dataclass(frozen=True)
class WorkerSpec:
    """What every worker of a run shares: the model, the tracker options, torch's thread count (None:
    the CPUs free of other work, at most CPUs // ``workers``), frames decoded ahead, (image, mask)
    reference files for all clips, and how many workers run at once."""

    model: ModelSpec
    options: TrackerOptions
    threads: Optional[int] = None
    read_ahead: int = 4
    references: Tuple[Tuple[str, str], ...] = ()
    workers: int = 1


@dataclass(frozen=True)
class WorkItem:
    """One clip handed to a worker: the task, the settings its marker records, and which try this is."""

    task: ClipTask
    settings: Dict[str, object]
    attempt: int = 1


def describe(error: BaseException) -> str:
    """A failure's reason on one line: a PersamError's own message, else the type and first line."""
    if isinstance(error, PersamError):
        return error_line(error)
    return f"{type(error).__name__}: {error_line(error)}"


class ClipWorker:
    """Holds one loaded model; :meth:`run` segments one clip into its output folder."""

    def __init__(self, spec: WorkerSpec, progress: bool = False) -> None:
        self.spec = spec
        self.progress = progress
        set_threads(spec.threads, spec.workers)
        keep_freed_memory()
        self.model = spec.model.load(progress=progress)
        self._references: Optional[List[Reference]] = None

    def run(self, item: WorkItem) -> Outcome:
        """Segment ``item``'s clip from scratch and write its marker; failures come back as outcomes."""
        began = time.perf_counter()
        task = item.task
        try:
            summary = self._segment(task)
            record = {"sequence": task.name, "frames": summary.frames, "seconds": round(summary.seconds, 3),
                      "objects": [int(k) for k in summary.objects], "method": self.spec.options.method,
                      "model_type": self.spec.model.model_type, "checkpoint": self.spec.model.checkpoint,
                      "settings": item.settings, "encoder": round(summary.encoder, 3),
                      "decoder": round(summary.decoder, 3), "fit": round(summary.fit, 3)}
            write_marker(Path(task.out), record)
        except Exception as exc:  # a bad clip is reported, and the worker goes on with the next one
            return Outcome(task.name, FAILED, seconds=time.perf_counter() - began, attempts=item.attempt,
                           error=describe(exc))
        return Outcome(task.name, DONE, frames=summary.frames, objects=tuple(int(k) for k in summary.objects),
                       seconds=time.perf_counter() - began, attempts=item.attempt, line=summary.line())

    def _segment(self, task: ClipTask) -> RunSummary:
        clear_partial(Path(task.out))  # a retried clip starts from nothing
        if task.prompts:
            prompts, direction = load_prompts(task.prompts), "both"
        elif task.mask:
            # a mask alone runs forward from its frame; with the batch's references, both ways
            prompts = mask_prompts(task.mask, task.start, task.objects)
            direction = "both" if self.spec.references else "forward"
        elif self.spec.references:
            prompts, direction = PromptSet([], []), "both"
        else:
            raise PersamError("no prompt: the clip has no mask or prompts file, and the batch no reference")
        prompts.references.extend(self.references())
        return segment_video(task.video, task.out, prompts, self.spec.options, self.model, direction=direction,
                             resume=False, read_ahead=self.spec.read_ahead, progress=self.progress, desc=task.name)

    def references(self) -> List[Reference]:
        """The batch's references, read once per worker."""
        if self._references is None:
            self._references = load_references(self.spec.references)
        return self._references


def load_references(pairs: Sequence[Tuple[str, str]]) -> List[Reference]:
    """(image, mask) files as references: one per object id of each mask (ids from the mask; the
    sizes checked, a mask without objects refused)."""
    return [reference for image_path, mask_path in pairs
            for reference in references_from_files(image_path, mask_path)]
