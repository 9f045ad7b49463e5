"""SAM's mask decoder as persam-video builds it: the installed decoder with PerSAM's two switches.

``load_sam`` builds every SAM decoder (segment_anything's, MobileSAM's; SAM 2.1's through
:class:`~.sam2_model.Sam2MaskDecoder`) with its two-way transformer as a :class:`GuidedTransformer`.
A decoder call takes an optional :class:`Guide`; without one the decoder runs SAM's own forward
(bit for bit), with one the transformer runs PerSAM's two additions for that call only:

- target-guided attention (``Guide.bias``, (N, 1, 1, image tokens)): in every two-way layer's
  token-to-image cross-attention the bias is added to the softmaxed weights and a second softmax
  taken (the public PerSAM code's double softmax; :func:`guided_attention`);
- target-semantic prompting (``Guide.target_means``, (N, C)): the object's mean target embedding
  is added to the token queries before each two-way layer and to the queries of the final
  token-to-image attention. We add it to the queries only (the public image code adds it in place
  to a tensor that is also the first layer's positional encoding, so there the encoding carries it
  as well; we implement the definition, not that side effect).

The guided pass calls the layers' own modules (plain or fused attention alike) in SAM's order.
"""
from __future__ import annotations

import contextlib
import math
import sys
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterator, Optional, Tuple

import torch
from segment_anything.modeling import mask_decoder as sam_mask_decoder

from .rebuilding import rebuilt_as

Tensor = torch.Tensor


@dataclass(frozen=True)
class Guide:
    """PerSAM's additions to one decoder call: an attention bias and/or mean target embeddings."""

    bias: Optional[Tensor] = None  # (N, 1, 1, image tokens), from persam.geometry.attention_bias
    target_means: Optional[Tensor] = None  # (N, C)


def guided_attention(attention: torch.nn.Module, q: Tensor, k: Tensor, v: Tensor, bias: Tensor) -> Tensor:
    """``attention``'s result (SAM's ``Attention``, its own projections) with ``bias`` added to the
    softmaxed weights and a second softmax taken."""
    heads = attention.num_heads
    q = attention._separate_heads(attention.q_proj(q), heads)
    k = attention._separate_heads(attention.k_proj(k), heads)
    v = attention._separate_heads(attention.v_proj(v), heads)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    weights = torch.softmax(weights + bias, dim=-1)
    return attention.out_proj(attention._recombine_heads(weights @ v))


class GuidedTransformer:
    """Mixin over a two-way transformer class: SAM's forward, or PerSAM's guided pass while
    :meth:`guided` holds a :class:`Guide`."""

    guide: Optional[Guide] = None

    @contextlib.contextmanager
    def guided(self, guide: Optional[Guide]) -> Iterator[None]:
        """Run the passes inside the block with ``guide`` (None: SAM's own)."""
        before, self.guide = self.guide, guide
        try:
            yield
        finally:
            self.guide = before

    def forward(self, image_embedding: Tensor, image_pe: Tensor, point_embedding: Tensor) -> Tuple[Tensor, Tensor]:  # noqa: D102
        if self.guide is None:
            return super().forward(image_embedding, image_pe, point_embedding)
        bias, extra = self.guide.bias, self.guide.target_means
        extra = None if extra is None else extra[:, None, :]
        keys = image_embedding.flatten(2).permute(0, 2, 1)
        key_pe = image_pe.flatten(2).permute(0, 2, 1)
        queries = point_embedding
        for layer in self.layers:
            queries = queries if extra is None else queries + extra
            queries, keys = _guided_layer(layer, queries, keys, point_embedding, key_pe, bias)
        q = queries + point_embedding
        q = q if extra is None else q + extra
        queries = self.norm_final_attn(queries + self.final_attn_token_to_image(q=q, k=keys + key_pe, v=keys))
        return queries, keys


def self_attention(layer: torch.nn.Module, queries: Tensor, query_pe: Tensor) -> Tensor:
    """A ``TwoWayAttentionBlock``'s first step, the tokens' self-attention and its norm, as SAM
    computes it (the fast decoder's too)."""
    if layer.skip_first_layer_pe:
        queries = layer.self_attn(q=queries, k=queries, v=queries)
    else:
        q = queries + query_pe
        queries = queries + layer.self_attn(q=q, k=q, v=queries)
    return layer.norm1(queries)


def _guided_layer(layer: torch.nn.Module, queries: Tensor, keys: Tensor, query_pe: Tensor, key_pe: Tensor,
                  bias: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """One ``TwoWayAttentionBlock`` in SAM's order, its token-to-image attention guided by ``bias``."""
    queries = self_attention(layer, queries, query_pe)
    q, k = queries + query_pe, keys + key_pe
    cross = layer.cross_attn_token_to_image
    attended = cross(q=q, k=k, v=keys) if bias is None else guided_attention(cross, q, k, keys, bias)
    queries = layer.norm2(queries + attended)
    queries = layer.norm3(queries + layer.mlp(queries))
    q, k = queries + query_pe, keys + key_pe
    keys = layer.norm4(keys + layer.cross_attn_image_to_token(q=k, k=q, v=queries))
    return queries, keys


class GuidedDecoder:
    """Mixin over a SAM ``MaskDecoder`` class: its forward with an optional :class:`Guide`."""

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, multimask_output: bool,
                guide: Optional[Guide] = None) -> Tuple[Tensor, Tensor]:  # noqa: D102
        if guide is None:  # SAM's own call (or a guide the caller set on the transformer)
            return super().forward(image_embeddings, image_pe, sparse_prompt_embeddings,
                                   dense_prompt_embeddings, multimask_output)
        with self.transformer.guided(guide):
            return super().forward(image_embeddings, image_pe, sparse_prompt_embeddings,
                                   dense_prompt_embeddings, multimask_output)


@lru_cache(maxsize=None)
def subclass(mixin: type, cls: type, name: str, fingerprint_name: str) -> type:
    """``mixin`` over the class ``cls``, one class per pair, named ``name``; ``fingerprint_name``
    names the class it computes as (:mod:`.rebuilding`)."""
    return type(name, (mixin, cls), {"__module__": mixin.__module__, "fingerprint_name": fingerprint_name})


def _guided(mixin: type, cls: type) -> type:
    # unguided, the installed class's own forward: a resume file's fingerprint names that class
    return subclass(mixin, cls, f"Guided{cls.__name__}", cls.__qualname__)


def guided_transformer(transformer: torch.nn.Module) -> torch.nn.Module:
    """The built two-way ``transformer`` as a :class:`GuidedTransformer` (the same parts)."""
    if isinstance(transformer, GuidedTransformer):
        return transformer
    return rebuilt_as(transformer, _guided(GuidedTransformer, type(transformer)))


def decoder_classes() -> Dict[type, type]:
    """Installed ``MaskDecoder`` class -> its guided class (segment_anything's, and MobileSAM's once
    imported; they are the same code)."""
    classes = [sam_mask_decoder.MaskDecoder]
    mobile = sys.modules.get("mobile_sam.modeling.mask_decoder")
    if mobile is not None:
        classes.append(mobile.MaskDecoder)
    return {cls: _guided(GuidedDecoder, cls) for cls in classes}


def guided_decoder(decoder: torch.nn.Module) -> torch.nn.Module:
    """The built SAM ``decoder`` as its :class:`GuidedDecoder` class, its transformer a
    :class:`GuidedTransformer`; a decoder of another kind is handed back as it is."""
    cls = decoder_classes().get(type(decoder))
    if cls is None:
        return decoder
    decoder.transformer = guided_transformer(decoder.transformer)
    return rebuilt_as(decoder, cls)
