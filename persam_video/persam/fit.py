"""PerSAM-F's fit: two scale weights per object, learnt on the seed frame's three masks.

Two modes, the same optimiser (AdamW, cosine schedule) and losses (Dice + focal):

- ``exact``: the losses over every pixel, as the public recipe computes them;
- ``fast``: the losses over the pixels that can move them: every pixel of the object and every
  pixel where one of the three logits is above ``NEAR_LOGIT``, plus a regular lattice of one
  pixel in ``STRIDE x STRIDE`` of the rest, each standing for the ``STRIDE**2`` pixels around it
  (far background, where sigmoid(logit) < 4e-4). The sums are estimated, not dropped, so the
  weights follow the exact fit's path closely (``benchmarks/bench_fit.py`` measures both).
"""
from __future__ import annotations

import math
from typing import Callable, Iterator, Tuple

import torch
import torch.nn.functional as F

from ..options import FIT_MODES
from .decoding import fuse

NEAR_LOGIT = -8.0
STRIDE = 8


def _focal_terms(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """The sigmoid focal loss of each pixel (same shape as ``logits``)."""
    prob = logits.sigmoid()
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = prob * target + (1 - prob) * (1 - target)
    alpha_t = alpha * target + (1 - alpha) * (1 - target)
    return alpha_t * ce * (1 - p_t) ** gamma


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Dice loss per object with +1 smoothing, on sigmoid(logits): (N,)."""
    prob = logits.sigmoid().flatten(1)
    target = target.flatten(1)
    return 1 - (2 * (prob * target).sum(-1) + 1) / (prob.sum(-1) + target.sum(-1) + 1)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25,
               gamma: float = 2.0) -> torch.Tensor:
    """Sigmoid focal loss per object, mean over pixels: (N,)."""
    return _focal_terms(logits.flatten(1), target.flatten(1), alpha, gamma).mean(1)


def sample_pixels(logits: torch.Tensor, target: torch.Tensor, near_logit: float = NEAR_LOGIT,
                  stride: int = STRIDE) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fast fit's pixels. ``logits`` (N, 3, *S), ``target`` (N, *S) float, S = (H, W) or
    (F, H, W). Returns the kept logits (N, 3, P), their targets (N, P) and weights (N, P): 1 for a
    pixel near the object, ``stride**2`` for a lattice pixel of the far background, 0 for padding
    (objects keep different numbers of pixels)."""
    n = logits.shape[0]
    flat = logits.flatten(2)
    tgt = target.flatten(1)
    near = (flat.max(dim=1).values > near_logit) | (tgt > 0)
    h, w = target.shape[-2:]
    lattice = torch.zeros((h, w), dtype=torch.bool, device=target.device)
    lattice[::stride, ::stride] = True
    lattice = lattice.expand(target.shape[1:]).reshape(1, -1)
    weight = torch.where(near, 1.0, torch.where(lattice, float(stride * stride), 0.0))
    count = (weight > 0).sum(dim=1)
    size = int(count.max()) if n else 0
    # each object's kept pixels first (a stable sort on "kept"), padded to the longest
    order = torch.argsort((weight == 0).to(torch.uint8), dim=1, stable=True)[:, :size]
    kept_weight = weight.gather(1, order)
    return flat.gather(2, order[:, None].expand(n, flat.shape[1], size)), tgt.gather(1, order), kept_weight


def weighted_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, total: int,
                  alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Dice + focal per object on weighted pixels (N, P), each pixel counting ``weight`` times,
    the focal mean taken over ``total`` pixels: (N,)."""
    prob = logits.sigmoid()
    inter = (weight * prob * target).sum(-1)
    dice = 1 - (2 * inter + 1) / ((weight * prob).sum(-1) + (weight * target).sum(-1) + 1)
    focal = (weight * _focal_terms(logits, target, alpha, gamma)).sum(-1) / total
    return dice + focal


class SampledLoss:
    """The gradient of :func:`weighted_loss` (summed over objects) with respect to the fused
    weights, in closed form: no autograd graph, half the work per iteration. Built once from
    :func:`sample_pixels`' output; the focal term's ``gamma`` is 2 (the recipe's)."""

    def __init__(self, logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, total: int,
                 alpha: float = 0.25):
        self.base = logits[:, 0]
        self.delta = logits[:, 1:] - logits[:, :1]  # fuse(): L0 + w1 (L1 - L0) + w2 (L2 - L0)
        self.target = target
        self.weight = weight
        self.weighted_target = weight * target
        self.target_sum = self.weighted_target.sum(-1, keepdim=True)
        self.focal_weight = weight * (alpha * target + (1 - alpha) * (1 - target)) / total
        self.flip = 1 - 2 * target

    def gradient(self, weights: torch.Tensor) -> torch.Tensor:
        """d(loss)/d(weights) for weights (N, 2): (N, 2)."""
        x = torch.baddbmm(self.base[:, None], weights[:, None], self.delta)[:, 0]
        s = x.sigmoid()
        ds = s * (1 - s)
        # Dice: 1 - (2 I + 1) / (sum(p) + sum(t) + 1)
        num = 2 * (self.weighted_target * s).sum(-1, keepdim=True) + 1
        den = (self.weight * s).sum(-1, keepdim=True) + self.target_sum + 1
        grad = ds * (num / den.square() * self.weight - 2 / den * self.weighted_target)
        # focal: alpha_t * ce * q^2 with ce = softplus(x) - t x and q = 1 - p_t = t + (1 - 2t) s
        q = self.target + self.flip * s
        ce = F.softplus(x) - self.target * x
        grad += self.focal_weight * q * ((s - self.target) * q + 2 * ce * self.flip * ds)
        return torch.bmm(self.delta, grad[:, :, None])[:, :, 0]


def cosine_rates(lr: float, iterations: int) -> Iterator[float]:
    """The learning rate of each iteration under ``CosineAnnealingLR(T_max=iterations)``, by the
    same recursive update torch's scheduler applies after each step (so the same floats)."""
    rate, eta_min = lr, 0.0
    for t in range(1, iterations + 1):
        yield rate
        rate = ((1 + math.cos(math.pi * t / iterations)) / (1 + math.cos(math.pi * (t - 1) / iterations))
                * (rate - eta_min) + eta_min)


def _adamw(n: int, device: torch.device, backward: Callable[[torch.nn.Parameter], None], iterations: int,
           lr: float) -> torch.Tensor:
    """The recipe's optimiser on (n, 2) weights starting at 1/3: AdamW (torch's defaults, eps 1e-4),
    cosine schedule. ``backward(weights)`` sets ``weights.grad``.

    torch's own update, called in its functional form (``torch.optim.adamw.adamw``, what
    ``AdamW.step`` calls), with the scheduler's rates from :func:`cosine_rates`: the same weights
    to the bit as the ``AdamW`` and ``CosineAnnealingLR`` classes (tests/persam/test_fit.py), without
    their methods, which import ``torch._dynamo`` (over a second of start-up)."""
    from torch.optim.adamw import adamw

    weights = torch.nn.Parameter(torch.full((n, 2), 1 / 3, device=device))
    exp_avg = torch.zeros_like(weights, memory_format=torch.preserve_format)
    exp_avg_sq = torch.zeros_like(weights, memory_format=torch.preserve_format)
    step = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32)
    for rate in cosine_rates(lr, iterations):
        weights.grad = None
        backward(weights)
        with torch.no_grad():
            adamw([weights], [weights.grad], [exp_avg], [exp_avg_sq], [], [step], amsgrad=False, beta1=0.9,
                  beta2=0.999, lr=rate, weight_decay=1e-2, eps=1e-4, maximize=False)
    return weights.detach()


def fit_scale_weights(logits: torch.Tensor, target: torch.Tensor, iterations: int = 800,
                      lr: float = 4e-4, mode: str = "exact") -> torch.Tensor:
    """Fit PerSAM-F's two scale weights per object: returns (N, 2).

    ``logits`` are the decoder's three full-resolution logits (N, 3, *S) for the seed prompts,
    computed once: with SAM frozen and the prompts fixed they are the same every iteration (the
    public recipe re-runs the decoder each time; ``benchmarks/bench_fit.py`` times both and checks
    they agree); ``target`` is (N, *S), S = (H, W) or (F, H, W) (one loss per object over all its
    frames). Objects are fitted jointly: Adam's update is element-wise and the losses are summed,
    so this equals N separate fits. ``mode``: ``exact`` (every pixel, the default: the public
    recipe's weights) or ``fast`` (sampled pixels, see the module's docstring).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}: use exact or fast")
    target = target.float()
    if mode == "exact":
        def backward(weights: torch.nn.Parameter) -> None:
            fused = fuse(logits, weights)
            (dice_loss(fused, target) + focal_loss(fused, target)).sum().backward()
    else:
        sampled = SampledLoss(*sample_pixels(logits.detach(), target), total=target[0].numel())

        def backward(weights: torch.nn.Parameter) -> None:
            weights.grad = sampled.gradient(weights.detach())
    return _adamw(target.shape[0], target.device, backward, iterations, lr)
