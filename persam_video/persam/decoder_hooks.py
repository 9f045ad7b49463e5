"""Target-guided attention and target-semantic prompting on the installed SAM decoder.

Both are switched on for one decoder pass by :func:`decoder_switches`, a context manager
that adds hooks to ``segment_anything``'s ``TwoWayTransformer`` and restores it on exit;
no segment_anything source is copied.

- Target-guided attention: the token-to-image cross-attention of every two-way layer
  becomes :class:`GuidedAttention` for the duration: after the usual softmax over image
  tokens the per-object map is added to the probabilities and a second softmax is taken
  (the public PerSAM code does this double softmax).
- Target-semantic prompting: the object's mean target embedding is added to the token
  queries before each two-way layer and to the queries of the final token-to-image
  attention. We add it to the queries only. (The public image code adds it in place to a
  tensor that is also the first layer's positional encoding, so there the encoding carries
  it as well; we implement the definition, not that side effect.)
"""
from __future__ import annotations

import contextlib
import math
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from segment_anything.modeling.mask_decoder import MaskDecoder
from segment_anything.modeling.transformer import Attention


class GuidedAttention(Attention):
    """segment_anything's ``Attention`` with an additive bias on the softmaxed weights."""

    bias: Optional[torch.Tensor] = None  # (B, 1, 1, n_image_tokens)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        q = self._separate_heads(self.q_proj(q), self.num_heads)
        k = self._separate_heads(self.k_proj(k), self.num_heads)
        v = self._separate_heads(self.v_proj(v), self.num_heads)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        if self.bias is not None:
            attn = torch.softmax(attn + self.bias, dim=-1)
        return self.out_proj(self._recombine_heads(attn @ v))


def attention_bias(maps: torch.Tensor, grid: tuple) -> torch.Tensor:
    """Per-object bias from full-resolution confidence maps (N, H, W): (N, 1, 1, g*g).

    Standardise each map (mean 0, unbiased std 1), resize bilinearly to the grid, sigmoid.
    """
    flat = maps.flatten(1)
    standard = (maps - flat.mean(1)[:, None, None]) / flat.std(1)[:, None, None]
    small = F.interpolate(standard[:, None], size=tuple(grid), mode="bilinear")
    return small.sigmoid().flatten(1)[:, None, None, :]


@contextlib.contextmanager
def decoder_switches(decoder: MaskDecoder, bias: Optional[torch.Tensor] = None,
                     target_means: Optional[torch.Tensor] = None) -> Iterator[None]:
    """Turn on guided attention (``bias`` from :func:`attention_bias`) and/or semantic prompting
    (mean target embeddings (N, C)) for the decoder passes run inside the block; those passes must
    run SAM's own decoder forward (``FramePredictor.decode(..., plain=True)``), which goes through
    the submodules hooked here."""
    if bias is None and target_means is None:
        yield
        return
    transformer = decoder.transformer
    handles = []
    swapped = []
    try:
        if bias is not None:
            for layer in transformer.layers:
                module = layer.cross_attn_token_to_image
                swapped.append((module, module.__class__))
                module.__class__ = GuidedAttention
                module.bias = bias
        if target_means is not None:
            extra = target_means[:, None, :]

            def add_to_queries(_module, args, kwargs):
                kwargs = dict(kwargs)
                kwargs["queries"] = kwargs["queries"] + extra
                return args, kwargs

            def add_to_final_q(_module, args, kwargs):
                kwargs = dict(kwargs)
                kwargs["q"] = kwargs["q"] + extra
                return args, kwargs

            for layer in transformer.layers:
                handles.append(layer.register_forward_pre_hook(add_to_queries, with_kwargs=True))
            handles.append(transformer.final_attn_token_to_image.register_forward_pre_hook(
                add_to_final_q, with_kwargs=True))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, cls in swapped:
            module.__class__ = cls
            if "bias" in module.__dict__:
                del module.__dict__["bias"]

