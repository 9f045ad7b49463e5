"""Target memory: more targets per object, kept from frames where its mask was confident, so an
object whose look changes along the clip is still recognised; the seed's target is never dropped."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .. import persam
from ..model.predictor import FramePredictor
from ..options import TrackerOptions
from .object_state import ObjectState

KEEP_EVERY = 5  # frames at least between two kept targets of an object
AREA_FRAMES = 5  # the last frames whose mask areas define a steady size
AREA_TOLERANCE = 1.3  # a steady size: within this factor of the median of those areas
QUALITY = 0.9  # a confident mask: SAM's predicted IoU at least this share of the seed frame's


def object_maps(predictor: FramePredictor, objects: Sequence[ObjectState]) -> torch.Tensor:
    """Each object's confidence map on the current frame (N, H, W): its best similarity among the
    seed's target and its kept ones (only the seed's without a memory: the recipe)."""
    if not any(o.memory for o in objects):
        return persam.confidence_maps(predictor, torch.stack([o.feature for o in objects]))
    targets = [t for o in objects for t in (o.feature, *o.memory)]
    return persam.confidence_maps(predictor, torch.stack(targets), [1 + len(o.memory) for o in objects])


def keep_targets(predictor: FramePredictor, objects: Sequence[ObjectState], labels: np.ndarray,
                 scores: Sequence[float], options: TrackerOptions) -> None:
    """After a frame the ``objects`` were decoded on (the predictor still holds its features): keep a
    target of each object whose mask is confident and of a steady size, at most one every
    ``KEEP_EVERY`` frames and ``options.target_memory`` in all (the oldest kept one goes first)."""
    for obj, score in zip(objects, scores):
        mask = labels == obj.obj_id
        area = int(np.count_nonzero(mask))
        obj.since_kept += 1
        recent = obj.areas
        steady = len(recent) >= 3 and area > 0 and \
            1 / AREA_TOLERANCE <= area / max(float(np.median(recent)), 1.0) <= AREA_TOLERANCE
        obj.areas = (recent + [area])[-AREA_FRAMES:] if area else []
        if steady and score >= QUALITY * obj.reference_quality and obj.since_kept >= KEEP_EVERY:
            target = persam.target_embedding(predictor, mask, options.target_mode)
            obj.memory = (obj.memory + [target.feature])[-options.target_memory:]
            obj.since_kept = 0
