"""Where on the frame: masks on the embedding grid, target embeddings, confidence maps,
points and boxes.

Shapes: ``N`` objects, frame ``H x W``, embedding grid ``g x g`` with ``C`` channels.
Points and boxes are (x, y) pixels of the original frame.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..model.predictor import FramePredictor
from ..model.upscaling import postprocess

MASK_VALUE = 215  # the public recipe writes the mask as this value in channel 0 of an RGB image


# ------------------------------------------------------------------------- seeding
def mask_to_grid(predictor: FramePredictor, mask: np.ndarray, value: Optional[np.ndarray] = None) -> torch.Tensor:
    """Bring a binary (H, W) mask onto the embedding grid the way the image gets there.

    The mask is drawn in channel 0 of an RGB image (as 215, the video recipe's value, or as
    ``value``, the (H, W) uint8 channel 0 of a mask file as the image recipe reads it), resized
    with SAM's longest-side transform, normalised with SAM's channel-0 mean/std, zero-padded to
    the square input and bilinearly downsampled to the grid; a cell is foreground when the
    result is positive. Returns a bool (g, g) tensor.
    """
    model = predictor.model
    drawn = np.zeros(mask.shape + (3,), dtype=np.uint8)
    drawn[..., 0] = mask.astype(bool) * MASK_VALUE if value is None else np.where(mask, value, 0)
    resized = predictor.transform.apply_image(drawn)[..., 0]
    channel = torch.as_tensor(resized, dtype=torch.float32, device=predictor.device)
    channel = (channel - model.pixel_mean[0, 0, 0]) / model.pixel_std[0, 0, 0]
    size = model.image_encoder.img_size
    padded = F.pad(channel, (0, size - channel.shape[1], 0, size - channel.shape[0]))
    grid = predictor.features.shape[-2:]
    down = F.interpolate(padded[None, None], size=tuple(grid), mode="bilinear")
    return down[0, 0] > 0


def mask_touched_cells(predictor: FramePredictor, mask: np.ndarray) -> torch.Tensor:
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


def centroid_cell(predictor: FramePredictor, mask: np.ndarray) -> torch.Tensor:
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


def target_embedding(predictor: FramePredictor, mask: np.ndarray, mode: str = "mean-max",
                     value: Optional[np.ndarray] = None) -> Target:
    """Target embedding of one object from the current image's features.

    ``mode`` is ``mean-max`` (mean/2 + max/2, the video recipe) or ``mean`` (the image
    recipe); ``value``: see :func:`mask_to_grid`. Objects too small to own a grid cell fall
    back to the cells the mask touches, then to the centroid cell, so the result is never NaN.
    """
    feats = predictor.features[0].permute(1, 2, 0)  # g, g, C
    cells, rule = mask_to_grid(predictor, mask, value), "grid"
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


def combine_targets(targets: List[Target]) -> "tuple[torch.Tensor, torch.Tensor]":
    """(feature, mean) of an object shown on several images: the mean of the normalised features,
    normalised again (each image counts the same whatever its size), and the mean of the means."""
    if len(targets) == 1:
        return targets[0].feature, targets[0].mean
    feature = F.normalize(torch.stack([t.feature for t in targets]).mean(0), dim=0)
    return feature, torch.stack([t.mean for t in targets]).mean(0)


# ------------------------------------------------------------------ confidence map
def confidence_maps(predictor: FramePredictor, targets: torch.Tensor,
                    groups: Optional[Sequence[int]] = None) -> torch.Tensor:
    """Cosine similarity of each target (N, C) with every cell, at full frame size: (N, H, W).

    With ``groups`` (counts summing to N) each group of consecutive targets gives one map, the
    best similarity among them per cell (an object known by several targets)."""
    feats = F.normalize(predictor.features[0], dim=0)  # C, g, g
    c, gh, gw = feats.shape
    sim = (targets @ feats.reshape(c, gh * gw)).reshape(-1, 1, gh, gw)
    if groups is not None:
        sim = torch.stack([part.max(dim=0).values for part in sim.split(list(groups))])
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    sim = postprocess(predictor.model, sim, predictor.input_size, predictor.original_size)
    return sim[:, 0]


def attention_bias(maps: torch.Tensor, grid: tuple) -> torch.Tensor:
    """Target-guided attention's bias from full-resolution confidence maps (N, H, W): (N, 1, 1, g*g).

    Standardise each map (mean 0, unbiased std 1), resize bilinearly to the grid, sigmoid."""
    flat = maps.flatten(1)
    standard = (maps - flat.mean(1)[:, None, None]) / flat.std(1)[:, None, None]
    small = F.interpolate(standard[:, None], size=tuple(grid), mode="bilinear")
    return small.sigmoid().flatten(1)[:, None, None, :]


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


# --------------------------------------------------------------------------- boxes
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
