"""PerSAM and PerSAM-F on photos: one or more reference photos personalise SAM, which then finds
those objects in any other photo (the public image recipe, docs/photos.md)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Union

import numpy as np
import torch

from .. import persam
from ..errors import PersamError, check_size
from ..model.predictor import FramePredictor
from ..options import FIT_MODES, option
from ..persam.fit import fit_on_passes
from ..persam.lattice import LATTICE_PIXELS
from .presence import AUTO, presence_value

PHOTO_METHODS = ("persam", "persam-f")
FitProgress = Callable[[int, float], None]  # (object id, fraction of its fit done)


@dataclass
class PhotoOptions:
    """What the photo recipe computes; the defaults are the public image scripts'."""

    method: str = option("persam", "persam: training-free (persam.py); persam-f: two scale weights fitted on "
                                   "the references (persam_f.py)", choices=PHOTO_METHODS)
    fit_iterations: int = option(1000, "PerSAM-F fitting iterations", metavar="N", type=int)
    fit_lr: float = option(1e-3, "PerSAM-F fitting learning rate (AdamW, cosine schedule)", metavar="LR",
                           type=float)
    fit_mode: str = option(
        "exact", "PerSAM-F fit: 'exact' takes the loss over every pixel (the public recipe); 'fast' over a lattice "
                 f"of at most {LATTICE_PIXELS} pixels, each standing for its block: the same time on any photo size",
        choices=FIT_MODES)
    presence: Union[float, str] = option(
        0.0, "not in the public recipe: count an object as absent from a photo (empty mask) when its peak "
             "target similarity there is below R times its peak on the reference(s) (e.g. 0.8; 0: off); auto: "
             "the threshold from the collection's own similarities (Otsu's, per object; images only)",
        metavar="R|auto", type=str)

    def __post_init__(self) -> None:
        if self.method not in PHOTO_METHODS:
            raise PersamError(f"the photo method must be persam or persam-f, not {self.method!r}")
        if self.fit_iterations < 0:
            raise PersamError(f"the fit iterations must be 0 or more, not {self.fit_iterations}")
        if not self.fit_lr > 0:
            raise PersamError(f"the fit learning rate must be positive, not {self.fit_lr}")
        if self.fit_mode not in FIT_MODES:
            raise PersamError(f"the fit mode must be exact or fast, not {self.fit_mode!r}")
        self.presence = presence_value(self.presence)


@dataclass
class PhotoReference:
    """An object shown on a reference photo: RGB uint8 ``image``, (H, W) bool ``mask``; ``value`` is
    the mask file's channel 0 as the public scripts read it (it decides which grid cells count as
    the object; None: the video recipe's drawn value)."""

    image: np.ndarray
    mask: np.ndarray
    obj_id: int = 1
    value: Optional[np.ndarray] = None


@dataclass
class ObjectOnPhoto:
    """One object on one photo: its mask, SAM's predicted IoU, the peak target similarity, found."""

    obj_id: int
    mask: np.ndarray
    score: float
    similarity: float
    found: bool


@dataclass
class PhotoResult:
    """One photo: the (H, W) uint8 label map (the objects' ids) and each object's result."""

    labels: np.ndarray
    objects: List[ObjectOnPhoto] = field(default_factory=list)


class ImagePersonalizer:
    """Personalise SAM on ``references`` (several per object allowed), then :meth:`segment` photos.
    ``on_progress(object id, fraction)`` hears PerSAM-F's fit advance; ``fit_seconds`` is its time."""

    def __init__(self, model: torch.nn.Module, references: Sequence[PhotoReference],
                 options: Optional[PhotoOptions] = None, on_progress: Optional[FitProgress] = None) -> None:
        if not references:
            raise PersamError("no reference: give at least one reference photo and its mask")
        self.options = options or PhotoOptions()
        self.predictor = FramePredictor(model)
        self._references = self.predictor.store(capacity=max(1, len(references)))
        self.ids = sorted({r.obj_id for r in references})
        mode = "mean" if self.options.method == "persam" else "mean-max"
        targets: Dict[int, List[persam.Target]] = {k: [] for k in self.ids}
        for ref in references:
            check_size(f"the reference mask of object {ref.obj_id}", ref.mask.shape, ref.image.shape,
                       "its photo is")
            if not ref.mask.any():
                raise PersamError(f"the reference mask of object {ref.obj_id} is empty")
            self._show(ref)
            targets[ref.obj_id].append(persam.target_embedding(self.predictor, ref.mask, mode, ref.value))
        combined = [persam.combine_targets(targets[k]) for k in self.ids]
        self.features = torch.stack([f for f, _ in combined])
        self.means = torch.stack([m for _, m in combined])
        self.reference_peak = self._reference_peaks(references)
        began = time.perf_counter()
        self.weights = self._fit(references, on_progress) if self.options.method == "persam-f" else None
        self.fit_seconds = time.perf_counter() - began
        self._references.retain()

    def _show(self, ref: PhotoReference) -> None:
        """Make ``ref``'s photo the predictor's image, encoding each photo once (several objects of one
        photo share it; targets, peaks and the fit each need it)."""
        self.predictor.use(self._references.get(id(ref.image), ref.image))

    def state(self) -> dict:
        """What :meth:`segment` needs (targets, weights, options), to build the same personalizer in
        another process with :meth:`from_state` without fitting again."""
        return {"ids": list(self.ids), "features": self.features.cpu(), "means": self.means.cpu(),
                "reference_peak": self.reference_peak.cpu(), "options": self.options,
                "weights": None if self.weights is None else self.weights.cpu()}

    @classmethod
    def from_state(cls, model: torch.nn.Module, state: dict) -> "ImagePersonalizer":
        """A personalizer from :meth:`state` on ``model`` (the same weights as where it was made)."""
        made = cls.__new__(cls)
        made.options = state["options"]
        made.predictor = FramePredictor(model)
        device = made.predictor.device
        made.ids = list(state["ids"])
        made.features, made.means = state["features"].to(device), state["means"].to(device)
        made.reference_peak = state["reference_peak"]
        made.weights = None if state["weights"] is None else state["weights"].to(device)
        return made

    def _reference_peaks(self, references: Sequence[PhotoReference]) -> torch.Tensor:
        """Each object's peak similarity inside its mask, averaged over its references."""
        peaks: Dict[int, List[float]] = {k: [] for k in self.ids}
        for ref in references:
            self._show(ref)
            row = self.ids.index(ref.obj_id)
            sim = persam.confidence_maps(self.predictor, self.features[row:row + 1])[0]
            peaks[ref.obj_id].append(float(sim[torch.as_tensor(ref.mask, device=sim.device)].max()))
        return torch.tensor([float(np.mean(peaks[k])) for k in self.ids])

    @torch.no_grad()
    def _fit(self, references: Sequence[PhotoReference], on_progress: Optional[FitProgress]) -> torch.Tensor:
        """PerSAM-F's two weights per object, fitted on its references of the first one's size: the
        prompt is the top point of each reference's own similarity map, one positive point."""
        weights = []
        for row, k in enumerate(self.ids):
            mine = [r for r in references if r.obj_id == k]
            mine = [r for r in mine if r.mask.shape == mine[0].mask.shape]
            passes, targets = [], []
            for ref in mine:
                self._show(ref)
                maps = persam.confidence_maps(self.predictor, self.features[row:row + 1])
                prompts = persam.Prompts(persam.top_points(maps, 1), torch.ones(1, 1, device=maps.device))
                passes.append(persam.predict(self.predictor, prompts))
                targets.append(torch.as_tensor(ref.mask, device=maps.device)[None])
            told = None if on_progress is None else (lambda fraction, k=k: on_progress(k, fraction))
            weights.append(fit_on_passes(passes, targets, self.options.fit_iterations, self.options.fit_lr,
                                         self.options.fit_mode, told)[0])
        return torch.stack(weights)

    @torch.no_grad()
    def segment(self, image: np.ndarray) -> PhotoResult:
        """Every object on ``image`` (RGB uint8): masks, scores, found, and the label map."""
        self.predictor.set_image(image)
        maps = persam.confidence_maps(self.predictor, self.features)
        n = len(self.ids)
        device = maps.device
        if self.options.method == "persam":
            points = torch.cat((persam.top_points(maps, 1), persam.lowest_point(maps)), dim=1)
            labels = torch.tensor([[1.0, 0.0]], device=device).expand(n, 2)
            result = persam.decode_persam(self.predictor, persam.Prompts(points, labels), persam.Switches(True, True),
                                          maps, self.means, single_first=True)
        else:
            prompts = persam.Prompts(persam.top_points(maps, 1), torch.ones(n, 1, device=device))
            result = persam.decode_persam_f(self.predictor, prompts, self.weights)
        peaks = maps.flatten(1).max(dim=1).values
        ratio = 0.0 if self.options.presence == AUTO else float(self.options.presence)  # auto: decided later
        found = result.found & (peaks >= self.reference_peak.to(device) * ratio)
        logits = torch.where(found[:, None, None], result.logits, torch.full_like(result.logits, float("-inf")))
        label_map = persam.label_map(logits, self.ids)
        objects = [ObjectOnPhoto(k, label_map == k, float(result.scores[i]) if bool(found[i]) else 0.0,
                                 float(peaks[i]), bool(found[i]) and bool((label_map == k).any()))
                   for i, k in enumerate(self.ids)]
        return PhotoResult(label_map, objects)
