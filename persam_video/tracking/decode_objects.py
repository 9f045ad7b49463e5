"""Decoding tracked objects on the current frame: their prompts from their state (top points, box
prior and anchor, negatives), the PerSAM or PerSAM-F cascade, and the re-detection and quality gates.

Both the segmenter (every frame) and seeding (the quality gate's reference) decode through
:func:`decode_objects`, so neither calls the other.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import numpy as np
import torch

from .. import persam
from ..model.predictor import FramePredictor
from ..options import TrackerOptions
from .follow import negative_points, within_boxes
from .object_state import ObjectState


def decode_objects(predictor: FramePredictor, objs: List[ObjectState], maps: torch.Tensor, with_box: bool,
                   options: TrackerOptions, flowing_with: Optional[Sequence[ObjectState]] = None,
                   gate: bool = True) -> persam.CascadeResult:
    """Decode ``objs`` together on the predictor's current image, their confidence maps ``maps``;
    ``with_box`` prompts their box priors. ``flowing_with`` (with the flow prior: every tracked
    object) adds the other objects' carried anchors as negative points. With ``gate``, objects that
    fail the re-detection or quality gate get ``-inf`` logits (not found)."""
    opts = options
    device = predictor.device
    boxes = torch.as_tensor(np.stack([o.box for o in objs]), dtype=torch.float32, device=device) \
        if with_box else None
    flowing = boxes is not None and flowing_with is not None  # the flow prior's points: see follow.py
    chosen_from = within_boxes(maps, boxes) if flowing else maps
    points = [persam.top_points(chosen_from, opts.topk)]
    if with_box:
        centres = np.stack([o.anchor(opts) for o in objs])
        points.append(torch.as_tensor(centres, device=device)[:, None])
    n_pos = sum(p.shape[1] for p in points)
    labels = [torch.ones(len(objs), n_pos, device=device)]
    if opts.negative_point:
        points.append(persam.lowest_point(maps))
        labels.append(torch.zeros(len(objs), 1, device=device))
    negatives = negative_points(objs, flowing_with, device) if flowing else None
    if negatives is not None:
        points.append(negatives[0])
        labels.append(negatives[1])
    prompts = persam.Prompts(torch.cat(points, dim=1), torch.cat(labels, dim=1), boxes)
    switches = persam.Switches(opts.guided_attention, opts.semantic_prompt)
    means = torch.stack([o.mean for o in objs]) if opts.semantic_prompt else None
    if opts.method == "persam-f":
        weights = torch.stack([o.weights if o.weights is not None
                               else torch.full((2,), 1 / 3, device=device) for o in objs])
        result = persam.decode_persam_f(predictor, prompts, weights, switches, maps, means,
                                        clip_to_box=opts.box_clip)
    else:
        result = persam.decode_persam(predictor, prompts, switches, maps, means, clip_to_box=opts.box_clip)
    if not gate:
        return result
    rejected = torch.zeros(len(objs), dtype=torch.bool, device=device)
    if not with_box or flowing_with is not None:
        # re-detection: accept only where the target is clearly there (with flow, in the box prior too,
        # so that an object that left is not painted on what the carried mask lies on)
        top = chosen_from.flatten(1).max(dim=1).values
        needed = torch.tensor([o.reference_similarity * opts.redetect_ratio for o in objs], device=device)
        rejected |= top < needed
    if opts.quality_gate > 0:
        needed = torch.tensor([o.reference_quality * opts.quality_gate for o in objs], device=device)
        rejected |= result.scores < needed
    result.logits[rejected] = float("-inf")
    return persam.CascadeResult(result.logits, result.found & ~rejected, result.scores)
