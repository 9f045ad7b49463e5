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
- the cross attentions between the few prompt tokens and the 4096 image tokens as two matrix
  products each, every head at once (:func:`_tokens_to_image`, :func:`_image_to_tokens`: no
  per-head copies of the image tokens, the softmax along long lines), the image-to-token
  attention's output projection and residual folded into its second product;
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

import math
import sys
from functools import lru_cache
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling import mask_decoder as sam_mask_decoder
from segment_anything.modeling.common import LayerNorm2d

Tensor = torch.Tensor


def _block_diagonal(tokens: Tensor, heads: int, scale: float) -> Tensor:
    """Prompt tokens (N, T, c) spread over heads: (N, heads * T, c), row ``h * T + t`` holding token
    ``t``'s head-``h`` channels (times ``scale``) and zeros in the other heads' channels. One matrix
    product with it gives every head's scores at once, from image tokens left as they are."""
    n, count, width = tokens.shape
    eye = torch.eye(heads, dtype=tokens.dtype, device=tokens.device) * scale
    split = tokens.reshape(n, count, heads, width // heads)
    return torch.einsum("nthd,hg->nhtgd", split, eye).reshape(n, heads * count, width)


def _times(a: Tensor, b: Tensor, transpose_b: bool) -> Tensor:
    """``a @ b`` (or ``a @ b^T``) for a (N, R, K) and b (1 or N, ., .): one matrix product when b
    is shared by the batch, else a batched one (strided views go to BLAS as they are)."""
    if b.shape[0] == 1 and a.shape[0] > 1:
        second = b[0].t() if transpose_b else b[0]
        return torch.mm(a.reshape(-1, a.shape[-1]), second).reshape(a.shape[0], a.shape[1], -1)
    return torch.bmm(a, b.transpose(1, 2) if transpose_b else b)


def _tokens_to_image(q: Tensor, k: Tensor, v: Tensor, attention: torch.nn.Module) -> Tensor:
    """``attention``'s output for prompt-token queries q (N, T, c) over image keys and values
    k, v (1 or N, HW, c): every head's scores in one product (:func:`_block_diagonal`), a softmax
    along the image tokens, every head's output in a second product, of which each head keeps its
    own block."""
    heads = attention.num_heads
    n, count, width = q.shape
    scores = _times(_block_diagonal(q, heads, 1 / math.sqrt(width // heads)), k, transpose_b=True)
    out = _times(torch.softmax(scores, dim=-1), v, transpose_b=False)  # N, heads*T, c
    own = out.reshape(n, heads, count, heads, width // heads).diagonal(dim1=1, dim2=3)  # N, T, c/heads, heads
    return attention.out_proj(own.transpose(2, 3).reshape(n, count, width))


def _image_to_tokens(keys: Tensor, q: Tensor, k: Tensor, v: Tensor, attention: torch.nn.Module) -> Tensor:
    """``keys + attention.out_proj(attention of image queries q over the prompt tokens k, v)``:
    image tokens (1 or N, HW, C), their projected queries q (1 or N, HW, c), the few prompt
    tokens' keys and values k, v (N, T, c).

    The scores come out laid (N, heads, T, HW) from one product, so the softmax runs across T rows
    of long lines (about twice as fast on a CPU as over a last dimension of ten); and with so few
    tokens the output projection goes into the values first (each head's T values times its slice
    of the projection; the bias split over the heads, whose probabilities each sum to 1), so what
    is left is one product (HW x heads*T) @ (heads*T x C) added onto the image tokens."""
    heads = attention.num_heads
    n, count, width = k.shape
    size = width // heads
    scores = _times(_block_diagonal(k, heads, 1 / math.sqrt(size)), q, transpose_b=True)  # N, heads*T, HW
    probs = torch.softmax(scores.reshape(n, heads, count, -1), dim=-2).reshape(n, heads * count, -1)
    out = attention.out_proj
    values = v.reshape(n, count, heads, size).transpose(1, 2)  # N, heads, T, c/heads
    projected = torch.matmul(values, out.weight.t().reshape(heads, size, -1)) + out.bias / heads  # N, heads, T, C
    return torch.baddbmm(keys, probs.transpose(1, 2), projected.reshape(n, heads * count, -1))


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
        # (1 or N, HW, C), written token-major: a plain sum would keep the channel-major layout
        # of its inputs, and every matrix product and layer norm after it would copy it first
        keys = torch.empty((dense_tokens.shape[0], h * w, c), dtype=dense.dtype, device=dense.device)
        torch.add(image.flatten(2).transpose(1, 2), dense_tokens, out=keys)
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
        for layer, projections in zip(transformer.layers, prepared.layers):
            if layer.skip_first_layer_pe:
                queries = layer.self_attn(q=queries, k=queries, v=queries)
            else:
                q = queries + point_embedding
                queries = queries + layer.self_attn(q=q, k=q, v=queries)
            queries = layer.norm1(queries)

            t2i, i2t = layer.cross_attn_token_to_image, layer.cross_attn_image_to_token
            image_k, image_v, image_q = projections(keys)
            attended = _tokens_to_image(t2i.q_proj(queries + point_embedding), image_k, image_v, t2i)
            queries = layer.norm2(queries + attended)
            queries = layer.norm3(queries + layer.mlp(queries))

            keys = layer.norm4(_image_to_tokens(keys, image_q, i2t.k_proj(queries + point_embedding),
                                                i2t.v_proj(queries), i2t))

        final = transformer.final_attn_token_to_image
        image_k, image_v = prepared.final(keys)
        attended = _tokens_to_image(final.q_proj(queries + point_embedding), image_k, image_v, final)
        queries = transformer.norm_final_attn(queries + attended)
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
