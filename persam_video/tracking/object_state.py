"""What the tracker keeps per object between frames, how a mask places an object, and state files."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Union

import numpy as np
import torch

from .. import persam
from ..errors import PersamError, error_line
from ..io.files import atomic_write
from ..options import TrackerOptions

STATE_VERSION = 1


@dataclass
class ObjectState:
    """What the tracker remembers about one object between frames."""

    obj_id: int
    feature: Optional[torch.Tensor]  # L2-normalised target embedding (C,); None: nothing to track
    mean: Optional[torch.Tensor]  # mean embedding before normalisation (C,)
    reference_similarity: float = 1.0  # top confidence on the seed frame
    reference_quality: float = 0.0  # SAM's predicted IoU for the object on the seed frame
    weights: Optional[torch.Tensor] = None  # PerSAM-F scale weights (2,)
    box: Optional[np.ndarray] = None  # widened box of the last mask (x0, y0, x1, y1)
    interior: Optional[np.ndarray] = None  # the last mask's most interior pixel (x, y)
    missing: int = 0  # frames since the object was last seen
    lead: Optional[np.ndarray] = None  # with flow: the carried mask's most interior pixel (x, y) on this frame
    memory: List[torch.Tensor] = field(default_factory=list)  # targets kept from confident frames
    areas: List[int] = field(default_factory=list)  # the mask's area on the last frames (target memory's rule)
    since_kept: int = 0  # frames since a target was last kept

    def place(self, mask: np.ndarray, options: TrackerOptions) -> None:
        """Put the object where ``mask`` (H, W) has it, as a prompt does: box prior, anchor, seen."""
        h, w = mask.shape
        box = persam.tight_box(mask)
        self.box = None if box is None else persam.widen_box(box, options.margin, h, w)
        if options.anchor == "interior":
            self.interior = persam.interior_point(mask)
        self.missing = 0

    def unplace(self) -> None:
        """Forget where the object was (no box prior): the state before a pass's first prompt."""
        self.box, self.interior, self.missing, self.lead = None, None, 0, None

    def anchor(self, options: TrackerOptions) -> np.ndarray:
        """The extra positive point given with the box prompt (see ``TrackerOptions.anchor``)."""
        if self.lead is not None:
            return self.lead
        if options.anchor == "interior" and self.interior is not None:
            return self.interior
        return persam.box_centre(self.box)

    # ------------------------------------------------------------- saved and restored
    def place_record(self) -> dict:
        """Where the object is (box prior, anchor, frames missing): what changes per frame."""
        return {"box": None if self.box is None else [int(v) for v in self.box],
                "interior": None if self.interior is None else [float(v) for v in self.interior],
                "missing": self.missing}

    def load_place(self, record: dict) -> None:
        """Put back what :meth:`place_record` gave."""
        self.box = None if record["box"] is None else np.array(record["box"], dtype=np.int64)
        self.interior = None if record["interior"] is None else np.array(record["interior"], dtype=np.float32)
        self.missing = int(record["missing"])

    def record(self) -> dict:
        """Everything the tracker keeps of the object (tensors on the CPU), its place included;
        :meth:`from_record` restores it bit for bit."""
        def cpu(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t.cpu()

        return {"obj_id": self.obj_id, "feature": cpu(self.feature), "mean": cpu(self.mean),
                "weights": cpu(self.weights), "reference_similarity": self.reference_similarity,
                "reference_quality": self.reference_quality, "memory": [t.cpu() for t in self.memory],
                "areas": list(self.areas), "since_kept": self.since_kept, **self.place_record()}

    @classmethod
    def from_record(cls, record: dict, device: torch.device) -> "ObjectState":
        """The object :meth:`record` gave, its tensors on ``device``."""
        def on(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if t is None else t.to(device)

        made = cls(record["obj_id"], on(record["feature"]), on(record["mean"]),
                   reference_similarity=record["reference_similarity"],
                   reference_quality=record["reference_quality"], weights=on(record["weights"]),
                   memory=[on(t) for t in record.get("memory", [])], areas=list(record.get("areas", [])),
                   since_kept=int(record.get("since_kept", 0)))
        made.load_place(record)
        return made


@dataclass
class Timings:
    """Seconds spent per stage, summed over frames."""

    frames: int = 0
    encoder: float = 0.0
    decoder: float = 0.0
    fit: float = 0.0


def save_state(state: dict, path: Union[str, Path]) -> None:
    """Write a fitted state (a segmenter's ``state_dict()``) to ``path`` atomically."""
    try:
        atomic_write(path, lambda tmp: torch.save(state, tmp))
    except OSError as exc:
        raise PersamError(f"cannot write state file {path}: {exc.strerror or exc}") from None


def load_state(path: Union[str, Path]) -> dict:
    """Read a state file written by :func:`save_state`."""
    path = Path(path)
    if not path.is_file():
        raise PersamError(f"state file not found: {path}")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise PersamError(f"cannot read state file {path}: {error_line(exc)}") from None
