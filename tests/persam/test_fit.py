"""PerSAM-F's optimiser: torch's AdamW and cosine schedule to the bit, without torch._dynamo."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from persam_video.persam import fit


def torch_classes(n: int, backward, iterations: int, lr: float) -> torch.Tensor:
    """The public recipe's loop: torch.optim.AdamW and CosineAnnealingLR."""
    weights = torch.nn.Parameter(torch.full((n, 2), 1 / 3))
    optimizer = torch.optim.AdamW([weights], lr=lr, eps=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, iterations)
    for _ in range(iterations):
        optimizer.zero_grad(set_to_none=True)
        backward(weights)
        optimizer.step()
        scheduler.step()
    return weights.detach()


@pytest.mark.parametrize("n, iterations, lr", [(1, 1, 4e-4), (1, 60, 4e-4), (3, 800, 4e-4), (2, 150, 0.1)])
def test_optimiser_equals_torchs_adamw_and_cosine_schedule(n, iterations, lr):
    gen = torch.Generator().manual_seed(n * 1000 + iterations)
    logits = torch.randn(n, 3, 30, 40, generator=gen) * 4
    target = (torch.rand(n, 30, 40, generator=gen) > 0.6).float()

    def backward(weights):
        fused = fit.fuse(logits, weights)
        (fit.dice_loss(fused, target) + fit.focal_loss(fused, target)).sum().backward()

    ours = fit._adamw(n, torch.device("cpu"), backward, iterations, lr)
    theirs = torch_classes(n, backward, iterations, lr)
    assert torch.equal(ours, theirs), (ours, theirs)
    assert not torch.equal(ours, torch.full((n, 2), 1 / 3))  # the weights did move


def test_cosine_rates_follow_the_scheduler():
    weights = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([weights], lr=4e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, 37)
    expected = []
    for _ in range(37):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert list(fit.cosine_rates(4e-4, 37)) == expected


def test_fitting_does_not_import_torch_dynamo():
    code = ("import sys, torch\n"
            "from persam_video.persam import fit\n"
            "fit.fit_scale_weights(torch.randn(2, 3, 16, 16), torch.rand(2, 16, 16) > 0.5, iterations=3)\n"
            "fit.fit_scale_weights(torch.randn(2, 3, 16, 16), torch.rand(2, 16, 16) > 0.5, iterations=3, mode='fast')\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
