"""A faster mask decoder: SAM's decoder computed with less work, equal to float rounding.

:func:`speed_up_decoder` changes the class of a loaded model's ``MaskDecoder`` (segment_anything's
or MobileSAM's, which is the same code) to a subclass whose ``forward`` computes the same
function with the module's own parameters, reordered for a CPU:

- the image tokens' three projections that read the same keys in a two-way layer (the
  token-to-image keys and values, the image-to-token queries) are one matrix product, and the
  final attention's keys and values another;
- the positional encoding is added after projection instead of before: ``W(x + pe) + b`` is
  ``Wx + (W pe + b)``, and ``W pe + b`` depends only on the weights, so it is computed once and
  kept (no ``keys + pe`` pass over every object's 4096 x 256 tokens, four per layer in SAM);
- one ``scaled_dot_product_attention`` call per attention;
- no per-object copy of the image embedding: objects whose dense prompt is the same (no mask
  input: SAM's "no mask" embedding, the first pass of every PerSAM cascade) share one image
  pass until the first image-to-token update makes their tokens differ;
- the upscaling path stays channels-last (one layer norm call instead of LayerNorm2d's six
  element-wise passes), and only the masks asked for are multiplied out (three of four with
  ``multimask_output``).

The reordered sums differ from SAM's in the last bits (relative 1e-6), so this is an opt-in
speed-up like fused attention (``--decoder fast``); :func:`restore_decoder` undoes it. While
target-guided attention or target-semantic prompting hooks the transformer
(:func:`persam_video.persam.decoder_hooks.decoder_switches`), the installed ``forward`` runs.
"""
from __future__ import annotations

import sys
from functools import lru_cache
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling import mask_decoder as sam_mask_decoder
from segment_anything.modeling.common import LayerNorm2d

Tensor = torch.Tensor


def _heads(x: Tensor, num_heads: int) -> Tensor:
    """(B, N, C) -> (B, heads, N, C / heads), a view."""
    b, n, c = x.shape
    return x.reshape(b, n, num_heads, c // num_heads).transpose(1, 2)


def _merge_heads(x: Tensor) -> Tensor:
    """(B, heads, N, c) -> (B, N, heads * c)."""
    b, h, n, c = x.shape
    return x.transpose(1, 2).reshape(b, n, h * c)


class _ImageProjections:
    """One layer's projections of the image tokens with the positional terms folded in:
    ``tokens @ weight.T + offset`` where ``offset`` (HW, out) carries ``W pe + b``."""

    def __init__(self, parts: List[Tuple[torch.nn.Linear, bool]], pe: Tensor):
        weights = [linear.weight for linear, _ in parts]
        self.weight_t = torch.cat(weights, dim=0).t().contiguous()
        offsets = [F.linear(pe, linear.weight, linear.bias) if with_pe else linear.bias.expand(pe.shape[0], -1)
                   for linear, with_pe in parts]
        self.offset = torch.cat(offsets, dim=1).contiguous()
        self.sizes = [w.shape[0] for w in weights]

    def __call__(self, tokens: Tensor) -> List[Tensor]:
        out = torch.matmul(tokens, self.weight_t)
        out += self.offset
        return list(out.split(self.sizes, dim=-1))


class _Prepared:
    """What the fast decoder keeps per model: projections of the image positional encoding."""

    def __init__(self, transformer: torch.nn.Module, image_pe: Tensor):
        self.image_pe = image_pe
        pe = image_pe.flatten(2)[0].t()  # (HW, C)
        self.layers = [_ImageProjections([(layer.cross_attn_token_to_image.k_proj, True),
                                          (layer.cross_attn_token_to_image.v_proj, False),
                                          (layer.cross_attn_image_to_token.q_proj, True)], pe)
                       for layer in transformer.layers]
        final = transformer.final_attn_token_to_image
        self.final = _ImageProjections([(final.k_proj, True), (final.v_proj, False)], pe)


class FastDecoderForward:
    """Mixin over a SAM ``MaskDecoder`` class: the same ``forward``, computed faster."""

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, multimask_output: bool) -> Tuple[Tensor, Tensor]:  # noqa: D102
        if self.__dict__.get("hooked", False) or image_embeddings.shape[0] != 1:
            return super().forward(image_embeddings, image_pe, sparse_prompt_embeddings,
                                   dense_prompt_embeddings, multimask_output)
        return self._fast_forward(image_embeddings, image_pe, sparse_prompt_embeddings,
                                  dense_prompt_embeddings, multimask_output)

    # ----------------------------------------------------------------- internals
    def _prepared(self, image_pe: Tensor) -> _Prepared:
        """The projections of ``image_pe``, made again only when it or the weights change (the
        same tensor object as last time is taken as unchanged while its version is)."""
        kept = self.__dict__.get("_prepared_pe")
        key = (image_pe._version, tuple(p._version for p in self.transformer.parameters()))
        if kept is not None and kept[1] == key:
            old = kept[0].image_pe
            if old is image_pe or (old.shape == image_pe.shape and old.device == image_pe.device
                                   and torch.equal(old, image_pe)):
                return kept[0]
        prepared = _Prepared(self.transformer, image_pe)
        self.__dict__["_prepared_pe"] = (prepared, key)
        return prepared

    def _fast_forward(self, image: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
                      multimask_output: bool) -> Tuple[Tensor, Tensor]:
        n, c, h, w = dense.shape
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat((tokens.unsqueeze(0).expand(n, -1, -1), sparse), dim=1)
        shared = dense.stride(0) == 0  # the same dense prompt for every object (no mask input)
        dense_tokens = (dense[:1] if shared else dense).flatten(2).transpose(1, 2)
        keys = image.flatten(2).transpose(1, 2) + dense_tokens  # (1 or N, HW, C)
        queries, keys = self._transformer(tokens, keys, self._prepared(image_pe))
        keys = keys.expand(n, -1, -1)

        chosen = slice(1, None) if multimask_output else slice(0, 1)
        upscaled = self._upscale(keys, h, w)  # (N, 4h, 4w, C') channels last
        token_rows = range(1, 1 + self.num_mask_tokens)[chosen]
        hyper = torch.stack([self.output_hypernetworks_mlps[i - 1](queries[:, i]) for i in token_rows], dim=1)
        big_h, big_w = upscaled.shape[1:3]
        masks = torch.bmm(upscaled.reshape(n, big_h * big_w, -1), hyper.transpose(1, 2))
        masks = masks.transpose(1, 2).reshape(n, len(token_rows), big_h, big_w)
        iou = self.iou_prediction_head(queries[:, 0])[:, chosen]
        return masks, iou

    def _transformer(self, point_embedding: Tensor, keys: Tensor, prepared: _Prepared) -> Tuple[Tensor, Tensor]:
        """SAM's ``TwoWayTransformer`` on tokens (N, T, C) and image tokens (1 or N, HW, C)."""
        transformer = self.transformer
        queries = point_embedding
        n = point_embedding.shape[0]
        for layer, projections in zip(transformer.layers, prepared.layers):
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + point_embedding
                queries = queries + layer.self_attn(q=q, k=q, v=queries)
            queries = layer.norm1(queries)

            t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            image_k, image_v, image_q = (t.expand(n, -1, -1) for t in projections(keys))
            q = t2i.q_proj(queries + point_embedding)
            attended = F.scaled_dot_product_attention(_heads(q, t2i.num_heads), _heads(image_k, t2i.num_heads),
                                                      _heads(image_v, t2i.num_heads))
            queries = layer.norm2(queries + t2i.out_proj(_merge_heads(attended)))
            queries = layer.norm3(queries + layer.mlp(queries))

            token_k = i2t.k_proj(queries + point_embedding)
            token_v = i2t.v_proj(queries)
            attended = F.scaled_dot_product_attention(_heads(image_q, i2t.num_heads), _heads(token_k, i2t.num_heads),
                                                      _heads(token_v, i2t.num_heads))
            keys = layer.norm4(keys + i2t.out_proj(_merge_heads(attended)))

        final = transformer.final_attn_token_to_image
        image_k, image_v = (t.expand(n, -1, -1) for t in prepared.final(keys))
        q = final.q_proj(queries + point_embedding)
        attended = F.scaled_dot_product_attention(_heads(q, final.num_heads), _heads(image_k, final.num_heads),
                                                  _heads(image_v, final.num_heads))
        queries = transformer.norm_final_attn(queries + final.out_proj(_merge_heads(attended)))
        return queries, keys

    def _upscale(self, keys: Tensor, h: int, w: int) -> Tensor:
        """``output_upscaling`` on image tokens (N, HW, C), kept channels-last: (N, 4h, 4w, C')."""
        conv1, norm, act1, conv2, act2 = self.output_upscaling
        n, _, c = keys.shape
        x = conv1(keys.reshape(n, h, w, c).permute(0, 3, 1, 2))  # a channels-last NCHW view in, and out
        x = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), norm.weight, norm.bias, norm.eps)
        x = conv2(act1(x).permute(0, 3, 1, 2))
        return act2(x.permute(0, 2, 3, 1))


def _fits(decoder: torch.nn.Module) -> bool:
    """Whether ``decoder`` has the layout this forward assumes (SAM's decoder as built; MobileSAM
    has its own copy of ``LayerNorm2d``, the same module)."""
    up = getattr(decoder, "output_upscaling", None)
    return (isinstance(up, torch.nn.Sequential) and len(up) == 5
            and isinstance(up[0], torch.nn.ConvTranspose2d) and type(up[1]).__name__ == LayerNorm2d.__name__
            and isinstance(up[3], torch.nn.ConvTranspose2d)
            and up[0].kernel_size == up[0].stride == (2, 2) and up[3].kernel_size == up[3].stride == (2, 2))


@lru_cache(maxsize=None)
def _fast_class(cls: type) -> type:
    return type(f"Fast{cls.__name__}", (FastDecoderForward, cls), {"__module__": __name__})


def decoder_classes() -> Dict[type, type]:
    """Installed ``MaskDecoder`` classes (segment_anything's, and MobileSAM's once imported)."""
    classes = [sam_mask_decoder.MaskDecoder]
    mobile = sys.modules.get("mobile_sam.modeling.mask_decoder")
    if mobile is not None:
        classes.append(mobile.MaskDecoder)
    return {cls: _fast_class(cls) for cls in classes}


def speed_up_decoder(model: torch.nn.Module) -> bool:
    """Switch ``model.mask_decoder`` to the fast forward in place; False (nothing changed) when
    the decoder is not one of SAM's as built."""
    decoder = model.mask_decoder
    if isinstance(decoder, FastDecoderForward):
        return True
    fast = decoder_classes().get(type(decoder))
    if fast is None or not _fits(decoder):
        return False
    decoder.__dict__["_plain_class"] = type(decoder)
    decoder.__class__ = fast
    return True


def restore_decoder(model: torch.nn.Module) -> bool:
    """Undo :func:`speed_up_decoder`; True if something was restored."""
    decoder = model.mask_decoder
    original = decoder.__dict__.pop("_plain_class", None)
    if original is None:
        return False
    decoder.__class__ = original
    decoder.__dict__.pop("_prepared_pe", None)
    return True
