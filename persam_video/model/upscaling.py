"""SAM's post-processing of low-resolution maps to the frame, without the padding's share.

``Sam.postprocess_masks`` resizes a map (..., g, g) bilinearly to the square input (S, S),
crops the part the frame fills (its longest side resized to S, the rest zero padding) and
resizes that to the frame, so on a landscape frame much of the first resize is padding that is
computed and thrown away.

:func:`postprocess` resizes only the rows and columns that reach the crop. With
``align_corners=False`` and an integer factor ``f = S / g``, output pixel ``o`` of the first
resize reads input pixels ``floor((o + 0.5) / f - 0.5)`` and the next one, with weights that
depend only on ``o`` and ``f``; so resizing the first ``r`` input rows to ``r * f`` output rows
(the same factor, computed exactly as ``r / (r * f)``) gives the same numbers for every output
row whose inputs lie inside those ``r`` rows, which holds for the crop when
``r = ceil(h / f) + 1``. The result equals SAM's bit for bit (tests/model/test_fast_decoder.py checks it
on many sizes); where the factor is not an integer SAM's own function runs.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


def _kept(size: int, factor: int, available: int) -> int:
    """Input rows (or columns) the first resize needs for ``size`` output rows."""
    return min(available, math.ceil(size / factor) + 1)


def postprocess(model: torch.nn.Module, low_res: torch.Tensor, input_size: Sequence[int],
                original_size: Sequence[int]) -> torch.Tensor:
    """``model.postprocess_masks(low_res, input_size, original_size)``, computed on the crop only."""
    if getattr(model, "resizes_directly", False):  # SAM 2.1: no padded square to crop (sam2_model.py)
        return model.postprocess_masks(low_res, input_size, original_size)
    side = model.image_encoder.img_size
    grid_h, grid_w = low_res.shape[-2:]
    if grid_h != grid_w or side % grid_h:
        return model.postprocess_masks(low_res, input_size, original_size)
    factor = side // grid_h
    in_h, in_w = int(input_size[0]), int(input_size[1])
    rows, cols = _kept(in_h, factor, grid_h), _kept(in_w, factor, grid_w)
    first = F.interpolate(low_res[..., :rows, :cols], (rows * factor, cols * factor), mode="bilinear",
                          align_corners=False)
    cropped = first[..., :in_h, :in_w]
    return F.interpolate(cropped, tuple(int(v) for v in original_size), mode="bilinear", align_corners=False)
