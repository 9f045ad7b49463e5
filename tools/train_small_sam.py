#!/usr/bin/env python
"""Train the project's small SAM (persam_video.model.small) on procedural images, on CPU.

Data: every step renders fresh textured scenes (tools/synthetic.py's render_scene) at the
model's input size (sometimes non-square and zero-padded, as SAM's predictor pads frames);
each image is encoded once and decoded for several prompts. Pass 1: SAM's prompts (one point,
positive + negative points, a jittered box, points + box); ``--prompt-mix tracker`` adds the
tracker's own (confidence peaks + the centre of a widened box + that box, all three outputs
trained), ``tracker-whole`` also trains all three outputs of one-point prompts. Pass 2: SAM's
iterative refinement (the previous low-res logits as mask input, corrective points, tight boxes).
``--clip-share P``: a share P of the images are frames of synthetic clips (JPEG, resized by the
predictor, the tracker's box from the previous frame); ``--loose-box P`` widens a share of them.

Losses as in SAM (20 * focal + dice, or BCE + dice for the first ``--loss-warm`` steps; MSE of
the predicted IoU); AdamW with warmup and cosine decay, gradient clipping. ``--size-schedule``
trains at growing input sizes (position embeddings interpolated); export writes the bundled size.

Runs are resumable: ``--run NAME`` keeps tools/train_runs/NAME/ (last.pt, loss.csv, args.json);
the data of step k depends only on (seed, k), so a resumed run sees the same data.
``--workers N`` trains data-parallel in N processes (torch.distributed, gloo), gradients
averaged before every update (1.7x one process on 2 cores).

Examples::

    python tools/train_small_sam.py --run main --steps 4400 --size-schedule 0:256,2000:512 \\
        --prompt-mix tracker --workers 2 --threads 1 --max-minutes 90
    python tools/train_small_sam.py --run main --resume            # continue after a kill
    python tools/train_small_sam.py --run main --resume --extend-to 6000   # ... and train longer
    python tools/train_small_sam.py --run main --eval              # mIoU on held-out images
    python tools/train_small_sam.py --run main --export            # write persam_video/model/weights/
    python tools/train_small_sam.py --run b --init a.pth --seed 2 ...  # a stage on other weights
    python tools/model_bars.py --checkpoint FILE     # the bundled model's quality bars for FILE
    python tools/loss_curve.py main                  # the run's loss curve (table, --csv, --png)

The recipe of the bundled model (and of the one before it), the run history, timings and the
quality bars each met: tools/training_log/README.md.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from segment_anything.utils.transforms import ResizeLongestSide

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))  # synthetic.py, when loaded from elsewhere (tests)

from synthetic import iter_clip, render_scene  # noqa: E402

from persam_video.io.files import atomic_write  # noqa: E402 - must follow the sys.path line
from persam_video.model.loading import sha256_of  # noqa: E402 - must follow the sys.path line
from persam_video.model.small import SMALL_CONFIG, SmallSamConfig, build_small_sam  # noqa: E402 - after sys.path

RUNS_DIR = ROOT / "tools" / "train_runs"
WEIGHTS = ROOT / "persam_video" / "model" / "weights" / "small_sam.pth"
EVAL_SEED = 987_654_321  # held-out images: never used for training (training uses (seed, step))

# pass-1 prompt mixes (--prompt-mix), prompt mode -> probability: "sam" is SAM's kinds of
# prompts; "tracker" adds the prompts the PerSAM tracker itself sends; "tracker-whole" trains
# all three outputs of a one-point prompt on the object (a point inside a synthetic shape has
# no part/whole ambiguity, and the small model's IoU head picks worse than the best of three)
PROMPT_MIXES = {
    "sam": {"point1": 0.25, "posneg": 0.30, "box": 0.15, "pointbox": 0.30},
    "tracker": {"point1": 0.25, "posneg": 0.20, "box": 0.10, "pointbox": 0.15, "persam": 0.30},
    "tracker-whole": {"point1-whole": 0.25, "posneg": 0.20, "box": 0.10, "pointbox": 0.15, "persam": 0.30},
}
MODES = PROMPT_MIXES["sam"]


# ----------------------------------------------------------------------------- model

def config_for(img_size: int) -> SmallSamConfig:
    """The small-model configuration at another input size (everything else unchanged)."""
    return replace(SMALL_CONFIG, img_size=int(img_size))


def resize_state_dict(state: Dict[str, torch.Tensor], target: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Fit ``state`` to the shapes of ``target``: interpolate the encoder's absolute position
    embedding (bicubic, 2-D) and relative position tables (linear, 1-D); other keys as is."""
    out = {}
    for key, ref in target.items():
        value = state[key]
        if value.shape != ref.shape:
            if key.endswith("pos_embed"):  # (1, g, g, C)
                value = F.interpolate(value.permute(0, 3, 1, 2).float(), size=ref.shape[1:3], mode="bicubic",
                                      align_corners=False).permute(0, 2, 3, 1)
            elif "rel_pos" in key:  # (2g - 1, head_dim)
                value = F.interpolate(value.t()[None].float(), size=ref.shape[0], mode="linear",
                                      align_corners=False)[0].t()
            else:
                raise ValueError(f"cannot resize {key} from {tuple(value.shape)} to {tuple(ref.shape)}")
        out[key] = value.contiguous().to(ref.dtype)
    return out


def build_at(img_size: int, state: Optional[Dict[str, torch.Tensor]] = None) -> torch.nn.Module:
    """The small SAM at ``img_size``, with ``state`` loaded (resized if it came from another size)."""
    model = build_small_sam(config_for(img_size))
    if state is not None:
        model.load_state_dict(resize_state_dict(state, model.state_dict()), strict=True)
    return model


# ------------------------------------------------------------------------------ data

def render_sample(rng: np.random.Generator, size: int, max_objects: int) -> Tuple[np.ndarray, np.ndarray]:
    """An image at the model's input size: square, or landscape/portrait zero-padded to square
    as the SAM predictor pads real frames. Returns rgb (h, w, 3) and labels padded to (size, size)."""
    r = rng.random()
    if r < 0.45:
        h, w = int(size * rng.uniform(0.5, 0.95)), size
    elif r < 0.55:
        h, w = size, int(size * rng.uniform(0.5, 0.95))
    else:
        h, w = size, size
    n = int(rng.integers(1, max_objects + 1))
    rgb, labels = render_scene(rng, (h, w), n)
    padded = np.zeros((size, size), dtype=np.uint8)
    padded[:h, :w] = labels
    return rgb, padded


# --clip-share: frames of synthetic clips as bench_quality's DAVIS-like sets have them (same
# generator, JPEG, the predictor's own resize), at these frame sizes (h, w); their clip seeds
# start at CLIP_SEED_BASE, far from every seed a benchmark, a test or the demo uses
CLIP_SIZES = ((480, 854), (480, 854), (240, 427), (360, 640), (480, 640))
CLIP_SEED_BASE = 10 ** 10


def render_clip_sample(rng: np.random.Generator, size: int, max_objects: int
                       ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A frame of a synthetic clip (1-8 frames in) as the tracker sees it: rendered at a video
    size, JPEG-compressed (quality 70-95) and resized by the SAM predictor's transform.
    Returns rgb (h, w, 3), and the frame's and the previous frame's labels padded to (size, size).
    A frame whose objects are all out of view (or too small to train on) is drawn again."""
    while True:
        rgb, labels, prev = _clip_frame(rng, size, max_objects)
        if trainable_ids(labels, size):
            return rgb, labels, prev


def trainable_ids(labels: np.ndarray, size: int) -> List[int]:
    """The object ids of ``labels`` large enough to train on (16 px, and 0.02 % of the input)."""
    counts = np.bincount(labels.ravel(), minlength=256)
    return [k for k in range(1, 256) if counts[k] >= max(16, 2e-4 * size * size)]


def _clip_frame(rng: np.random.Generator, size: int, max_objects: int
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    fh, fw = CLIP_SIZES[int(rng.integers(len(CLIP_SIZES)))]
    n = int(rng.integers(1, min(max_objects, 4) + 1))
    t = int(rng.integers(1, 9))
    seed = CLIP_SEED_BASE + int(rng.integers(10 ** 9))
    frames = iter_clip(seed, t + 1, (fh, fw), n, leave_frame=bool(rng.random() < 0.4),
                       speed=float(rng.uniform(0.008, 0.025)))
    prev = rgb = labels = None
    for rgb, labels_t in frames:
        prev, labels = labels, labels_t
    _, buf = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(70, 96))])
    rgb = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1])
    rgb = ResizeLongestSide(size).apply_image(rgb)
    h, w = rgb.shape[:2]

    def fit(lab: np.ndarray) -> np.ndarray:
        out = np.zeros((size, size), dtype=np.uint8)
        out[:h, :w] = cv2.resize(lab, (w, h), interpolation=cv2.INTER_NEAREST)
        return out

    return rgb, fit(labels), fit(prev)


def _sample_point(rng: np.random.Generator, mask: np.ndarray, inner: bool = True) -> Tuple[float, float]:
    """A random pixel (x, y) of ``mask``; with ``inner`` preferably away from its boundary."""
    if inner:
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        cand = dist >= max(1.0, 0.25 * float(dist.max()))
        if cand.any():
            mask = cand
    ys, xs = np.nonzero(mask)
    i = int(rng.integers(len(ys)))
    return float(xs[i]), float(ys[i])


def _negative_point(rng: np.random.Generator, mask: np.ndarray, valid: Tuple[int, int]) -> Tuple[float, float]:
    """A pixel outside ``mask``: near the object (in its enlarged box) or anywhere in the image."""
    h, w = valid
    outside = ~mask
    outside[h:, :] = False
    outside[:, w:] = False
    if rng.random() < 0.5:
        x0, y0, x1, y1 = _box(mask)
        mx, my = (x1 - x0) * 0.5 + 4, (y1 - y0) * 0.5 + 4
        near = np.zeros_like(mask)
        near[max(0, int(y0 - my)):int(y1 + my) + 1, max(0, int(x0 - mx)):int(x1 + mx) + 1] = True
        if (near & outside).any():
            outside = near & outside
    if not outside.any():
        return 0.0, 0.0
    return _sample_point(rng, outside, inner=False)


def _box(mask: np.ndarray) -> Tuple[float, float, float, float]:
    ys, xs = np.nonzero(mask)
    return float(xs.min()), float(ys.min()), float(xs.max()), float(ys.max())


def _jitter_box(rng: np.random.Generator, box: Tuple[float, ...], size: int) -> Tuple[float, ...]:
    """SAM's box noise: std 10 % of the side, at most 20 px (scaled to the input size)."""
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0 + 1, y1 - y0 + 1
    cap = 20.0 * size / 1024
    n = np.clip(rng.normal(0, 0.1, 4) * np.array([bw, bh, bw, bh]), -cap, cap)
    out = np.array([x0, y0, x1, y1]) + n
    out = np.clip(out, 0, size - 1)
    if out[2] <= out[0]:
        out[2] = min(size - 1, out[0] + 1)
    if out[3] <= out[1]:
        out[3] = min(size - 1, out[1] + 1)
    return tuple(float(v) for v in out)


def _widened_box(rng: np.random.Generator, box: Tuple[float, ...], valid: Tuple[int, int],
                 size: int, loose: float = 0.0) -> Tuple[float, ...]:
    """The tracker's box prior: the tight box widened by one margin on every side (0-24 px
    at input 512, i.e. PerSAM's 10 px on frames of 210-1000 px), clamped to the image.
    With probability ``loose`` each side moves out by up to a quarter of the box's longer
    side more (a prior from a mask that had spilled over)."""
    x0, y0, x1, y1 = box
    m = rng.uniform(0, 24) * size / 512 + rng.normal(0, 1, 4)
    if loose > 0 and rng.random() < loose:
        m = m + rng.uniform(0, 0.25, 4) * max(x1 - x0, y1 - y0)
    h, w = valid
    return (float(max(0.0, x0 - m[0])), float(max(0.0, y0 - m[1])),
            float(min(w - 1.0, x1 + m[2])), float(min(h - 1.0, y1 + m[3])))


class Prompt:
    """One prompt of one target: points (x, y, label), optional box, multimask flag.

    ``every_output``: train all three multimask outputs (the tracker's box prompts use them
    all: PerSAM keeps the largest, PerSAM-F a weighted sum), not only the best one."""

    def __init__(self, target: int, points: List[Tuple[float, float, int]], box: Optional[Tuple[float, ...]],
                 multimask: bool, every_output: bool = False):
        self.target, self.points, self.box, self.multimask = target, points, box, multimask
        self.every_output = every_output

    def key(self) -> Tuple[int, bool]:
        return len(self.points), self.box is not None


def first_prompts(rng: np.random.Generator, masks: List[np.ndarray], valid: Tuple[int, int], size: int,
                  mode_probs: Dict[str, float] = MODES, prev_masks: Optional[List[np.ndarray]] = None,
                  loose: float = 0.0) -> List[Prompt]:
    """Pass-1 prompts, one per target mask. ``prev_masks`` (clip frames): the targets in the
    previous frame, whose box the tracker's prompt widens (when the target was there);
    ``loose``: the chance that the tracker's box is much wider than that (see _widened_box)."""
    names, probs = list(mode_probs), np.array(list(mode_probs.values()), dtype=float)
    probs = probs / probs.sum()
    prompts = []
    for i, mask in enumerate(masks):
        mode = names[int(rng.choice(len(names), p=probs))]
        pos = lambda: (*_sample_point(rng, mask, inner=rng.random() < 0.7), 1)  # noqa: E731
        neg = lambda: (*_negative_point(rng, mask, valid), 0)  # noqa: E731
        if mode == "point1":
            prompts.append(Prompt(i, [pos()], None, True))
        elif mode == "point1-whole":  # one point, all three outputs trained on the whole object
            prompts.append(Prompt(i, [pos()], None, True, every_output=True))
        elif mode == "posneg":
            pts = [pos(), neg()] if rng.random() < 0.7 else [pos() for _ in range(int(rng.integers(1, 3)))] + [neg()]
            prompts.append(Prompt(i, pts, None, False))
        elif mode == "box":
            prompts.append(Prompt(i, [], _jitter_box(rng, _box(mask), size), False))
        elif mode == "persam":
            # what the tracker sends: 1-2 positive points (its confidence peaks, mostly on the
            # object) + the widened box's centre, labelled positive even where it misses the
            # object (a ring's hole), + the widened box; multimask
            source = mask
            if prev_masks is not None and prev_masks[i].any():
                source = prev_masks[i]
            box = _widened_box(rng, _box(source), valid, size, loose)
            pts = [pos() if rng.random() < 0.9 else (*_negative_point(rng, mask, valid), 1)
                   for _ in range(1 if rng.random() < 0.6 else 2)]
            pts.append(((box[0] + box[2]) // 2, (box[1] + box[3]) // 2, 1))
            prompts.append(Prompt(i, pts, box, True, every_output=True))
        else:
            pts = [pos() for _ in range(int(rng.integers(1, 3)))]
            if rng.random() < 0.5:
                pts.append(neg())
            box = _box(mask) if rng.random() < 0.5 else _jitter_box(rng, _box(mask), size)
            prompts.append(Prompt(i, pts, box, False))
    return prompts


def refine_prompts(rng: np.random.Generator, first: List[Prompt], masks: List[np.ndarray], prev: List[np.ndarray],
                   valid: Tuple[int, int], size: int) -> List[Prompt]:
    """Pass-2 prompts: the pass-1 points (or a new positive one), maybe a corrective point from
    the error region, maybe a tight box from the ground truth or from the previous mask."""
    prompts = []
    for p, mask, pm in zip(first, masks, prev):
        pts = list(p.points) or [(*_sample_point(rng, mask), 1)]
        if rng.random() < 0.5:
            fn, fp = mask & ~pm, pm & ~mask
            if fn.sum() + fp.sum() > 0:
                if fn.sum() >= fp.sum():
                    pts.append((*_sample_point(rng, fn, inner=True), 1))
                else:
                    pts.append((*_sample_point(rng, fp, inner=True), 0))
        box = None
        r = rng.random()
        if r < 0.3:
            box = _box(mask)
        elif r < 0.55 and pm.any():
            box = _box(pm)
        elif p.box is not None:
            box = p.box
        prompts.append(Prompt(p.target, pts, box, True, p.every_output))
    return prompts


# ---------------------------------------------------------------------------- losses

def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = -1.0, gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss averaged over pixels, per mask: (..., H, W) -> (...).

    ``alpha`` < 0 means no class weighting (the default: with alpha 0.25 the small model
    trained from scratch sits for long at predicting empty masks)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return loss.flatten(-2).mean(-1)


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice, per mask: (..., H, W) -> (...)."""
    prob = logits.sigmoid().flatten(-2)
    target = target.flatten(-2)
    return 1 - (2 * (prob * target).sum(-1) + 1) / (prob.sum(-1) + target.sum(-1) + 1)


def mask_iou(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """IoU of (logits > 0) with (target > 0.5), per mask; 1 when both are empty."""
    pred = (logits > 0).flatten(-2)
    gt = (target > 0.5).flatten(-2)
    inter = (pred & gt).sum(-1).float()
    union = (pred | gt).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


# -------------------------------------------------------------------------- decoding

def decode(model, embedding: torch.Tensor, prompts: List[Prompt], mask_inputs: Optional[torch.Tensor] = None
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Decode ``prompts`` on one image embedding (1, C, g, g). Prompts are grouped by
    (number of points, has box) so that every call sees exactly what the SAM predictor
    would send (no extra padding tokens). Returns all four outputs: low-res logits
    (P, 4, 4g, 4g) and IoU predictions (P, 4)."""
    groups: Dict[Tuple[int, bool], List[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.key(), []).append(i)
    out_masks: List[Optional[torch.Tensor]] = [None] * len(prompts)
    out_iou: List[Optional[torch.Tensor]] = [None] * len(prompts)
    pe = model.prompt_encoder.get_dense_pe()
    for (n_points, has_box), idx in groups.items():
        points = boxes = None
        if n_points:
            coords = torch.tensor([[pt[:2] for pt in prompts[i].points] for i in idx], dtype=torch.float32)
            labels = torch.tensor([[pt[2] for pt in prompts[i].points] for i in idx], dtype=torch.int64)
            points = (coords, labels)
        if has_box:
            boxes = torch.tensor([prompts[i].box for i in idx], dtype=torch.float32)
        masks_in = mask_inputs[idx] if mask_inputs is not None else None
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=masks_in)
        low, iou = model.mask_decoder.predict_masks(image_embeddings=embedding, image_pe=pe,
                                                    sparse_prompt_embeddings=sparse,
                                                    dense_prompt_embeddings=dense)
        for j, i in enumerate(idx):
            out_masks[i], out_iou[i] = low[j], iou[j]
    return torch.stack(out_masks), torch.stack(out_iou)


def loss_weights(step: Optional[int], warm: int) -> Tuple[float, float]:
    """(focal weight, focal gamma) at ``step``: SAM's 20 and 2 after the loss warm-up.

    For the first ``warm`` steps the mask loss is BCE + dice (gamma 0, weight 1), then it
    moves linearly to 20 * focal(gamma 2) + dice over ``warm`` more steps: trained from
    scratch with the focal loss alone, the decoder sits for hundreds of steps at empty
    masks (even for box prompts); BCE gets it out of that plateau quickly."""
    if step is None or warm <= 0:
        return 20.0, 2.0
    t = min(1.0, max(0.0, (step - warm) / warm))
    return 1.0 + 19.0 * t, 2.0 * t


def prompt_losses(low: torch.Tensor, iou_pred: torch.Tensor, gt: torch.Tensor, multimask: torch.Tensor,
                  both: bool = False, focal_weight: float = 20.0, gamma: float = 2.0,
                  every: Optional[torch.Tensor] = None
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-prompt losses. ``low`` (P, 4, h, w) logits, ``gt`` (P, h, w) soft targets.

    Single-mask prompts train output 0; multimask prompts the min-loss output of 1..3;
    with ``both`` each prompt trains the mean of the two; prompts flagged in ``every``
    train the mean of outputs 1..3. The IoU head is trained on all four outputs.
    Returns (focal, dice, iou_mse, selected_index) per prompt."""
    target = gt[:, None].expand_as(low)
    focal = focal_loss(low, target, gamma=gamma)
    dice = dice_loss(low, target)
    total = focal_weight * focal + dice
    best = total[:, 1:].argmin(dim=1) + 1
    rows = torch.arange(low.shape[0])
    sel = torch.where(multimask, best, torch.zeros_like(best))
    if both:
        f = 0.5 * (focal[rows, 0] + focal[rows, best])
        d = 0.5 * (dice[rows, 0] + dice[rows, best])
    else:
        f, d = focal[rows, sel], dice[rows, sel]
    if every is not None and bool(every.any()):
        f = torch.where(every, focal[:, 1:].mean(dim=1), f)
        d = torch.where(every, dice[:, 1:].mean(dim=1), d)
    with torch.no_grad():
        actual = mask_iou(low, target)
    mse = ((iou_pred - actual) ** 2).mean(dim=1)
    return f, d, mse, sel


def train_step(model, rng: np.random.Generator, size: int, prompts_per_image: int, images: int,
               max_objects: int, focal_weight: float = 20.0, gamma: float = 2.0,
               mix: Dict[str, float] = MODES, iou_weight: float = 1.0, clip_share: float = 0.0,
               loose: float = 0.0) -> Dict[str, Any]:
    """Losses of one step: ``images`` fresh images, each with ``prompts_per_image`` prompts, two passes,
    and under ``"images"`` how many of them had an object to train on (the step's weight when
    several processes average their gradients).
    ``iou_weight`` scales the IoU-prediction MSE (SAM: 1); ``clip_share`` is the chance that
    an image is a clip frame (render_clip_sample) rather than a still scene; ``loose`` see
    first_prompts."""
    grid4 = model.prompt_encoder.mask_input_size[0]
    batch = []
    for _ in range(images):
        if clip_share > 0 and rng.random() < clip_share:
            batch.append(render_clip_sample(rng, size, max_objects))
        else:
            batch.append((*render_sample(rng, size, max_objects), None))
    x = torch.stack([model.preprocess(torch.from_numpy(rgb).permute(2, 0, 1).float()) for rgb, _, _ in batch])
    embeddings = model.image_encoder(x)
    focal_all, dice_all, mse_all = [], [], []
    for b, (rgb, labels, prev_labels) in enumerate(batch):
        valid = rgb.shape[:2]
        ids = trainable_ids(labels, size)
        if not ids:
            continue
        if len(ids) >= prompts_per_image:
            chosen = [ids[i] for i in rng.permutation(len(ids))[:prompts_per_image]]
        else:
            chosen = list(rng.permutation(ids)) + [ids[int(i)]
                                                   for i in rng.integers(len(ids), size=prompts_per_image - len(ids))]
        masks = [labels == k for k in chosen]
        gt = torch.from_numpy(np.stack([cv2.resize(m.astype(np.float32), (grid4, grid4), interpolation=cv2.INTER_AREA)
                                        for m in masks]))
        emb = embeddings[b:b + 1]
        prev = [prev_labels == k for k in chosen] if prev_labels is not None else None
        first = first_prompts(rng, masks, valid, size, mix, prev, loose)
        low, iou = decode(model, emb, first)
        multi = torch.tensor([p.multimask for p in first])
        every = torch.tensor([p.every_output for p in first])
        f1, d1, m1, sel = prompt_losses(low, iou, gt, multi, focal_weight=focal_weight, gamma=gamma, every=every)
        prev_low = low[torch.arange(len(first)), sel].detach()[:, None]
        prev_masks = []
        for j in range(len(first)):
            up = F.interpolate(prev_low[j:j + 1], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
            prev_masks.append((up > 0).numpy())
        second = refine_prompts(rng, first, masks, prev_masks, valid, size)
        low2, iou2 = decode(model, emb, second, mask_inputs=prev_low)
        f2, d2, m2, _ = prompt_losses(low2, iou2, gt, torch.ones(len(second), dtype=torch.bool), both=True,
                                      focal_weight=focal_weight, gamma=gamma)
        focal_all += [f1, f2]
        dice_all += [d1, d2]
        mse_all += [m1, m2]
    if not focal_all:  # no image had an object to train on: a step that changes nothing
        zero = embeddings.sum() * 0.0
        return {"loss": zero, "focal": zero, "dice": zero, "iou_mse": zero, "images": 0}
    focal = torch.cat(focal_all).mean()
    dice = torch.cat(dice_all).mean()
    mse = torch.cat(mse_all).mean()
    return {"loss": focal_weight * focal + dice + iou_weight * mse, "focal": focal, "dice": dice, "iou_mse": mse,
            "images": len(focal_all) // 2}


# ----------------------------------------------------------------------- schedule, io

def lr_at(step: int, total: int, base: float, warmup: int, final_ratio: float = 0.02) -> float:
    """Linear warmup, then cosine decay to ``final_ratio * base``."""
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (final_ratio + (1 - final_ratio) * 0.5 * (1 + math.cos(math.pi * t)))


def make_optimizer(model, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or "pos" in name or name.endswith("embed.weight") else decay).append(p)
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999))


def fit_optimizer_state(opt: torch.optim.Optimizer, state: dict) -> None:
    """Load an optimizer state saved at another resolution: moments of resized tensors restart at zero."""
    opt.load_state_dict(state)
    for group in opt.param_groups:
        for p in group["params"]:
            s = opt.state.get(p)
            if s:
                for k in ("exp_avg", "exp_avg_sq"):
                    if k in s and s[k].shape != p.shape:
                        s[k] = torch.zeros_like(p)


def parse_schedule(text: str) -> List[Tuple[int, int]]:
    """'0:128,2000:256,4200:512' -> [(0, 128), (2000, 256), (4200, 512)] (start step: input size)."""
    out = sorted((int(a), int(b)) for a, b in (item.split(":") for item in text.split(",") if item.strip()))
    if not out or out[0][0] != 0 or any(size % 16 for _, size in out):
        raise SystemExit(f"bad --size-schedule {text!r}: need 'STEP:SIZE,...' from step 0, sizes multiples of 16")
    return out


def save_checkpoint(path: Path, payload: dict) -> None:
    """``torch.save`` through a temporary name and a rename. Serialised in memory first: torch
    names the archive's inner folder after the file it writes, which here would be the random
    temporary name, so the same weights exported twice would differ byte for byte."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(buffer.getvalue()))


def run_dir(name: str) -> Path:
    return RUNS_DIR / name


CSV_FIELDS = ["step", "loss", "focal", "dice", "iou_mse", "time", "lr", "img_size"]


def _trim_log(path: Path, step: int) -> None:
    """Drop log rows after ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.is_file():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


# ------------------------------------------------------------------------------ train

def _check_run(args: argparse.Namespace) -> None:
    """Refuse a run that cannot start (before any worker process is made); on ``--resume``
    take the worker count from the run, as the data of a step depends on it."""
    ckpt_path = run_dir(args.run) / "last.pt"
    if args.resume:
        if not ckpt_path.is_file():
            raise SystemExit(f"nothing to resume: {ckpt_path} does not exist")
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)["args"]
        args.workers = saved.get("workers", 1)  # runs from before the option: one process
        args.images = saved["images"]
    elif ckpt_path.is_file() and not args.overwrite:
        raise SystemExit(f"{ckpt_path} exists: use --resume, or --overwrite to start again")
    if args.images % args.workers:
        raise SystemExit(f"--images {args.images} must be a multiple of --workers {args.workers}")


def train(args: argparse.Namespace) -> Path:
    """Train (or resume) ``args.run``; with ``--workers N`` in N processes (data parallel)."""
    _check_run(args)
    if args.threads is None:
        args.threads = max(1, (os.cpu_count() or 1) // args.workers)
    if args.workers == 1:
        torch.set_num_threads(args.threads)
        return _train(args, rank=0, world=1)
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:  # a free port for the processes to meet on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.start_processes(_worker, args=(args, port), nprocs=args.workers, join=True, start_method="spawn")
    return run_dir(args.run) / "last.pt"


def _worker(rank: int, args: argparse.Namespace, port: int) -> None:
    """One of ``--workers`` processes: its share of every step's images, gradients averaged."""
    import torch.distributed as dist

    global RUNS_DIR
    RUNS_DIR = Path(args.runs_dir)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(1)
    dist.init_process_group("gloo", rank=rank, world_size=args.workers)
    try:
        _train(args, rank, args.workers)
    finally:
        dist.destroy_process_group()


def average_gradients(model: torch.nn.Module, weight: float) -> float:
    """Data parallel: every process's gradients replaced by their mean over the processes,
    weighted by ``weight`` (the number of images the process trained on: a process whose
    images had nothing to train on counts for nothing, instead of halving the others'
    gradient), in one all-reduce. A parameter no trained-on process has a gradient for keeps
    none (AdamW skips it, as in one process); one that some lack counts as zero there.
    Returns the total weight (0: no process had anything to train on, every gradient None)."""
    import torch.distributed as dist

    params = [p for p in model.parameters() if p.requires_grad]
    flat = torch.cat([torch.zeros(1 + len(params))] + [
        p.grad.reshape(-1) * weight if p.grad is not None else torch.zeros(p.numel()) for p in params])
    flat[0] = weight
    flat[1:1 + len(params)] = torch.tensor([p.grad is not None and weight > 0 for p in params], dtype=flat.dtype)
    dist.all_reduce(flat)
    total, has, offset = float(flat[0]), flat[1:1 + len(params)], 1 + len(params)
    for i, p in enumerate(params):
        n = p.numel()
        p.grad = (flat[offset:offset + n] / total).view_as(p).clone() if total > 0 and has[i] > 0 else None
        offset += n
    return total


def _train(args: argparse.Namespace, rank: int, world: int) -> Path:
    """The training loop of one process; rank 0 logs, shows the bar and saves checkpoints."""
    from tqdm.auto import tqdm

    lead = rank == 0
    folder = run_dir(args.run)
    folder.mkdir(parents=True, exist_ok=True)
    ckpt_path = folder / "last.pt"
    log_path = folder / "loss.csv"
    if args.resume:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        saved = ckpt["args"]
        for key in ("steps", "hires_from", "img_size", "size_schedule", "loss_warm", "seed", "lr", "warmup",
                    "weight_decay", "prompts", "images", "max_objects", "clip"):
            setattr(args, key, saved[key])  # the schedule of a run is fixed when it starts
        args.prompt_mix = saved.get("prompt_mix", "sam")  # runs from before the option: "sam"
        args.iou_weight = saved.get("iou_weight", 1.0)  # ... and before this one: SAM's 1
        args.clip_share = saved.get("clip_share", 0.0)  # ... still scenes only
        args.loose_box = saved.get("loose_box", 0.0)
        args.workers = saved.get("workers", 1)  # ... one process
        step = ckpt["step"]
        if args.extend_to is not None:  # ... unless asked: the cosine is stretched to the new length
            if args.extend_to <= step:
                raise SystemExit(f"--extend-to {args.extend_to} must be above the run's step {step}")
            if lead:
                print(f"extending the run from {args.steps} to {args.extend_to} steps", flush=True)
            args.steps = args.extend_to
        model = build_at(ckpt["img_size"], ckpt["model"])
        opt = make_optimizer(model, args.lr, args.weight_decay)
        fit_optimizer_state(opt, ckpt["optimizer"])
        elapsed = ckpt.get("elapsed", 0.0)
        if lead:
            _trim_log(log_path, step)
            print(f"resuming {folder} at step {step}/{args.steps} (img_size {ckpt['img_size']})", flush=True)
    else:
        torch.manual_seed(args.seed)  # the same initial weights in every process
        init = None
        if args.init:  # fine-tune: a new run (own schedule, fresh optimizer) from existing weights
            init = torch.load(args.init, map_location="cpu", weights_only=False)
            init = init.get("model", init)
            if lead:
                print(f"starting {folder} from the weights in {args.init}", flush=True)
        model = build_at(parse_schedule(args.size_schedule)[0][1] if args.size_schedule else args.img_size, init)
        opt = make_optimizer(model, args.lr, args.weight_decay)
        step, elapsed = 0, 0.0
        if lead:
            with open(log_path, "w", newline="") as f:
                csv.DictWriter(f, fieldnames=CSV_FIELDS).writeheader()
            (folder / "args.json").write_text(json.dumps(vars(args), indent=2, default=str))
    final_size = SMALL_CONFIG.img_size
    if world > 1:
        import torch.distributed as dist

    schedule = parse_schedule(args.size_schedule) if args.size_schedule else \
        [(0, args.img_size)] + ([(args.hires_from, final_size)] if args.hires_from is not None else [])

    def current_size(s: int) -> int:
        return [size for start, size in schedule if s >= start][-1]

    def checkpoint(s: int) -> None:
        if lead:
            save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": s,
                                        "img_size": model.image_encoder.img_size, "args": vars(args),
                                        "elapsed": elapsed})

    def time_is_up() -> bool:  # rank 0's clock decides for every process
        up = args.max_minutes is not None and time.time() - started > args.max_minutes * 60
        if world > 1:
            flag = torch.tensor([float(up)])
            dist.broadcast(flag, 0)
            up = bool(flag.item())
        return up

    model.train()
    last_save = time.time()
    bar = tqdm(total=args.steps, initial=step,
               desc=f"train {args.run}" + (f" ({world} processes)" if world > 1 else ""),
               dynamic_ncols=True, mininterval=args.bar_interval, disable=not lead)
    say = bar.write if lead else (lambda message: None)
    log_file = open(log_path, "a", newline="") if lead else None
    writer = csv.DictWriter(log_file, fieldnames=CSV_FIELDS) if lead else None
    smooth = None
    started, first_step = time.time(), step
    try:
        while step < args.steps:
            if time_is_up():
                say(f"stopping at step {step}: --max-minutes {args.max_minutes} reached")
                break
            if args.stop_after is not None and step - first_step >= args.stop_after:
                break
            size = current_size(step)
            if model.image_encoder.img_size != size:  # progressive resolution: grow the model
                state, opt_state = model.state_dict(), opt.state_dict()
                model = build_at(size, state)
                model.train()
                opt = make_optimizer(model, args.lr, args.weight_decay)
                fit_optimizer_state(opt, opt_state)
                say(f"step {step}: image size {size}")
            t0 = time.time()
            lr = lr_at(step, args.steps, args.lr, args.warmup)
            for group in opt.param_groups:
                group["lr"] = lr
            # the data of a step: (seed, step) in one process, (seed, step, rank) for each of several
            rng = np.random.default_rng([args.seed, step] if world == 1 else [args.seed, step, rank])
            fw, gamma = loss_weights(step, args.loss_warm)
            losses = train_step(model, rng, size, args.prompts, args.images // world, args.max_objects, fw, gamma,
                                PROMPT_MIXES[args.prompt_mix], args.iou_weight, args.clip_share, args.loose_box)
            opt.zero_grad(set_to_none=True)
            losses["loss"].backward()
            values = torch.stack([losses[k].detach() for k in ("loss", "focal", "dice", "iou_mse")])
            if world > 1:
                weight = float(losses["images"])
                total = average_gradients(model, weight)
                values *= weight
                dist.all_reduce(values)
                values /= max(total, 1.0)
            if args.clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            step += 1
            elapsed += time.time() - t0
            vals = dict(zip(("loss", "focal", "dice", "iou_mse"), values.tolist()))
            smooth = vals["loss"] if smooth is None else 0.98 * smooth + 0.02 * vals["loss"]
            if lead:
                writer.writerow({"step": step, **{k: f"{v:.5f}" for k, v in vals.items()}, "time": f"{elapsed:.1f}",
                                 "lr": f"{lr:.3g}", "img_size": size})
                if step % 20 == 0:
                    log_file.flush()
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.3f}", size=size, refresh=False)
            if lead and time.time() - last_save > args.save_every_min * 60:
                log_file.flush()
                checkpoint(step)
                last_save = time.time()
    finally:
        if log_file is not None:
            log_file.close()
        bar.close()
    checkpoint(step)
    if lead:
        print(f"done: {step} steps in {elapsed / 60:.1f} min of training; checkpoint {ckpt_path}", flush=True)
    return ckpt_path


# ----------------------------------------------------------------------- export, eval

def load_for_export(args: argparse.Namespace) -> torch.nn.Module:
    """The run's latest weights as a model of the final (shipped) size."""
    path = Path(args.weights) if args.weights else run_dir(args.run) / "last.pt"
    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "model" in state:
        state = state["model"]
    return build_at(SMALL_CONFIG.img_size, state).eval()


def export(args: argparse.Namespace) -> Path:
    model = load_for_export(args)
    dest = Path(args.export_to) if args.export_to else WEIGHTS
    dest.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items()}
    save_checkpoint(dest, state)
    digest = sha256_of(dest)
    atomic_write(dest.with_suffix(".sha256"), lambda tmp: Path(tmp).write_text(f"{digest}  {dest.name}\n"))
    print(f"exported {dest} ({dest.stat().st_size / 1e6:.1f} MB, sha256 {digest[:16]}...)")
    return dest


@torch.no_grad()
def evaluate(model, n_images: int = 40, seed: int = EVAL_SEED, max_objects: int = 4) -> Dict[str, float]:
    """mIoU on held-out synthetic images, at the model's input size, for PerSAM-like prompts:
    one central positive point (multimask, highest predicted IoU kept); point + tight box;
    point + box then one refinement with the previous logits (multimask, best score)."""
    model.eval()
    size = model.image_encoder.img_size
    grid4 = model.prompt_encoder.mask_input_size[0]
    scores: Dict[str, List[float]] = {"point": [], "point_oracle": [], "point_box": [], "point_box_refine": []}
    rng = np.random.default_rng(seed)
    for _ in range(n_images):
        rgb, labels = render_sample(rng, size, max_objects)
        x = model.preprocess(torch.from_numpy(rgb).permute(2, 0, 1).float())[None]
        emb = model.image_encoder(x)
        counts = np.bincount(labels.ravel(), minlength=256)
        ids = [k for k in range(1, 256) if counts[k] >= 64]
        if not ids:
            continue
        masks = [labels == k for k in ids]
        gt = torch.from_numpy(np.stack(masks).astype(np.float32))
        centres = []
        for m in masks:
            dist = cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, 3)
            y, xx = np.unravel_index(int(dist.argmax()), dist.shape)
            centres.append((float(xx), float(y), 1))

        def up(low: torch.Tensor) -> torch.Tensor:
            return F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)

        point = [Prompt(i, [c], None, True) for i, c in enumerate(centres)]
        low, iou = decode(model, emb, point)
        full = up(low)
        ious = mask_iou(full, gt[:, None].expand_as(full))  # (P, 4)
        pick = iou[:, 1:].argmax(1) + 1
        rows = torch.arange(len(ids))
        scores["point"] += ious[rows, pick].tolist()
        scores["point_oracle"] += ious[:, 1:].max(1).values.tolist()
        pb = [Prompt(i, [c], _box(m), False) for i, (c, m) in enumerate(zip(centres, masks))]
        low, iou = decode(model, emb, pb)
        full = up(low)
        scores["point_box"] += mask_iou(full[:, 0], gt).tolist()
        low2, iou2 = decode(model, emb, pb, mask_inputs=low[:, :1])
        full2 = up(low2)
        pick2 = iou2.argmax(1)
        scores["point_box_refine"] += mask_iou(full2, gt[:, None].expand_as(full2))[rows, pick2].tolist()
        assert low.shape[-1] == grid4
    return {k: float(np.mean(v)) if v else float("nan") for k, v in scores.items()}


# ------------------------------------------------------------------------------- main

def probability(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="main", help="run name: tools/train_runs/<run>/ (default main)")
    p.add_argument("--steps", type=int, default=9000, help="total optimizer steps (default 9000)")
    p.add_argument("--img-size", type=int, default=256,
                   help=f"input size of the low-resolution phase (default 256; final size {SMALL_CONFIG.img_size})")
    p.add_argument("--hires-from", type=int, default=None,
                   help="step from which training runs at the final size (default: never; export resizes)")
    p.add_argument("--size-schedule", default=None,
                   help="progressive input sizes 'STEP:SIZE,...', e.g. '0:128,2000:256,4200:512' "
                        "(overrides --img-size/--hires-from)")
    p.add_argument("--loss-warm", type=int, default=300,
                   help="steps of BCE + dice before ramping (as long again) to 20*focal + dice (default 300)")
    p.add_argument("--images", type=int, default=2, help="images per step (default 2)")
    p.add_argument("--prompts", type=int, default=8, help="prompts (targets) per image (default 8)")
    p.add_argument("--max-objects", type=int, default=6, help="objects per image, 1..N (default 6)")
    p.add_argument("--lr", type=float, default=4e-4)
    p.add_argument("--warmup", type=int, default=250)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip, 0 for none")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prompt-mix", choices=sorted(PROMPT_MIXES), default="sam",
                   help="pass-1 prompts: 'sam' (points, boxes, points+box) or 'tracker' (adds "
                        "PerSAM's own: peak point(s) + widened-box centre + widened box, all "
                        "three multimask outputs trained) or 'tracker-whole' (the same, with all "
                        "three outputs of one-point prompts trained on the object) (default sam)")
    p.add_argument("--iou-weight", type=float, default=1.0,
                   help="weight of the IoU-prediction MSE in the loss (default 1, as SAM); a larger one trains "
                        "the head that picks among the three multimask outputs harder")
    p.add_argument("--clip-share", type=probability, default=0.0,
                   help="chance that a training image is a frame of a synthetic clip (JPEG, resized by the "
                        "predictor's transform; the tracker's box from the previous frame) instead of a still "
                        "scene (default 0)")
    p.add_argument("--loose-box", type=probability, default=0.0,
                   help="chance that the tracker's box prompt is up to a quarter of the object wider on each "
                        "side, as after a mask spilled over (default 0)")
    p.add_argument("--workers", type=int, default=1,
                   help="training processes, data parallel: each renders and trains its share of a step's "
                        "--images, gradients averaged (2 on 2 cores: 1.7x one single-thread process at 512 px, "
                        "where 2 threads give 1.35x). Part of the run: the data of a step depends on it, "
                        "a resumed run keeps it")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per process (default: the CPU count / --workers)")
    p.add_argument("--runs-dir", default=None, help="where runs are kept (default tools/train_runs)")
    p.add_argument("--save-every-min", type=float, default=3.0)
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop (with a checkpoint) after this much wall time in this process; --resume continues")
    p.add_argument("--bar-interval", type=float, default=5.0, help="seconds between progress-bar refreshes")
    p.add_argument("--stop-after", type=int, default=None,
                   help="stop (with a checkpoint) after this many steps in this process; --resume continues")
    p.add_argument("--init", default=None,
                   help="start a new run from these weights (a state_dict such as the bundled one, or a run's last.pt) "
                        "instead of random ones; use another --seed than the first run so the images differ")
    p.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
    p.add_argument("--extend-to", type=int, default=None, metavar="STEPS",
                   help="with --resume: raise the run's total steps (the learning-rate cosine is stretched "
                        "from the current step on)")
    p.add_argument("--overwrite", action="store_true", help="start the run again even if it has a checkpoint")
    p.add_argument("--eval", action="store_true", help="report mIoU on held-out synthetic images")
    p.add_argument("--eval-images", type=int, default=40)
    p.add_argument("--eval-size", type=int, default=None,
                   help="evaluate at this input size (default: the final size, as exported)")
    p.add_argument("--export", action="store_true", help=f"write {WEIGHTS.relative_to(ROOT)} and its .sha256")
    p.add_argument("--export-to", default=None, help="export to this path instead")
    p.add_argument("--weights", default=None,
                   help="for --eval/--export: a checkpoint or state_dict instead of the run's")
    p.add_argument("--no-train", action="store_true", help="only --eval/--export, even if the run is not finished")
    return p.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    global RUNS_DIR
    RUNS_DIR = Path(args.runs_dir) if args.runs_dir else RUNS_DIR
    args.runs_dir = str(RUNS_DIR)  # the worker processes import this module afresh
    torch.set_num_threads(args.threads or os.cpu_count() or 1)  # train() sets its own
    cv2.setNumThreads(1)
    # --eval/--export on a run that already has a checkpoint only evaluate/export it; on a new
    # run (or with --resume/--overwrite) they follow the training
    exists = (run_dir(args.run) / "last.pt").is_file()
    post_only = (args.eval or args.export) and exists and not (args.resume or args.overwrite)
    do_train = not (args.no_train or args.weights or post_only)
    if do_train:
        train(args)
    if args.eval:
        model = load_for_export(args)
        if args.eval_size and args.eval_size != model.image_encoder.img_size:
            model = build_at(args.eval_size, model.state_dict()).eval()
        t0 = time.time()
        res = evaluate(model, n_images=args.eval_images)
        print(f"eval at {model.image_encoder.img_size}px on {args.eval_images} held-out images "
              f"({time.time() - t0:.0f}s): " + ", ".join(f"mIoU[{k}]={v:.3f}" for k, v in res.items()), flush=True)
    if args.export:
        export(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
