"""Resuming a killed ``segment`` run: a progress file in the output folder, written after every frame.

``<out>/.persam-resume.pt`` (``torch.save``, written atomically after each frame's PNG) holds the
run's fingerprint (what decides its masks: the video, the prompts, the tracker options, the
model's weights, the direction, a loaded state) and :meth:`VideoSession.checkpoint` (the pass, the
frames done in it, the tracker's per-object state, tensors bit for bit). A rerun with the same
fingerprint continues after the last frame the file counts; its PNGs are byte-identical to an
uninterrupted run's (a frame written but not yet counted is written again, identically). A rerun
with another fingerprint is refused, naming what differs, unless it is told to restart.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from .errors import PersamError, error_line
from .io.files import atomic_write
from .io.frames import FrameSource
from .io.prompts import PromptSet
from .options import TrackerOptions

RESUME_NAME = ".persam-resume.pt"
RESUME_VERSION = 1
WHAT = {"video": "video", "prompts": "prompts", "options": "tracker options",
        "weights": "model (weights, precision, device)", "direction": "direction", "state": "loaded state"}


class ResumeMismatch(PersamError):
    """The output folder holds a run that differs from this one in ``differences`` (fingerprint keys)."""

    def __init__(self, folder: Path, differences: List[str]):
        self.folder = folder
        self.differences = differences
        super().__init__(self.describe("pass restart=True to start over"))

    def describe(self, how_to_restart: str) -> str:
        """The message, ending with how to start over (the command line names its flag)."""
        what = ", ".join(WHAT[d] for d in self.differences)
        return (f"{self.folder} holds an unfinished or finished run with other {what}; {how_to_restart}, "
                f"or choose another output folder")


def _digest(parts) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part if isinstance(part, bytes) else str(part).encode())
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def video_digest(source: FrameSource) -> str:
    """The video's path, length, frame size and names, and its files' sizes and modification times."""
    path = Path(source.path).resolve()
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    stats = [(f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file()]
    return _digest([path, len(source), source.size, source.names(), stats])


def prompts_digest(prompts: PromptSet) -> str:
    """Every prompt and reference, to the bit."""
    parts: list = []
    for p in sorted(prompts.prompts, key=lambda p: (p.frame, p.obj_id)):
        parts.append((p.frame, p.obj_id))
        for array in (p.points, p.labels, p.box):
            parts.append(b"-" if array is None else np.ascontiguousarray(array, dtype=np.float64).tobytes())
        parts.append(b"-" if p.mask is None
                     else np.packbits(np.asarray(p.mask, bool)).tobytes() + bytes(str(p.mask.shape), "ascii"))
    for r in prompts.references:
        parts.extend([r.obj_id, r.image.shape, np.ascontiguousarray(r.image).tobytes(),
                      np.packbits(np.asarray(r.mask, bool)).tobytes()])
    return _digest(parts)


def weights_digest(model: torch.nn.Module, samples: int = 4096) -> str:
    """The model's parameter and buffer names and shapes and up to ``samples`` evenly spaced values of
    each (enough to tell checkpoints apart without reading gigabytes), its modules' classes (the fast
    path builds some as its own; a class that computes as another gives that one's name in
    ``fingerprint_name``, :mod:`persam_video.model.rebuilding`), its precision and its device."""
    first = next(iter(model.parameters()), None)
    classes = [type(m) for m in model.modules()]
    parts: list = [[getattr(c, "fingerprint_name", c.__qualname__) for c in classes], getattr(model, "precision", None),
                   None if first is None else first.device.type]
    for name, value in list(model.state_dict().items()):
        # an int8-quantised layer (--quantize int8) keeps a dtype and a (weight, bias) pair of quantised tensors
        tensors = value if isinstance(value, tuple) else (value,)
        for tensor in tensors:
            if not isinstance(tensor, torch.Tensor):
                parts.extend([name, repr(tensor)])
                continue
            flat = (tensor.int_repr() if tensor.is_quantized else tensor).detach().flatten()
            step = max(1, flat.numel() // samples)
            parts.extend([name, tuple(tensor.shape), str(tensor.dtype),
                          flat[::step].cpu().contiguous().numpy().tobytes()])
    return _digest(parts)


def fingerprint(source: FrameSource, prompts: PromptSet, options: TrackerOptions, model: torch.nn.Module,
                direction: str, state: Optional[dict] = None) -> Dict[str, str]:
    """What decides a run's masks, one digest per item (see :data:`WHAT`)."""
    state_part = "-" if state is None else _digest([json.dumps(sorted(map(str, state.get("objects", {}))))] + [
        t.cpu().numpy().tobytes() for record in state.get("objects", {}).values()
        for t in record.values() if isinstance(t, torch.Tensor)])
    return {"video": video_digest(source), "prompts": prompts_digest(prompts),
            "options": _digest([json.dumps(asdict(options), sort_keys=True)]), "weights": weights_digest(model),
            "direction": direction, "state": state_part}


def resume_path(out_dir: os.PathLike) -> Path:
    """Where a run's progress file lives."""
    return Path(out_dir) / RESUME_NAME


def read_progress(out_dir: os.PathLike) -> Optional[dict]:
    """The progress file of ``out_dir``, or None when there is none."""
    path = resume_path(out_dir)
    if not path.is_file():
        return None
    try:
        progress = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PersamError(f"cannot read the progress file {path}: {error_line(exc)}") from None
    if not isinstance(progress, dict) or progress.get("version") != RESUME_VERSION:
        raise PersamError(f"{path} is not a progress file of this version")
    return progress


def check_progress(out_dir: os.PathLike, progress: dict, expected: Dict[str, str]) -> None:
    """Raise :class:`ResumeMismatch` when the saved run's fingerprint differs from ``expected``."""
    saved = progress.get("fingerprint", {})
    differences = [key for key in WHAT if saved.get(key) != expected.get(key)]
    if differences:
        raise ResumeMismatch(Path(out_dir), differences)


def write_progress(out_dir: os.PathLike, fingerprint_: Dict[str, str], checkpoint: dict, done: bool) -> None:
    """Save the run's progress atomically (after each frame)."""
    progress = {"version": RESUME_VERSION, "fingerprint": fingerprint_, "checkpoint": checkpoint, "done": done}
    path = resume_path(out_dir)
    try:
        atomic_write(path, lambda tmp: torch.save(progress, tmp))
    except OSError as exc:
        raise PersamError(f"cannot write {path}: {error_line(exc)}") from None


def remove_progress(out_dir: os.PathLike) -> None:
    """Forget a saved run (restart)."""
    try:
        resume_path(out_dir).unlink()
    except FileNotFoundError:
        pass
