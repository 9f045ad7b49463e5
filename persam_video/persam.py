"""The PerSAM / PerSAM-F method on one frame: stateless maths on a cached image embedding.

Everything here works on one frame's embedding and a batch of objects (see
../shared/design/persam-video.md, sections 1-6). The tracker owns the state across frames.
Shapes: ``N`` objects, frame ``H x W``, embedding grid ``g x g`` with ``C`` channels.
Points and boxes are (x, y) pixels of the original frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from .decoder_hooks import attention_bias, decoder_switches

MASK_VALUE = 215  # the public recipe writes the mask as this value in channel 0 of an RGB image


# --------------------------------------------------------------------------- seeding (section 1)
def mask_to_grid(predictor: SamPredictor, mask: np.ndarray) -> torch.Tensor:
    """Bring a binary (H, W) mask onto the embedding grid the way the image gets there.

    The mask is drawn as value 215 in channel 0 of an RGB image, resized with SAM's
    longest-side transform, normalised with SAM's channel-0 mean/std, zero-padded to the
    square input and bilinearly downsampled to the grid; a cell is foreground when the
    result is positive. Returns a bool (g, g) tensor.
    """
    model = predictor.model
    drawn = np.zeros(mask.shape + (3,), dtype=np.uint8)
    drawn[..., 0] = mask.astype(bool) * MASK_VALUE
    resized = predictor.transform.apply_image(drawn)[..., 0]
    channel = torch.as_tensor(resized, dtype=torch.float32, device=predictor.device)
    channel = (channel - model.pixel_mean[0, 0, 0]) / model.pixel_std[0, 0, 0]
    size = model.image_encoder.img_size
    padded = F.pad(channel, (0, size - channel.shape[1], 0, size - channel.shape[0]))
    grid = predictor.features.shape[-2:]
    down = F.interpolate(padded[None, None], size=tuple(grid), mode="bilinear")
    return down[0, 0] > 0


def mask_touched_cells(predictor: SamPredictor, mask: np.ndarray) -> torch.Tensor:
    """Grid cells that any pixel of the mask falls into (the fallback for tiny objects)."""
    grid_h, grid_w = predictor.features.shape[-2:]
    scale = predictor.model.image_encoder.img_size / max(mask.shape)
    cell = predictor.model.image_encoder.img_size / grid_h
    rows, cols = np.nonzero(mask)
    touched = torch.zeros((grid_h, grid_w), dtype=torch.bool, device=predictor.device)
    if rows.size == 0:
        return touched
    r = np.clip(((rows + 0.5) * scale / cell).astype(np.int64), 0, grid_h - 1)
    c = np.clip(((cols + 0.5) * scale / cell).astype(np.int64), 0, grid_w - 1)
    touched[torch.as_tensor(r, device=predictor.device), torch.as_tensor(c, device=predictor.device)] = True
    return touched


def centroid_cell(predictor: SamPredictor, mask: np.ndarray) -> torch.Tensor:
    """The single grid cell under the mask's centroid (last-resort fallback)."""
    grid_h, grid_w = predictor.features.shape[-2:]
    rows, cols = np.nonzero(mask)
    cy, cx = (rows.mean(), cols.mean()) if rows.size else (mask.shape[0] / 2, mask.shape[1] / 2)
    scale = predictor.model.image_encoder.img_size / max(mask.shape) / (predictor.model.image_encoder.img_size / grid_h)
    cell = torch.zeros((grid_h, grid_w), dtype=torch.bool, device=predictor.device)
    cell[min(int((cy + 0.5) * scale), grid_h - 1), min(int((cx + 0.5) * scale), grid_w - 1)] = True
    return cell


@dataclass
class Target:
    """One object's target embedding.

    ``feature``: the L2-normalised target feature t_k used for the confidence map;
    ``mean``: the plain mean feature before normalisation (for semantic prompting);
    ``cells``: how many grid cells it was taken from, and which rule chose them.
    """

    feature: torch.Tensor
    mean: torch.Tensor
    cells: int
    rule: str


def target_embedding(predictor: SamPredictor, mask: np.ndarray, mode: str = "mean-max") -> Target:
    """Target embedding of one object from the current image's features (section 1.3).

    ``mode`` is ``mean-max`` (mean/2 + max/2, the video recipe) or ``mean`` (the image
    recipe). Objects too small to own a grid cell fall back to the cells the mask
    touches, then to the centroid cell, so the result is never NaN.
    """
    feats = predictor.features[0].permute(1, 2, 0)  # g, g, C
    cells, rule = mask_to_grid(predictor, mask), "grid"
    if not bool(cells.any()):
        cells, rule = mask_touched_cells(predictor, mask), "touched"
    if not bool(cells.any()):
        cells, rule = centroid_cell(predictor, mask), "centroid"
    chosen = feats[cells]
    mean = chosen.mean(0)
    if mode == "mean-max":
        pooled = chosen.max(0).values / 2 + mean / 2
    elif mode == "mean":
        pooled = mean
    else:
        raise ValueError(f"unknown target mode {mode!r}")
    return Target(feature=F.normalize(pooled, dim=0), mean=mean, cells=int(cells.sum()), rule=rule)


# ------------------------------------------------------------------ confidence map (section 2)
def confidence_maps(predictor: SamPredictor, targets: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of each target (N, C) with every cell, at full frame size: (N, H, W)."""
    feats = F.normalize(predictor.features[0], dim=0)  # C, g, g
    c, gh, gw = feats.shape
    sim = (targets @ feats.reshape(c, gh * gw)).reshape(-1, 1, gh, gw)
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    sim = predictor.model.postprocess_masks(sim, predictor.input_size, predictor.original_size)
    return sim[:, 0]


def top_points(maps: torch.Tensor, k: int) -> torch.Tensor:
    """The k highest locations of each map as (x, y): (N, k, 2) float."""
    n, _, w = maps.shape
    flat = maps.reshape(n, -1).topk(k, dim=1).indices
    return torch.stack((flat % w, torch.div(flat, w, rounding_mode="floor")), dim=-1).float()


def lowest_point(maps: torch.Tensor) -> torch.Tensor:
    """The lowest location of each map as (x, y): (N, 1, 2) float (the optional negative point)."""
    n, _, w = maps.shape
    flat = maps.reshape(n, -1).argmin(dim=1, keepdim=True)
    return torch.stack((flat % w, torch.div(flat, w, rounding_mode="floor")), dim=-1).float()


# ------------------------------------------------------------------------ boxes (section 3)
def tight_box(mask: Union[np.ndarray, torch.Tensor]) -> Optional[np.ndarray]:
    """(cmin, rmin, cmax, rmax) of a binary mask, or None when it is empty."""
    mask = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else mask
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return np.array([cols[0], rows[0], cols[-1], rows[-1]], dtype=np.int64)


def widen_box(box: np.ndarray, margin: int, height: int, width: int) -> np.ndarray:
    """Widen a box by ``margin`` on every side and clamp it to [0, W] x [0, H]."""
    return np.array([max(box[0] - margin, 0), max(box[1] - margin, 0),
                     min(box[2] + margin, width), min(box[3] + margin, height)], dtype=np.int64)


def limit_box_growth(box: np.ndarray, previous: np.ndarray, factor: float) -> np.ndarray:
    """``box``, or ``previous`` when ``box`` has more than ``factor`` times its area.

    A mask that floods the background then cannot widen the next frame's box prior. Only the
    prompt is held: the masks themselves are not cut to the box."""
    def area(b: np.ndarray) -> float:
        return float(max(b[2] - b[0], 1) * max(b[3] - b[1], 1))

    return box if area(box) <= factor * area(previous) else np.asarray(previous, dtype=np.int64).copy()


def box_centre(box: np.ndarray) -> np.ndarray:
    """((x0 + x1) // 2, (y0 + y1) // 2) as a float point."""
    return np.array([(box[0] + box[2]) // 2, (box[1] + box[3]) // 2], dtype=np.float32)


def interior_point(mask: np.ndarray) -> Optional[np.ndarray]:
    """The mask's most interior pixel (largest Euclidean distance to the nearest pixel outside
    it) as a float (x, y) point, or None when the mask is empty.

    Unlike a box centre, it lies on the object whatever its shape (a ring's box centre is in
    its hole, a crescent's beside it)."""
    box = tight_box(mask)
    if box is None:
        return None
    x0, y0, x1, y1 = box
    crop = np.pad(np.asarray(mask[y0:y1 + 1, x0:x1 + 1], dtype=np.uint8), 1)  # outside the crop is outside
    distance = cv2.distanceTransform(crop, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return np.array([x0 + x - 1, y0 + y - 1], dtype=np.float32)


def box_mask(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H, W) bool: True inside each (x0, y0, x1, y1) box of ``boxes`` (N, 4), edges included."""
    ys = torch.arange(height, device=boxes.device)[None, :, None]
    xs = torch.arange(width, device=boxes.device)[None, None, :]
    b = boxes.long()[:, :, None, None]
    return (xs >= b[:, 0]) & (xs <= b[:, 2]) & (ys >= b[:, 1]) & (ys <= b[:, 3])


def tight_boxes(masks: torch.Tensor) -> List[Optional[np.ndarray]]:
    """Tight boxes of a batch of binary masks (N, H, W), vectorised; None for empty masks."""
    rows_any = masks.any(dim=2)
    cols_any = masks.any(dim=1)
    boxes: List[Optional[np.ndarray]] = []
    h, w = masks.shape[1:]
    ar_h = torch.arange(h, device=masks.device)
    ar_w = torch.arange(w, device=masks.device)
    big = max(h, w) + 1
    rmin = torch.where(rows_any, ar_h, big).min(1).values
    rmax = torch.where(rows_any, ar_h, -1).max(1).values
    cmin = torch.where(cols_any, ar_w, big).min(1).values
    cmax = torch.where(cols_any, ar_w, -1).max(1).values
    stacked = torch.stack((cmin, rmin, cmax, rmax), dim=1).cpu().numpy()
    for i, present in enumerate(rows_any.any(dim=1).tolist()):
        boxes.append(stacked[i].astype(np.int64) if present else None)
    return boxes


# ---------------------------------------------------------------------- decoding (section 4)
@dataclass
class Prompts:
    """Batched prompts for N objects: points (N, P, 2) with labels (N, P); boxes (N, 4) or None."""

    points: torch.Tensor
    labels: torch.Tensor
    boxes: Optional[torch.Tensor] = None


@dataclass
class Decoded:
    """One batched decoder pass: scores (N, 3) and low-res logits (N, 3, h, w).

    Full-resolution logits are made on demand with SAM's own post-processing
    (upsample to the padded input, crop, resize to the frame), only for the masks asked for.
    """

    scores: torch.Tensor
    low_res: torch.Tensor
    predictor: SamPredictor

    def upscale(self, low_res: torch.Tensor) -> torch.Tensor:
        """SAM's post-processing of low-res logits (N, K, h, w) -> (N, K, H, W)."""
        p = self.predictor
        return p.model.postprocess_masks(low_res, p.input_size, p.original_size)

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
    """The image-recipe options (section 4), applied to the first decoder pass only."""

    guided_attention: bool = False
    semantic_prompt: bool = False


def predict(predictor: SamPredictor, prompts: Prompts, mask_input: Optional[torch.Tensor] = None,
            attention_maps: Optional[torch.Tensor] = None,
            target_means: Optional[torch.Tensor] = None) -> Decoded:
    """One batched prompt-encoder + mask-decoder pass on the cached embedding, multimask.

    ``attention_maps`` (N, H, W) and ``target_means`` (N, C) turn on target-guided
    attention and target-semantic prompting for this pass.
    """
    transform = predictor.transform
    size = predictor.original_size
    points = transform.apply_coords_torch(prompts.points, size)
    boxes = None if prompts.boxes is None else transform.apply_boxes_torch(prompts.boxes.float(), size)
    bias = None if attention_maps is None else attention_bias(attention_maps, predictor.features.shape[-2:])
    model = predictor.model
    with decoder_switches(model.mask_decoder, bias, target_means):
        sparse, dense = model.prompt_encoder(points=(points, prompts.labels), boxes=boxes, masks=mask_input)
        low_res, scores = model.mask_decoder(
            image_embeddings=predictor.features, image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=True)
    return Decoded(scores=scores, low_res=low_res, predictor=predictor)


def largest_mask(logits: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """Index of the largest of each object's masks (N, 3, H, W) -> (N,).

    Areas are counted as 64-bit integers (the public code counts in uint8 and wraps at 256).
    """
    return (logits > threshold).flatten(2).sum(-1, dtype=torch.int64).argmax(dim=1)


def _box_tensor(boxes: Sequence[Optional[np.ndarray]], fallback: torch.Tensor) -> torch.Tensor:
    """Boxes as a (N, 4) tensor, taking the fallback row where a box is missing."""
    rows = [fallback[i] if b is None else torch.as_tensor(b, dtype=torch.float32, device=fallback.device)
            for i, b in enumerate(boxes)]
    return torch.stack(rows)


class Decoding(NamedTuple):
    """The result of one frame's cascade for a batch of objects."""

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

    def result(self) -> Decoding:
        return Decoding(self.logits, self.found, self.scores)


def decode_persam(predictor: SamPredictor, prompts: Prompts, switches: Switches = Switches(),
                  attention_maps: Optional[torch.Tensor] = None,
                  target_means: Optional[torch.Tensor] = None, clip_to_box: bool = False) -> Decoding:
    """Training-free PerSAM on one frame for a batch of objects (section 4).

    Returns full-resolution logits (N, H, W) (``-inf`` where an object is absent), a bool
    (N,) telling which objects were found and the predicted IoU of each kept mask. With
    ``clip_to_box`` (not in the public recipe) every pass's mask is cut to the box prompt.
    """
    first = predict(predictor, prompts,
                    attention_maps=attention_maps if switches.guided_attention else None,
                    target_means=target_means if switches.semantic_prompt else None)
    cascade = _cascade(prompts, first, clip_to_box)
    full = cascade.cut(first.logits)
    choice = largest_mask(full, predictor.model.mask_threshold)
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


def _cascade(prompts: Prompts, first: Decoded, clip_to_box: bool) -> Cascade:
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


# ----------------------------------------------------------------------- PerSAM-F (section 5)
def fuse(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(1 - w1 - w2) * L0 + w1 * L1 + w2 * L2 for logits (N, 3, ...) and weights (N, 2)."""
    full = torch.cat((1 - weights.sum(dim=1, keepdim=True), weights), dim=1)
    shape = full.shape + (1,) * (logits.dim() - 2)
    return (logits * full.reshape(shape)).sum(dim=1)


def decode_persam_f(predictor: SamPredictor, prompts: Prompts, weights: torch.Tensor,
                    switches: Switches = Switches(), attention_maps: Optional[torch.Tensor] = None,
                    target_means: Optional[torch.Tensor] = None, clip_to_box: bool = False) -> Decoding:
    """PerSAM-F on one frame for a batch of objects (section 5). Same returns and ``clip_to_box``
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


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss per object with +1 smoothing, on sigmoid(logits): (N,)."""
    prob = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    return 1 - (2 * (prob * target).sum(-1) + 1) / (prob.sum(-1) + target.sum(-1) + 1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss per object, mean over pixels: (N,)."""
    logits, target = logits.flatten(1), target.flatten(1)
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return (alpha_t * ce * (1 - p_t) ** gamma).mean(1)


def fit_scale_weights(logits: Union[torch.Tensor, Callable[[], torch.Tensor]], target: torch.Tensor,
                      iterations: int = 800, lr: float = 4e-4) -> torch.Tensor:
    """Fit PerSAM-F's two scale weights per object: returns (N, 2).

    ``logits`` is either the cached (N, 3, H, W) full-resolution logits, or a callable that
    recomputes them (the public recipe re-runs the decoder every iteration; with SAM frozen
    and fixed prompts both give the same result). Objects are fitted jointly: Adam's update
    is element-wise and the losses are summed, so this equals N separate fits.
    """
    target = target.float()
    n = target.shape[0]
    weights = torch.nn.Parameter(torch.full((n, 2), 1 / 3, device=target.device))
    optimizer = torch.optim.AdamW([weights], lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    for _ in range(iterations):
        current = logits() if callable(logits) else logits
        fused = fuse(current, weights)
        loss = (dice_loss(fused, target) + focal_loss(fused, target)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return weights.detach()


# ---------------------------------------------------------------- several objects (section 6)
def label_map(logits: torch.Tensor, ids: Sequence[int]) -> np.ndarray:
    """Label each pixel with the id of the object whose logit is largest, 0 where none is positive."""
    if logits.shape[0] == 0:
        raise ValueError("label_map needs at least one object")
    best, which = logits.max(dim=0)
    lut = torch.as_tensor(list(ids), dtype=torch.uint8, device=logits.device)
    labels = torch.where(best > 0, lut[which], torch.zeros_like(which, dtype=torch.uint8))
    return labels.cpu().numpy()
