"""A bounded lattice of a frame's pixels, each standing for its block, and SAM's full-resolution
logits computed at those pixels only: the fast PerSAM-F fit's cost and memory do not grow with
the photo (docs/photos.md, "PerSAM-F's fit: exact or fast")."""
from __future__ import annotations

import math
from typing import NamedTuple, Sequence, Tuple

import torch

LATTICE_PIXELS = 1 << 16  # the most pixels of one frame the fast fit takes


class Lattice(NamedTuple):
    """Rows and columns of the kept pixels and how many pixels each row (column) stands for."""

    rows: torch.Tensor
    row_weights: torch.Tensor
    cols: torch.Tensor
    col_weights: torch.Tensor

    def weights(self) -> torch.Tensor:
        """The pixels each kept pixel stands for: (rows, cols), summing to the frame's area."""
        return self.row_weights[:, None] * self.col_weights[None, :]


def lattice_stride(size: Sequence[int], budget: int = LATTICE_PIXELS) -> int:
    """The smallest stride whose lattice keeps at most ``budget`` pixels of a frame of ``size``."""
    h, w = int(size[0]), int(size[1])
    stride = max(1, math.ceil(math.sqrt(h * w / budget)))
    while math.ceil(h / stride) * math.ceil(w / stride) > budget:
        stride += 1
    return stride


def _blocks(n: int, stride: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Blocks of ``stride`` along an axis of ``n`` pixels (the last one shorter): centres and lengths."""
    starts = torch.arange(0, n, stride, device=device)
    ends = (starts + stride).clamp(max=n)
    return (starts + ends - 1) // 2, (ends - starts).float()


def lattice(size: Sequence[int], budget: int = LATTICE_PIXELS, device: torch.device = torch.device("cpu")) -> Lattice:
    """The lattice of a frame of ``size`` (H, W): one pixel per block, the block's centre."""
    stride = lattice_stride(size, budget)
    rows, row_weights = _blocks(int(size[0]), stride, device)
    cols, col_weights = _blocks(int(size[1]), stride, device)
    return Lattice(rows, row_weights, cols, col_weights)


def _resize_rows(n_in: int, n_out: int, picked: torch.Tensor) -> torch.Tensor:
    """The rows ``picked`` of a bilinear resize (align_corners=False) from ``n_in`` to ``n_out``
    samples as a matrix (len(picked), n_in), by torch's rule for the source index."""
    scale = n_in / n_out
    src = ((picked.double() + 0.5) * scale - 0.5).clamp(min=0)
    low = src.floor().long().clamp(max=n_in - 1)
    high = (low + 1).clamp(max=n_in - 1)
    frac = (src - low.double()).float()
    matrix = torch.zeros(picked.numel(), n_in, device=picked.device)
    index = torch.arange(picked.numel(), device=picked.device)
    matrix.index_put_((index, low), 1 - frac, accumulate=True)
    matrix.index_put_((index, high), frac, accumulate=True)
    return matrix


def _axis(grid: int, side: int, crop: int, size: int, picked: torch.Tensor) -> torch.Tensor:
    """Along one axis, SAM's post-processing (grid -> side, crop, -> size) at ``picked`` outputs."""
    first = _resize_rows(grid, side, torch.arange(crop, device=picked.device))
    return _resize_rows(crop, size, picked) @ first


def logits_at(model: torch.nn.Module, low_res: torch.Tensor, input_size: Sequence[int],
              original_size: Sequence[int], rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """``model.postprocess_masks(low_res, ...)[..., rows, :][..., cols]`` to float rounding, without
    the full-resolution map: both resizes are linear and separable, so each axis is one small matrix."""
    side = model.image_encoder.img_size
    grid_h, grid_w = low_res.shape[-2:]
    along_h = _axis(grid_h, side, int(input_size[0]), int(original_size[0]), rows.to(low_res.device))
    along_w = _axis(grid_w, side, int(input_size[1]), int(original_size[1]), cols.to(low_res.device))
    return along_h @ low_res @ along_w.T
