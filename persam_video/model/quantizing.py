"""Dynamic int8 quantisation of a loaded SAM's image encoder: its Linear layers only.

:func:`quantize_encoder` replaces every ``torch.nn.Linear`` of the image encoder by torch's
dynamically quantised one (weights stored as int8 per tensor, activations quantised per call),
so the encoder's matrix products run in int8 on CPUs without native bf16. Convolutions, norms
and attention stay float32, as do the prompt encoder and the mask decoder.

It is an explicit opt-in (``--quantize int8``), never part of ``--fast``: the masks it gives and
what it saves are in benchmarks/README.md. CPU only (torch's quantised kernels).
"""
from __future__ import annotations

import warnings

import torch

from ..errors import PersamError

QUANTIZE_MODES = ("off", "int8")


def check_quantize(mode: str, device: torch.device) -> bool:
    """Whether the encoder is quantised; int8 on a device other than the CPU is an error."""
    if mode not in QUANTIZE_MODES:
        raise PersamError(f"unknown quantisation {mode!r}: use {', '.join(QUANTIZE_MODES)}")
    if mode == "int8" and device.type != "cpu":
        raise PersamError(f"int8 quantisation runs on the CPU only, not on {device.type}")
    return mode == "int8"


def quantize_encoder(model: torch.nn.Module) -> int:
    """Quantise the Linear layers of ``model.image_encoder`` to dynamic int8, in place; returns
    how many were replaced."""
    from torch.ao.quantization import quantize_dynamic

    before = sum(type(m) is torch.nn.Linear for m in model.image_encoder.modules())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantize_dynamic(model.image_encoder, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return before
