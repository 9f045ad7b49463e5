"""PerSAM-F's fit: two scale weights per object, learnt on the seed frame's three masks.

Two modes, the same optimiser (AdamW, cosine schedule) and losses (Dice + focal), both with the
loss's gradient in closed form (:class:`PixelLoss`, no autograd graph):

- ``exact``: the losses over every pixel, as the public recipe computes them;
- ``fast``: the losses over a lattice of at most ``LATTICE_PIXELS`` pixels per frame, each
  standing for its block (:mod:`.lattice`), so a fit costs the same on any photo size. The sums
  are estimated, not dropped, so the weights follow the exact fit's path closely
  (``benchmarks/bench_fit.py`` and ``benchmarks/bench_photos.py`` measure both).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..options import FIT_MODES
from .decoding import PassOutput, fuse  # noqa: F401 (fuse: the fused logits the losses are taken on)
from .lattice import LATTICE_PIXELS, lattice, logits_at

Progress = Callable[[float], None]  # the fraction of a fit's iterations done
ONE_THREAD_PIXELS = 4 * LATTICE_PIXELS  # a loss this small runs on one thread (_threads_for)


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


def sample_pixels(logits: torch.Tensor, target: torch.Tensor, budget: int = LATTICE_PIXELS
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The fast fit's pixels. ``logits`` (N, 3, *S), ``target`` (N, *S), S = (H, W) or (F, H, W).
    Returns the lattice's logits (N, 3, P), targets (N, P) and weights (1, P): the pixels each
    stands for."""
    grid = lattice(target.shape[-2:], budget, target.device)
    kept = logits[..., grid.rows, :][..., grid.cols]
    weight = grid.weights().expand(target.shape[1:-2] + grid.weights().shape)
    return kept.flatten(2), target[..., grid.rows, :][..., grid.cols].flatten(1).float(), weight.reshape(1, -1)


def weighted_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor, total: int,
                  alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Dice + focal per object on weighted pixels (N, P), each pixel counting ``weight`` times,
    the focal mean taken over ``total`` pixels: (N,)."""
    prob = logits.sigmoid()
    inter = (weight * prob * target).sum(-1)
    dice = 1 - (2 * inter + 1) / ((weight * prob).sum(-1) + (weight * target).sum(-1) + 1)
    focal = (weight * _focal_terms(logits, target, alpha, gamma)).sum(-1) / total
    return dice + focal


class PixelLoss:
    """The gradient of :func:`weighted_loss` (summed over objects) with respect to the fused
    weights, in closed form: no autograd graph, a fraction of the work per iteration. ``logits``
    (N, 3, P), ``target`` (N, P); ``weight`` (1 or N, P), or None for every pixel once (the exact
    loss). The focal term's ``gamma`` is 2 (the recipe's)."""

    def __init__(self, logits: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor], total: int,
                 alpha: float = 0.25):
        self.base = logits[:, 0]
        self.delta = logits[:, 1:] - logits[:, :1]  # fuse(): L0 + w1 (L1 - L0) + w2 (L2 - L0)
        self.target = target.float()
        self.weight = weight
        self.weighted_target = self.target if weight is None else weight * self.target
        self.target_sum = self.weighted_target.sum(-1, keepdim=True)
        alpha_t = self.target * (2 * alpha - 1) + (1 - alpha)
        self.focal_weight = (alpha_t if weight is None else alpha_t * weight) / total
        self.flip = 1 - 2 * self.target

    def gradient(self, weights: torch.Tensor) -> torch.Tensor:
        """d(loss)/d(weights) for weights (N, 2): (N, 2)."""
        t = self.target
        x = torch.addcmul(self.base, self.delta[:, 0], weights[:, :1]).addcmul_(self.delta[:, 1], weights[:, 1:])
        s = x.sigmoid()
        ds = (1 - s).mul_(s)
        # Dice: 1 - (2 I + 1) / (sum(p) + sum(t) + 1)
        num = 2 * (self.weighted_target * s).sum(-1, keepdim=True) + 1
        weighted_s = s if self.weight is None else self.weight * s
        den = weighted_s.sum(-1, keepdim=True) + self.target_sum + 1
        if self.weight is None:
            grad = (-2 / den * t).add_(num / den.square())
        else:
            grad = (num / den.square() * self.weight).sub_(2 / den * self.weighted_target)
        grad.mul_(ds)
        # focal: alpha_t * ce * q^2 with ce = softplus(x) - t x and q = 1 - p_t = t + (1 - 2t) s
        q = torch.addcmul(t, self.flip, s)
        ce = F.softplus(x).sub_(x.mul_(t))
        inner = (s - t).mul_(q).add_(ce.mul_(self.flip).mul_(ds).mul_(2))
        grad.add_(inner.mul_(q).mul_(self.focal_weight))
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
           lr: float, progress: Optional[Progress] = None) -> torch.Tensor:
    """The recipe's optimiser on (n, 2) weights starting at 1/3: AdamW (torch's defaults, eps 1e-4),
    cosine schedule. ``backward(weights)`` sets ``weights.grad``; ``progress`` hears the fraction
    done about a hundred times.

    torch's own update, called in its functional form (``torch.optim.adamw.adamw``, what
    ``AdamW.step`` calls), with the scheduler's rates from :func:`cosine_rates`: the same weights
    to the bit as the ``AdamW`` and ``CosineAnnealingLR`` classes (tests/persam/test_fit.py), without
    their methods, which import ``torch._dynamo`` (over a second of start-up)."""
    from torch.optim.adamw import adamw

    weights = torch.nn.Parameter(torch.full((n, 2), 1 / 3, device=device))
    exp_avg = torch.zeros_like(weights, memory_format=torch.preserve_format)
    exp_avg_sq = torch.zeros_like(weights, memory_format=torch.preserve_format)
    step = torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32)
    every = max(1, iterations // 100)
    for i, rate in enumerate(cosine_rates(lr, iterations), 1):
        weights.grad = None
        backward(weights)
        with torch.no_grad():
            adamw([weights], [weights.grad], [exp_avg], [exp_avg_sq], [], [step], amsgrad=False, beta1=0.9,
                  beta2=0.999, lr=rate, weight_decay=1e-2, eps=1e-4, maximize=False)
        if progress is not None and (i % every == 0 or i == iterations):
            progress(i / iterations)
    return weights.detach()


@contextmanager
def _threads_for(pixels: int, device: torch.device) -> Iterator[None]:
    """One torch thread for a loss of at most ``ONE_THREAD_PIXELS`` pixels on the CPU: each of its
    operations is then too short for a thread hand-off to pay (on a busy machine, 10-20 times slower
    with two threads than with one, benchmarks/README.md), and its sums no longer follow the thread count."""
    threads = torch.get_num_threads()
    single = device.type == "cpu" and pixels <= ONE_THREAD_PIXELS and threads > 1
    if single:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if single:
            torch.set_num_threads(threads)


def fit_pixels(loss: PixelLoss, iterations: int = 800, lr: float = 4e-4, progress: Optional[Progress] = None
               ) -> torch.Tensor:
    """The two scale weights per object that minimise ``loss``: (N, 2)."""
    def backward(weights: torch.nn.Parameter) -> None:
        weights.grad = loss.gradient(weights.detach())

    with torch.no_grad(), _threads_for(loss.base.numel(), loss.base.device):
        return _adamw(loss.base.shape[0], loss.base.device, backward, iterations, lr, progress)


def fit_scale_weights(logits: torch.Tensor, target: torch.Tensor, iterations: int = 800,
                      lr: float = 4e-4, mode: str = "exact", progress: Optional[Progress] = None) -> torch.Tensor:
    """Fit PerSAM-F's two scale weights per object: returns (N, 2).

    ``logits`` are the decoder's three full-resolution logits (N, 3, *S) for the seed prompts,
    computed once: with SAM frozen and the prompts fixed they are the same every iteration (the
    public recipe re-runs the decoder each time; ``benchmarks/bench_fit.py`` times both and checks
    they agree); ``target`` is (N, *S), S = (H, W) or (F, H, W) (one loss per object over all its
    frames). Objects are fitted jointly: Adam's update is element-wise and the losses are summed,
    so this equals N separate fits. ``mode``: ``exact`` (every pixel, the default: the public
    recipe's weights) or ``fast`` (a bounded lattice, see the module's docstring).
    """
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}: use exact or fast")
    logits = logits.detach()
    total = target[0].numel()
    if mode == "exact":
        loss = PixelLoss(logits.flatten(2), target.flatten(1), None, total)
    else:
        loss = PixelLoss(*sample_pixels(logits, target), total=total)
    return fit_pixels(loss, iterations, lr, progress)


def fit_on_passes(passes: Sequence[PassOutput], masks: Sequence[torch.Tensor], iterations: int = 800,
                  lr: float = 4e-4, mode: str = "exact", progress: Optional[Progress] = None) -> torch.Tensor:
    """:func:`fit_scale_weights` on decoder passes of one size (N objects each, one per image) and
    their masks (N, H, W): ``exact`` upscales their three logits to every pixel; ``fast`` computes
    them at the lattice's pixels only, so neither time nor memory grows with the image."""
    if mode not in FIT_MODES:
        raise ValueError(f"unknown fit mode {mode!r}: use exact or fast")
    if mode == "exact":
        logits = torch.stack([p.logits for p in passes], dim=2)
        return fit_scale_weights(logits, torch.stack(list(masks), dim=1), iterations, lr, mode, progress)
    size = masks[0].shape[-2:]
    grid = lattice(size, device=masks[0].device)
    logits = torch.stack([logits_at(p.predictor.model, p.low_res, p.predictor.input_size, size, grid.rows, grid.cols)
                          for p in passes], dim=2)
    target = torch.stack([m[:, grid.rows][:, :, grid.cols] for m in masks], dim=1)
    weight = grid.weights().repeat(len(passes), 1, 1).reshape(1, -1)
    loss = PixelLoss(logits.flatten(2), target.flatten(1), weight, total=len(passes) * size[0] * size[1])
    return fit_pixels(loss, iterations, lr, progress)
