"""Fused attention for SAM's modules: ``scaled_dot_product_attention`` in place of
matmul-softmax-matmul, built at load time (:func:`fuse_attention`) as a subclass here of each
installed attention class, made of the built module's own parts (:mod:`.rebuilding`).

The subclasses keep every parameter and helper of the installed classes and only replace
``forward``; the outputs equal the unmodified modules' to float rounding (not bit for bit,
which is why the fp32 path leaves the modules alone: see ``persam_video.model.fast_path``).

- decoder: ``segment_anything`` (and ``mobile_sam``) ``transformer.Attention``;
- ViT encoders (vit_b/l/h, small): ``image_encoder.Attention``, whose decomposed relative
  position terms become the additive mask of the fused call;
- TinyViT (vit_t): ``tiny_vit_sam.Attention``, whose learnt biases become that mask.
"""
from __future__ import annotations

import sys
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling import image_encoder as sam_encoder
from segment_anything.modeling import transformer as sam_transformer

from .rebuilding import rebuilt_as, replace_modules


def _heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, N, C) -> (B, heads, N, C / heads)."""
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


class FusedDecoderAttention(sam_transformer.Attention):
    """The two-way transformer's attention with one fused attention call."""

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:  # noqa: D102
        q = _heads(self.q_proj(q), self.num_heads)
        k = _heads(self.k_proj(k), self.num_heads)
        v = _heads(self.v_proj(v), self.num_heads)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.out_proj(self._recombine_heads(out))


def relative_position_mask(q: torch.Tensor, rel_pos_h: torch.Tensor, rel_pos_w: torch.Tensor,
                           size: Tuple[int, int]) -> torch.Tensor:
    """SAM's decomposed relative position terms for queries ``q`` (B, heads, H*W, C) on an
    H x W grid, as an additive attention mask (B, heads, H*W, H*W)."""
    h, w = size
    rh = sam_encoder.get_rel_pos(h, h, rel_pos_h).to(q.dtype)
    rw = sam_encoder.get_rel_pos(w, w, rel_pos_w).to(q.dtype)
    grid = q.reshape(q.shape[0], q.shape[1], h, w, q.shape[-1])
    rel_h = torch.einsum("bnhwc,hkc->bnhwk", grid, rh)
    rel_w = torch.einsum("bnhwc,wkc->bnhwk", grid, rw)
    mask = rel_h[..., :, None] + rel_w[..., None, :]  # b, n, h, w, kh, kw
    return mask.reshape(q.shape[0], q.shape[1], h * w, h * w)


class FusedEncoderAttention(sam_encoder.Attention):
    """The ViT encoder's attention (relative positions as the mask) with one fused call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        b, h, w, _ = x.shape
        qkv = self.qkv(x).reshape(b, h * w, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, H*W, C)
        mask = relative_position_mask(q, self.rel_pos_h, self.rel_pos_w, (h, w)) if self.use_rel_pos else None
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        out = out.view(b, self.num_heads, h, w, -1).permute(0, 2, 3, 1, 4).reshape(b, h, w, -1)
        return self.proj(out)


def _loaded(module: str, name: str) -> Optional[type]:
    """``module.name`` if that module is already imported (a MobileSAM model exists only once
    ``mobile_sam`` is; importing it here would cost a second for nothing), else None."""
    loaded = sys.modules.get(module)
    return None if loaded is None else getattr(loaded, name, None)


def _fused_tiny_vit(base: type) -> type:
    """A fused subclass of TinyViT's attention (its learnt offset biases as the mask)."""

    class FusedTinyViTAttention(base):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
            b, n, _ = x.shape
            qkv = self.qkv(self.norm(x)).view(b, n, self.num_heads, -1)
            q, k, v = (t.permute(0, 2, 1, 3) for t in qkv.split([self.key_dim, self.key_dim, self.d], dim=3))
            bias = self.attention_biases[:, self.attention_bias_idxs] if self.training else self.ab
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), scale=self.scale)
            return self.proj(out.transpose(1, 2).reshape(b, n, self.dh))

    return FusedTinyViTAttention


def fused_classes() -> Dict[type, type]:
    """Installed attention class -> its fused subclass, for every class found installed."""
    table: Dict[type, type] = {sam_transformer.Attention: FusedDecoderAttention,
                               sam_encoder.Attention: FusedEncoderAttention}
    mobile_decoder = _loaded("mobile_sam.modeling.transformer", "Attention")
    if mobile_decoder is not None:
        # same attributes and helpers as segment_anything's: the same fused forward serves, on a
        # class of MobileSAM's own line (a module is rebuilt only as a class of its own line)
        table[mobile_decoder] = type("FusedMobileDecoderAttention", (FusedDecoderAttention, mobile_decoder), {})
    tiny = _loaded("mobile_sam.modeling.tiny_vit_sam", "Attention")
    if tiny is not None:
        table[tiny] = _fused_tiny_vit(tiny)
    return table


def fused(module: torch.nn.Module) -> Optional[torch.nn.Module]:
    """``module`` built as its fused subclass, if its class is exactly an installed SAM attention
    class; else None."""
    cls = fused_classes().get(type(module))
    return None if cls is None else rebuilt_as(module, cls)


def fuse_attention(model: torch.nn.Module) -> int:
    """Build every attention module of ``model`` whose class is exactly an installed SAM class as
    its fused subclass, in its place; returns how many were built."""
    table = fused_classes()
    return replace_modules(model, lambda m: rebuilt_as(m, table[type(m)]) if type(m) in table else None)
