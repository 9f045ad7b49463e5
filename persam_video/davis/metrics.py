"""The DAVIS 2017 region (J) and contour (F) measures and their per-object statistics.

Every function follows the official DAVIS 2017 definitions (see ``docs/davis.md``) to the
last digit; the one deliberate difference is the decay bins, which are integers here where
the official code wraps them through uint8. Measures work on stacks of binary masks shaped
(n_frames, H, W) and give one value per frame.
"""
from __future__ import annotations

import warnings
from typing import Optional, Tuple

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

BOUND_TH = 0.008


def _as_stack(masks: np.ndarray) -> np.ndarray:
    """A boolean (n_frames, H, W) view of one mask or a stack of masks."""
    masks = np.asarray(masks, dtype=bool)
    return masks[None] if masks.ndim == 2 else masks


def j_measure(results: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """Region similarity |R ∩ G| / |R ∪ G| per frame; 1 where both masks are empty."""
    results, gts = _as_stack(results), _as_stack(gts)
    inter = np.count_nonzero(results & gts, axis=(1, 2))
    union = np.count_nonzero(results | gts, axis=(1, 2))
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """The one-pixel boundary of a binary mask (or of each mask of a stack).

    A pixel is on the boundary when it differs from its right, lower or lower-right
    neighbour; on the last row only the right neighbour counts, on the last column
    only the lower one, and the bottom-right pixel is never a boundary.
    """
    m = np.asarray(mask, dtype=bool)
    b = np.zeros_like(m)
    core = m[..., :-1, :-1]
    b[..., :-1, :-1] = (core != m[..., :-1, 1:]) | (core != m[..., 1:, :-1]) | (core != m[..., 1:, 1:])
    b[..., -1, :-1] = m[..., -1, :-1] != m[..., -1, 1:]
    b[..., :-1, -1] = m[..., :-1, -1] != m[..., 1:, -1]
    return b


def disk_radius(height: int, width: int, bound_th: float = BOUND_TH) -> int:
    """The F tolerance in pixels: ceil(bound_th * diagonal), 8 for 480x854."""
    return int(np.ceil(bound_th * np.linalg.norm((height, width))))


def disk_kernel(radius: int) -> np.ndarray:
    """The uint8 disk of the pixels with dx² + dy² <= radius²."""
    d = np.arange(-radius, radius + 1)
    return (d[:, None] ** 2 + d[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def dilate_stack(maps: np.ndarray, radius: int) -> np.ndarray:
    """Dilate every (H, W) map of a boolean stack by a disk, in one OpenCV call.

    The frames are laid one under the other with ``radius`` empty rows between
    them, so no frame can reach into the next.
    """
    n, h, w = maps.shape
    padded = np.zeros((n, h + radius, w), dtype=np.uint8)
    padded[:, :h] = maps
    dilated = cv2.dilate(padded.reshape(n * (h + radius), w), disk_kernel(radius))
    return dilated.reshape(n, h + radius, w)[:, :h].astype(bool)


def support_window(masks: np.ndarray) -> Tuple[slice, slice, slice]:
    """The smallest window of a (n_frames, H, W) stack holding every boundary pixel.

    The box of the masks' pixels over all frames is grown by one pixel on each side
    (inside the image): the boundary maps of the window equal those of the full
    frames there, the full frames have no boundary outside it, and no mask pixel
    lies outside it. J and F of the window are J and F of the frames (give F the
    radius of the full frames).
    """
    _, h, w = masks.shape
    footprint = masks.any(axis=0)
    rows = np.flatnonzero(footprint.any(axis=1))
    if rows.size == 0:
        return slice(None), slice(0, 1), slice(0, 1)
    cols = np.flatnonzero(footprint.any(axis=0))
    return (slice(None), slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)),
            slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w)))


def _spans(flags: np.ndarray) -> Tuple[np.ndarray, int]:
    """Per row of (n_frames, L) flags: the start of a window of one common length
    covering its set entries, and that length."""
    size = flags.shape[1]
    first = flags.argmax(axis=1)
    last = size - 1 - flags[:, ::-1].argmax(axis=1)
    length = int((last - first + 1)[flags.any(axis=1)].max(initial=1))
    return np.minimum(first, size - length), length


def frame_windows(a: np.ndarray, b: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Cut each frame of two (n_frames, H, W) stacks to a window holding all its set pixels.

    Every frame gets its own box (moved inside the frame where needed), all of one
    size, so the stacks stay stacks; counts and disk dilations restricted to the
    windows equal those of the full frames.
    """
    both = a | b
    top, height = _spans(both.any(axis=2))
    left, width = _spans(both.any(axis=1))
    frames = np.arange(len(a))
    return tuple(sliding_window_view(m, (height, width), axis=(1, 2))[frames, top, left]
                 for m in (a, b))


def f_measure(results: np.ndarray, gts: np.ndarray, bound_th: float = BOUND_TH,
              radius: Optional[int] = None) -> np.ndarray:
    """Contour accuracy per frame: the F score of the boundaries at a disk tolerance.

    Precision: result boundary pixels within the dilated ground-truth boundary over
    all result boundary pixels; recall the other way round. With no result boundary
    P=1, with no ground-truth boundary R=1 (and the other one 0 unless both are empty).
    ``radius`` defaults to :func:`disk_radius` of the masks' size; pass the full
    frames' radius when the masks are a :func:`support_window` of them.
    """
    results, gts = _as_stack(results), _as_stack(gts)
    if radius is None:
        radius = disk_radius(gts.shape[1], gts.shape[2], bound_th)
    res_b, gt_b = frame_windows(boundary_map(results), boundary_map(gts))
    n_res = np.count_nonzero(res_b, axis=(1, 2))
    n_gt = np.count_nonzero(gt_b, axis=(1, 2))
    res_hit = np.count_nonzero(res_b & dilate_stack(gt_b, radius), axis=(1, 2))
    gt_hit = np.count_nonzero(gt_b & dilate_stack(res_b, radius), axis=(1, 2))
    precision = np.where(n_res > 0, res_hit / np.maximum(n_res, 1), 1.0)
    recall = np.where(n_gt > 0, gt_hit / np.maximum(n_gt, 1), 1.0)
    total = precision + recall
    return np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1.0), 0.0)


def decay_bins(n: int) -> np.ndarray:
    """The 5 bin boundaries b of the decay over n frames: bin i is x[b_i : b_{i+1} + 1].

    b = round(linspace(1, n, 5) + 1e-10) - 1 as integers (the official uint8 cast
    wraps above 256 frames).
    """
    return (np.round(np.linspace(1, n, 5) + 1e-10) - 1).astype(np.int64)


def summarise(values: np.ndarray) -> Tuple[float, float, float]:
    """(mean, recall, decay) of one object's per-frame values.

    Mean ignores NaN; recall is the fraction of frames above 0.5; decay is the mean
    of the first of 4 overlapping bins minus the mean of the last.
    """
    x = np.asarray(values, dtype=np.float64)
    b = decay_bins(len(x))
    bins = [x[b[i]:b[i + 1] + 1] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=RuntimeWarning)
        mean = np.nanmean(x)
        recall = np.mean(x > 0.5)
        decay = np.nanmean(bins[0]) - np.nanmean(bins[3])
    return float(mean), float(recall), float(decay)
