"""PerSAM-F's fit: two scale weights per object, learnt on the seed frame's three masks."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .decoding import fuse


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


def fit_scale_weights(logits: torch.Tensor, target: torch.Tensor, iterations: int = 800,
                      lr: float = 4e-4) -> torch.Tensor:
    """Fit PerSAM-F's two scale weights per object: returns (N, 2).

    ``logits`` are the decoder's three full-resolution logits (N, 3, H, W) for the seed
    prompts, computed once: with SAM frozen and the prompts fixed they are the same every
    iteration (the public recipe re-runs the decoder each time; ``benchmarks/bench_fit.py``
    times both and checks they agree). Objects are fitted jointly: Adam's update is
    element-wise and the losses are summed, so this equals N separate fits.
    """
    target = target.float()
    n = target.shape[0]
    weights = torch.nn.Parameter(torch.full((n, 2), 1 / 3, device=target.device))
    optimizer = torch.optim.AdamW([weights], lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    for _ in range(iterations):
        fused = fuse(logits, weights)
        loss = (dice_loss(fused, target) + focal_loss(fused, target)).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
    return weights.detach()
