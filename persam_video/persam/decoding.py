"""The decoder cascade of PerSAM and PerSAM-F on one frame, batched over objects.

Every pass prompts SAM's decoder on the frame's cached image embedding
(:func:`predict`, three masks per object); :func:`decode_persam` and
:func:`decode_persam_f` chain three passes (the first prompt, then refinements with the
kept mask's logits and its tight box) and keep each object's last non-empty mask.
:func:`label_map` resolves several objects into one label map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple

import numpy as np
import torch

from ..model.guided_decoder import Guide
from ..model.predictor import FramePredictor
from ..model.upscaling import postprocess
from .geometry import attention_bias, box_mask, tight_boxes


@dataclass
class Prompts:
    """Batched prompts for N objects: points (N, P, 2) with labels (N, P); boxes (N, 4) or None."""

    points: torch.Tensor
    labels: torch.Tensor
    boxes: Optional[torch.Tensor] = None


@dataclass
class PassOutput:
    """What one batched multimask decoder pass gives: scores (N, 3) and low-res logits (N, 3, h, w).

    Full-resolution logits are made on demand with SAM's post-processing (upsample to the padded
    input, crop, resize to the frame; :mod:`.upscaling` skips the padding's share, bit for bit the
    same), only for the masks asked for.
    """

    scores: torch.Tensor
    low_res: torch.Tensor
    predictor: FramePredictor

    def upscale(self, low_res: torch.Tensor) -> torch.Tensor:
        """SAM's post-processing of low-res logits (N, K, h, w) -> (N, K, H, W)."""
        p = self.predictor
        return postprocess(p.model, low_res, p.input_size, p.original_size)

    @property
    def logits(self) -> torch.Tensor:
        """Full-resolution logits of all three masks: (N, 3, H, W)."""
        return self.upscale(self.low_res)

    def take(self, choice: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """One mask per object: full-res logits (N, H, W) and low-res logits (N, 1, h, w)."""
        idx = torch.arange(choice.shape[0], device=choice.device)
        low = self.low_res[idx, choice][:, None]
        return self.upscale(low)[:, 0], low

    def best(self) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each object's best-scored mask: full-res logits (N, H, W), low-res logits
        (N, 1, h, w) and its predicted IoU (N,)."""
        score, choice = self.scores.max(dim=1)
        full, low = self.take(choice)
        return full, low, score


@dataclass
class Switches:
    """The image-recipe options, applied to the first decoder pass only."""

    guided_attention: bool = False
    semantic_prompt: bool = False


def predict(predictor: FramePredictor, prompts: Prompts, mask_input: Optional[torch.Tensor] = None,
            attention_maps: Optional[torch.Tensor] = None,
            target_means: Optional[torch.Tensor] = None, multimask: bool = True) -> PassOutput:
    """One batched prompt-encoder + mask-decoder pass on the cached embedding: SAM's three masks,
    or with ``multimask`` off its single-mask output (one mask per object).

    ``attention_maps`` (N, H, W) and ``target_means`` (N, C) turn on target-guided
    attention and target-semantic prompting for this pass (the decoder's guide,
    :mod:`persam_video.model.guided_decoder`).
    """
    transform = predictor.transform
    size = predictor.original_size
    points = transform.apply_coords_torch(prompts.points, size)
    boxes = None if prompts.boxes is None else transform.apply_boxes_torch(prompts.boxes.float(), size)
    bias = None if attention_maps is None else attention_bias(attention_maps, predictor.features.shape[-2:])
    guide = None if bias is None and target_means is None else Guide(bias, target_means)
    low_res, scores = predictor.decode(points, prompts.labels, boxes, mask_input, multimask, guide=guide)
    return PassOutput(scores=scores, low_res=low_res, predictor=predictor)


def largest_mask(logits: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Index of the largest of each object's masks (N, 3, H, W) -> (N,).

    Areas are counted exactly (the public code counts in uint8 and wraps at 256): bytes summed
    into 32-bit integers (enough for any frame below 2**31 pixels; four times faster than
    summing the bool mask, which converts every pixel to 64 bits first).
    """
    return (logits > threshold).view(torch.uint8).flatten(2).sum(-1, dtype=torch.int32).argmax(dim=1)


def _box_tensor(boxes: Sequence[Optional[np.ndarray]], fallback: torch.Tensor) -> torch.Tensor:
    """Boxes as a (N, 4) tensor, taking the fallback row where a box is missing."""
    rows = [fallback[i] if b is None else torch.as_tensor(b, dtype=torch.float32, device=fallback.device)
            for i, b in enumerate(boxes)]
    return torch.stack(rows)


class CascadeResult(NamedTuple):
    """What a frame's cascade of passes kept for a batch of objects (:class:`Cascade`)."""

    logits: torch.Tensor  # (N, H, W) full-resolution logits, -inf where an object was not found
    found: torch.Tensor  # (N,) bool
    scores: torch.Tensor  # (N,) SAM's predicted IoU of the kept mask (0 where not found)


class Cascade:
    """Keeps, per object, the last non-empty result of a cascade of decoder passes.

    With ``region`` (N, H, W) bool, every pass's mask is first cut to it (``-inf`` outside), so
    what is kept, and the tight boxes the next passes are prompted with, stay inside it."""

    def __init__(self, n: int, size: Tuple[int, int], device: torch.device,
                 region: Optional[torch.Tensor] = None):
        self.region = region
        self.logits = torch.full((n,) + tuple(size), float("-inf"), device=device)
        self.scores = torch.zeros(n, device=device)
        self.active = torch.ones(n, dtype=torch.bool, device=device)
        self.found = torch.zeros(n, dtype=torch.bool, device=device)

    def update(self, logits: torch.Tensor, scores: torch.Tensor) -> None:
        """Accept ``logits`` (and their predicted IoU ``scores``) for the still-active objects
        whose mask is non-empty; stop the others."""
        logits = self.cut(logits)
        nonempty = (logits > 0).flatten(1).any(dim=1)
        take = self.active & nonempty
        self.logits[take] = logits[take]
        self.scores[take] = scores[take].to(self.scores.dtype)
        self.found |= take
        self.active &= nonempty

    def cut(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits`` (N, ..., H, W) with ``-inf`` outside the region (unchanged without one)."""
        if self.region is None:
            return logits
        region = self.region.reshape(self.region.shape[:1] + (1,) * (logits.dim() - 3) + self.region.shape[1:])
        return logits.masked_fill(~region, float("-inf"))

    def result(self) -> CascadeResult:
        return CascadeResult(self.logits, self.found, self.scores)


def decode_persam(predictor: FramePredictor, prompts: Prompts, switches: Switches = Switches(),
                  attention_maps: Optional[torch.Tensor] = None,
                  target_means: Optional[torch.Tensor] = None, clip_to_box: bool = False,
                  single_first: bool = False) -> CascadeResult:
    """Training-free PerSAM on one frame for a batch of objects.

    Returns full-resolution logits (N, H, W) (``-inf`` where an object is absent), a bool
    (N,) telling which objects were found and the predicted IoU of each kept mask. The first
    pass keeps the largest of SAM's three masks (video recipe) or, with ``single_first``, SAM's
    single-mask output (image recipe). With ``clip_to_box`` (not in the public recipe) every
    pass's mask is cut to the box prompt.
    """
    first = predict(predictor, prompts,
                    attention_maps=attention_maps if switches.guided_attention else None,
                    target_means=target_means if switches.semantic_prompt else None, multimask=not single_first)
    cascade = _cascade(prompts, first, clip_to_box)
    full = cascade.cut(first.logits)
    choice = torch.zeros(full.shape[0], dtype=torch.long, device=full.device) if single_first else \
        largest_mask(full, predictor.model.mask_threshold)
    rows = torch.arange(choice.shape[0], device=choice.device)
    logits = full[rows, choice]
    low = first.low_res[rows, choice][:, None]
    cascade.update(logits, first.scores[rows, choice])

    no_box = Prompts(prompts.points, prompts.labels, None)
    logits, low, score = predict(predictor, no_box, mask_input=low).best()
    cascade.update(logits, score)

    boxes = _box_tensor(tight_boxes(cascade.logits > 0), fallback=_fallback_boxes(prompts, logits))
    logits, _, score = predict(predictor, Prompts(prompts.points, prompts.labels, boxes), mask_input=low).best()
    cascade.update(logits, score)
    return cascade.result()


def _cascade(prompts: Prompts, first: PassOutput, clip_to_box: bool) -> Cascade:
    """A cascade for the objects of ``first``, cut to their box prompts with ``clip_to_box``."""
    size = tuple(first.predictor.original_size)
    region = box_mask(prompts.boxes, *size) if clip_to_box and prompts.boxes is not None else None
    return Cascade(first.low_res.shape[0], size, first.low_res.device, region)


def _fallback_boxes(prompts: Prompts, like: torch.Tensor) -> torch.Tensor:
    """Boxes to use for objects that have no mask (their results are ignored anyway)."""
    if prompts.boxes is not None:
        return prompts.boxes.float()
    h, w = like.shape[-2:]
    return torch.tensor([0.0, 0.0, float(w), float(h)], device=like.device).expand(like.shape[0], 4)


# ------------------------------------------------------------------------ PerSAM-F
def fuse(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(1 - w1 - w2) * L0 + w1 * L1 + w2 * L2 for logits (N, 3, ...) and weights (N, 2)."""
    full = torch.cat((1 - weights.sum(dim=1, keepdim=True), weights), dim=1)
    shape = full.shape + (1,) * (logits.dim() - 2)
    return (logits * full.reshape(shape)).sum(dim=1)


def decode_persam_f(predictor: FramePredictor, prompts: Prompts, weights: torch.Tensor,
                    switches: Switches = Switches(), attention_maps: Optional[torch.Tensor] = None,
                    target_means: Optional[torch.Tensor] = None, clip_to_box: bool = False) -> CascadeResult:
    """PerSAM-F on one frame for a batch of objects. Same returns and ``clip_to_box``
    as :func:`decode_persam` (the fused first mask's score is the same weighted sum of the three
    scores)."""
    first = predict(predictor, prompts,
                    attention_maps=attention_maps if switches.guided_attention else None,
                    target_means=target_means if switches.semantic_prompt else None)
    # Post-processing is linear (bilinear resizes and a crop), so upscaling the fused low-res
    # logits equals fusing the three full-res logits (to float rounding) at a third of the cost.
    cascade = _cascade(prompts, first, clip_to_box)
    low = fuse(first.low_res, weights)[:, None]
    fused = cascade.cut(first.upscale(low)[:, 0])
    empty = ~(fused > 0).flatten(1).any(dim=1)
    score = fuse(first.scores, weights)
    if bool(empty.any()):
        best, _, best_score = first.best()
        fused = torch.where(empty[:, None, None], cascade.cut(best), fused)
        score = torch.where(empty, best_score, score)
    cascade.update(fused, score)

    for _ in range(2):
        boxes = _box_tensor(tight_boxes(cascade.logits > 0), fallback=_fallback_boxes(prompts, fused))
        logits, low, score = predict(predictor, Prompts(prompts.points, prompts.labels, boxes), mask_input=low).best()
        cascade.update(logits, score)
    return cascade.result()


# ----------------------------------------------------------------- several objects
def label_map(logits: torch.Tensor, ids: Sequence[int]) -> np.ndarray:
    """Label each pixel with the id of the object whose logit is largest, 0 where none is positive."""
    if logits.shape[0] == 0:
        raise ValueError("label_map needs at least one object")
    best, which = logits.max(dim=0)
    lut = torch.as_tensor(list(ids), dtype=torch.uint8, device=logits.device)
    labels = torch.where(best > 0, lut[which], torch.zeros_like(which, dtype=torch.uint8))
    return labels.cpu().numpy()
