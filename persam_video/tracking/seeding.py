"""Seeding the tracker's objects from masks on one or more images (prompted frames, references).

An object may be shown on several images: frames of the clip where it was prompted and
reference images from outside the clip. The rules (docs/prompts.md):

- target embedding: each image's target (mean/2 + max/2 of the features under the mask, L2
  normalised) is computed on its own; an object shown once keeps it as it is, one shown on
  several images gets the mean of those normalised targets, normalised again (each image
  counts the same whatever its size); the plain mean embedding likewise, without normalising;
- the re-detection reference (the top confidence under the mask) and the quality gate's
  reference (SAM's predicted IoU with the mask's box prior) are the means over its images;
- PerSAM-F's two weights are fitted on all of its prompted frames of the clip together (one
  loss over all their pixels); an object shown only on references is fitted on those of the
  first reference's size.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Dict, Hashable, List, Sequence, Tuple, Union

import numpy as np
import torch

from .. import persam
from ..model.features import FeatureStore
from ..model.predictor import FramePredictor
from ..options import TrackerOptions
from .decode_objects import decode_objects
from .object_state import ObjectState, Timings


@dataclass
class SeedView:
    """One image on which objects are shown by masks: a prompted frame or a reference image.

    ``key`` names it in the feature store; ``image`` (RGB uint8, or a function that reads it) is
    encoded when the store does not hold ``key``."""

    masks: Dict[int, np.ndarray]
    key: Hashable
    image: Union[np.ndarray, Callable[[], np.ndarray], None] = None
    in_clip: bool = True
    size: Tuple[int, int] = field(init=False, default=(0, 0))

    def __post_init__(self) -> None:
        first = next(iter(self.masks.values()))
        self.size = tuple(first.shape[:2])


@dataclass
class Seeding:
    """What seeding works with: the predictor it decodes on, the feature store that encodes each
    image once, the tracker's options, and whether the flow prior is on (the decoder's prompts
    then differ as on a later frame)."""

    predictor: FramePredictor
    store: FeatureStore
    options: TrackerOptions
    flow: bool = False

    @property
    def device(self) -> torch.device:
        return self.predictor.device

    def show(self, view: SeedView) -> None:
        """Make ``view``'s image the predictor's current one, encoding it only when not stored."""
        self.predictor.use(self.store.get(view.key, view.image))


def fit_views(views: Sequence[SeedView], obj_id: int) -> List[SeedView]:
    """The images PerSAM-F's weights of ``obj_id`` are fitted on: its prompted frames, or else its
    references of the first reference's size."""
    mine = [v for v in views if obj_id in v.masks]
    in_clip = [v for v in mine if v.in_clip]
    if in_clip or not mine:
        return in_clip
    return [v for v in mine if v.size == mine[0].size]


def seed_objects(seeding: Seeding, views: Sequence[SeedView], ids: Sequence[int],
                 loaded: Dict[int, dict]) -> Tuple[List[ObjectState], Timings]:
    """Per-object state for ``ids`` from their masks on ``views``, and the fit and decoder time it
    took; ``loaded`` (id -> a record of :meth:`~persam_video.tracking.segmenter.VideoSegmenter.state_dict`)
    supplies targets and weights instead of computing them. The objects come back with no box prior: the
    caller places them."""
    device = seeding.device
    targets: Dict[int, List[persam.Target]] = {k: [] for k in ids}
    for view in views:
        seeding.show(view)
        for k in ids:
            if k in view.masks and k not in loaded and view.masks[k].any():
                targets[k].append(persam.target_embedding(seeding.predictor, view.masks[k],
                                                          seeding.options.target_mode))
    objects = []
    for k in ids:
        if k in loaded:
            record = loaded[k]
            objects.append(ObjectState(k, record["feature"].to(device), record["mean"].to(device),
                                       reference_similarity=float(record["reference_similarity"]),
                                       weights=None if record.get("weights") is None else record["weights"].to(device)))
        elif not targets[k]:
            warnings.warn(f"object {k} is empty in the seed mask: it will not be tracked")
            objects.append(ObjectState(k, None, None))
        else:
            objects.append(ObjectState(k, *persam.combine_targets(targets[k])))
    spent = Timings()
    _references(seeding, objects, views, loaded, spent)
    return objects, spent


def _place(objects: List[ObjectState], view: SeedView, rows: List[int], options) -> None:
    """Give the objects ``rows`` the box prior and anchor of their masks on ``view``."""
    for i in rows:
        objects[i].place(view.masks[objects[i].obj_id], options)


def _references(seeding: Seeding, objects: List[ObjectState], views: Sequence[SeedView],
                loaded: Dict[int, dict], spent: Timings) -> None:
    """The re-detection reference, PerSAM-F's fit and the quality gate's reference of every object."""
    opts = seeding.options
    similarity: Dict[int, List[float]] = {o.obj_id: [] for o in objects}
    fits: Dict[int, List[Tuple[torch.Tensor, torch.Tensor]]] = {o.obj_id: [] for o in objects}
    to_fit = {o.obj_id: fit_views(views, o.obj_id) for o in objects if opts.method == "persam-f"}
    for view in views:
        rows = [i for i, o in enumerate(objects) if o.obj_id in view.masks and o.feature is not None]
        if not rows:
            continue
        seeding.show(view)
        _place(objects, view, rows, opts)
        maps = persam.confidence_maps(seeding.predictor, torch.stack([objects[i].feature for i in rows]))
        for i, sim in zip(rows, maps):
            inside = torch.as_tensor(view.masks[objects[i].obj_id], device=sim.device)
            similarity[objects[i].obj_id].append(float(sim[inside].max()) if bool(inside.any()) else float(sim.max()))
        fit_here = [j for j, i in enumerate(rows) if objects[i].weights is None and objects[i].box is not None
                    and any(v is view for v in to_fit.get(objects[i].obj_id, []))]
        if fit_here:
            start = time.perf_counter()
            logits = _fit_logits(seeding, [objects[rows[j]] for j in fit_here], maps[fit_here])
            for j, row_logits in zip(fit_here, logits):
                obj_id = objects[rows[j]].obj_id
                fits[obj_id].append((row_logits, torch.as_tensor(view.masks[obj_id], device=seeding.device)))
            spent.fit += time.perf_counter() - start
    for obj in objects:
        if obj.obj_id not in loaded and similarity[obj.obj_id]:
            obj.reference_similarity = float(np.mean(similarity[obj.obj_id]))
    _fit(objects, fits, opts, spent)
    if opts.quality_gate > 0:
        _quality(seeding, objects, views, spent)
    for obj in objects:
        obj.unplace()


@torch.no_grad()
def _fit_logits(seeding: Seeding, objs: List[ObjectState], maps: torch.Tensor) -> torch.Tensor:
    """The decoder's three logits (N, 3, H, W) for the fit's prompt of each object of ``objs``: its top
    confidence point and its anchor, with its mask's box."""
    device = seeding.device
    points = persam.top_points(maps, 1)
    centres = torch.as_tensor(np.stack([o.anchor(seeding.options) for o in objs]), device=device)
    prompts = persam.Prompts(points=torch.cat((points, centres[:, None]), dim=1),
                             labels=torch.ones(len(objs), 2, device=device),
                             boxes=torch.as_tensor(np.stack([o.box for o in objs]), dtype=torch.float32, device=device))
    return persam.predict(seeding.predictor, prompts).logits


def _fit(objects: List[ObjectState], fits: Dict[int, List[Tuple[torch.Tensor, torch.Tensor]]], opts,
         spent: Timings) -> None:
    """Fit each object's weights on all its fit images at once: logits (3, *S), target (*S) with S
    (H, W) for one image or (F, H, W) for several; objects with the same S share one call."""
    groups: Dict[tuple, List[int]] = {}
    stacked: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = {}
    for obj_id, pairs in fits.items():
        if not pairs:
            continue
        if len(pairs) == 1:
            stacked[obj_id] = pairs[0]
        else:
            stacked[obj_id] = (torch.stack([p[0] for p in pairs], dim=1), torch.stack([p[1] for p in pairs]))
        groups.setdefault(tuple(stacked[obj_id][1].shape), []).append(obj_id)
    by_id = {o.obj_id: o for o in objects}
    for members in groups.values():
        start = time.perf_counter()
        logits = torch.stack([stacked[k][0] for k in members])
        target = torch.stack([stacked[k][1] for k in members])
        with torch.enable_grad():
            weights = persam.fit_scale_weights(logits, target, opts.fit_iterations, opts.fit_lr, mode=opts.fit_mode)
        for k, w in zip(members, weights):
            by_id[k].weights = w
        spent.fit += time.perf_counter() - start


@torch.no_grad()
def _quality(seeding: Seeding, objects: List[ObjectState], views: Sequence[SeedView],
             spent: Timings) -> None:
    """The quality gate's reference: each object decoded on its images as a later frame would be
    (their masks' box priors), SAM's predicted IoU averaged over them."""
    scores: Dict[int, List[float]] = {o.obj_id: [] for o in objects}
    for view in views:
        rows = [i for i, o in enumerate(objects) if o.obj_id in view.masks and o.feature is not None]
        _place(objects, view, rows, seeding.options)
        boxed = [j for j, i in enumerate(rows) if objects[i].box is not None]
        if not boxed:
            continue
        seeding.show(view)
        start = time.perf_counter()
        maps = persam.confidence_maps(seeding.predictor, torch.stack([objects[i].feature for i in rows]))
        rows = [rows[j] for j in boxed]
        result = decode_objects(seeding.predictor, [objects[i] for i in rows], maps[boxed], True, seeding.options,
                                objects if seeding.flow else None, gate=False)
        for i, score in zip(rows, result.scores.tolist()):
            scores[objects[i].obj_id].append(score)
        spent.decoder += time.perf_counter() - start
    for obj in objects:
        if scores[obj.obj_id]:
            obj.reference_quality = float(np.mean(scores[obj.obj_id]))
