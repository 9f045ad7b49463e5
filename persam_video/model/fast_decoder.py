"""A faster mask decoder: SAM's decoder computed with less work, equal to float rounding.

:func:`speed_up_decoder`, called by ``load_sam`` on the fast path, builds a loaded model's decoder
(segment_anything's or MobileSAM's, which is the same code, as :mod:`.guided_decoder` builds it)
as a subclass whose ``forward`` computes the same function with the module's own parameters,
reordered for a CPU:

- the 4096 image tokens are never projected: in the cross attentions with the few prompt tokens
  (about ten) the prompt side goes back through the image side's projection instead
  (:func:`_into_image`), scores are one product with the image tokens (plus their positional
  encoding, added once per layer), and a value projection is applied after the weighted sum;
  about half the multiplications of SAM's projections, every head at once, the softmax along
  long lines; the image-to-token attention's output projection and residual are folded into
  its last product;
- no per-object copy of the image embedding: objects whose dense prompt is the same (no mask
  input: SAM's "no mask" embedding, the first pass of every PerSAM cascade) share one image
  pass until the first image-to-token update makes their tokens differ; the frame's embedding
  and the positional encoding are laid token-major once, and a mask prompt's embedding comes
  channels-last from the prompt encoder, so no pass transposes 4096 x 256 tokens;
- the upscaling path stays channels-last (one layer norm call instead of LayerNorm2d's six
  element-wise passes), and only the masks asked for are multiplied out (three of four with
  ``multimask_output``).

The reordered sums differ from SAM's in the last bits (relative 1e-6), so this is an opt-in
speed-up like fused attention (``--decoder fast``). A call with PerSAM's guide
(:class:`~.guided_decoder.Guide`: target-guided attention, target-semantic prompting) runs the
guided decoder's own forward instead, as does a batch of several images.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from segment_anything.modeling.common import LayerNorm2d

from .guided_decoder import Guide, GuidedDecoder, guided_decoder, self_attention, subclass
from .rebuilding import rebuilt_as

Tensor = torch.Tensor
# Said in a finished sequence's marker: a new version orders the sums otherwise (equal masks to
# float rounding, not to the bit), so markers of another version do not count as done.
FAST_DECODER_VERSION = 2


def _into_image(x: Tensor, weight: Tensor, heads: int, scale: float) -> Tensor:
    """Few vectors x (N, T, c), head by head, carried back through a projection's ``weight`` (c, C)
    into the image tokens' space: row ``h * T + t`` is ``scale * x[t, head h] @ weight[head h rows]``,
    so that its product with an image token equals ``scale *`` x's head-h part dotted with that
    token's head-h projection (bias aside). (N, heads * T, C)."""
    n, count, width = x.shape
    size = width // heads
    carried = torch.einsum("nthd,hdc->nhtc", x.reshape(n, count, heads, size), weight.reshape(heads, size, -1))
    return carried.reshape(n, heads * count, -1) * scale


def _times(a: Tensor, b: Tensor, transpose_b: bool) -> Tensor:
    """``a @ b`` (or ``a @ b^T``) for a (N, R, K) and b (1 or N, ., .): one matrix product when b
    is shared by the batch, else a batched one (strided views go to BLAS as they are)."""
    if b.shape[0] == 1 and a.shape[0] > 1:
        second = b[0].t() if transpose_b else b[0]
        return torch.mm(a.reshape(-1, a.shape[-1]), second).reshape(a.shape[0], a.shape[1], -1)
    return torch.bmm(a, b.transpose(1, 2) if transpose_b else b)


def _tokens_to_image(q_in: Tensor, image: Tensor, image_pos: Tensor, attention: torch.nn.Module) -> Tensor:
    """``attention(q=q_in, k=image_pos, v=image)`` for the few prompt tokens q_in (N, T, C) over the
    image tokens (1 or N, HW, C), without projecting the image tokens.

    The queries go back through the key projection instead (:func:`_into_image`): a score is then
    one product with the image tokens, and the keys' bias adds the same number to a query's every
    score, which its softmax ignores. The values' projection is linear and every row of
    probabilities sums to 1, so it is applied after the weighted sum of the image tokens. Each head
    reads the C-wide image tokens instead of its own c/heads-wide projection; with few queries
    that is about half the multiplications of projecting 4096 tokens."""
    heads = attention.num_heads
    q = attention.q_proj(q_in)
    n, count, width = q.shape
    size = width // heads
    carried = _into_image(q, attention.k_proj.weight, heads, 1 / math.sqrt(size))
    mixed = _times(torch.softmax(_times(carried, image_pos, transpose_b=True), dim=-1), image, transpose_b=False)
    values = torch.einsum("nhtc,hdc->nthd", mixed.reshape(n, heads, count, -1),
                          attention.v_proj.weight.reshape(heads, size, -1))
    return attention.out_proj(values.reshape(n, count, width) + attention.v_proj.bias)


def _image_to_tokens(image: Tensor, image_pos: Tensor, k_in: Tensor, v_in: Tensor,
                     attention: torch.nn.Module) -> Tensor:
    """``image + attention(q=image_pos, k=k_in, v=v_in)``: image tokens (1 or N, HW, C) and the same
    with their positional encoding added, over the few prompt tokens k_in, v_in (N, T, C).

    The image tokens' query projection is not made: the keys go back through it
    (:func:`_into_image`) and the queries' bias becomes one number per head and key. The scores come
    out laid (N, heads, T, HW), so the softmax runs across T rows of long lines (about twice as fast
    on a CPU as over a last dimension of ten); and the output projection goes into the few values
    first (each head's T values times its slice of the projection; the bias split over the heads,
    whose probabilities each sum to 1), so what is left is one product (HW x heads*T) @
    (heads*T x C) added onto the image tokens."""
    heads = attention.num_heads
    k, v = attention.k_proj(k_in), attention.v_proj(v_in)
    n, count, width = k.shape
    size = width // heads
    scale = 1 / math.sqrt(size)
    split = k.reshape(n, count, heads, size)
    offset = torch.einsum("nthd,hd->nht", split, attention.q_proj.bias.reshape(heads, size)) * scale
    scores = _times(_into_image(k, attention.q_proj.weight, heads, scale), image_pos, transpose_b=True)
    scores += offset.reshape(n, heads * count, 1)
    probs = torch.softmax(scores.reshape(n, heads, count, -1), dim=-2).reshape(n, heads * count, -1)
    out = attention.out_proj
    values = v.reshape(n, count, heads, size).transpose(1, 2)  # N, heads, T, c/heads
    projected = torch.matmul(values, out.weight.t().reshape(heads, size, -1)) + out.bias / heads  # N, heads, T, C
    return torch.baddbmm(image, probs.transpose(1, 2), projected.reshape(n, heads * count, -1))


class FastDecoderForward:
    """Mixin over a guided SAM decoder class (:class:`~.guided_decoder.GuidedDecoder`): the same
    ``forward``, computed faster where no guide is given."""

    _kept: dict  # token-major layouts of the last tensors seen (:meth:`_token_major`)

    def forward(self, image_embeddings: Tensor, image_pe: Tensor, sparse_prompt_embeddings: Tensor,
                dense_prompt_embeddings: Tensor, multimask_output: bool,
                guide: Optional[Guide] = None) -> Tuple[Tensor, Tensor]:  # noqa: D102
        if image_embeddings.shape[0] != 1 or guide is not None:
            return super().forward(image_embeddings, image_pe, sparse_prompt_embeddings,
                                   dense_prompt_embeddings, multimask_output, guide)
        return self._fast_forward(image_embeddings, image_pe, sparse_prompt_embeddings,
                                  dense_prompt_embeddings, multimask_output)

    # ----------------------------------------------------------------- internals
    def _token_major(self, name: str, grid: Tensor) -> Tensor:
        """``grid`` (1, C, h, w) laid token-major, (1, HW, C), kept under ``name`` and made again only
        when another tensor comes (the same tensor object as last time is taken as unchanged while
        its version is): the positional encoding once per model, a frame's embedding once per frame
        instead of once per pass."""
        kept = self._kept.get(name)
        if kept is not None and kept[0] is grid and kept[1] == grid._version:
            return kept[2]
        tokens = grid.flatten(2).transpose(1, 2).contiguous()
        self._kept[name] = (grid, grid._version, tokens)
        return tokens

    def _fast_forward(self, image: Tensor, image_pe: Tensor, sparse: Tensor, dense: Tensor,
                      multimask_output: bool) -> Tuple[Tensor, Tensor]:
        n, c, h, w = dense.shape
        tokens = torch.cat([self.iou_token.weight, self.mask_tokens.weight], dim=0)
        tokens = torch.cat((tokens.unsqueeze(0).expand(n, -1, -1), sparse), dim=1)
        shared = dense.stride(0) == 0  # the same dense prompt for every object (no mask input)
        # (1 or N, HW, C), token-major: the mask prompt's embedding comes channels-last (see
        # speed_up_decoder), so this view of it is contiguous and the sum a plain one
        dense_tokens = (dense[:1] if shared else dense).flatten(2).transpose(1, 2)
        keys = self._token_major("_image_tokens", image) + dense_tokens
        queries, keys = self._transformer(tokens, keys, self._token_major("_pe_tokens", image_pe))
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

    def _transformer(self, point_embedding: Tensor, keys: Tensor, pe: Tensor) -> Tuple[Tensor, Tensor]:
        """SAM's ``TwoWayTransformer`` on tokens (N, T, C) and image tokens (1 or N, HW, C) with
        their positional encoding pe (1, HW, C)."""
        transformer = self.transformer
        queries = point_embedding
        for layer in transformer.layers:
            queries = self_attention(layer, queries, point_embedding)
            keys_pos = keys + pe
            attended = _tokens_to_image(queries + point_embedding, keys, keys_pos, layer.cross_attn_token_to_image)
            queries = layer.norm2(queries + attended)
            queries = layer.norm3(queries + layer.mlp(queries))
            keys = layer.norm4(_image_to_tokens(keys, keys_pos, queries + point_embedding, queries,
                                                layer.cross_attn_image_to_token))

        attended = _tokens_to_image(queries + point_embedding, keys, keys + pe, transformer.final_attn_token_to_image)
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


class ChannelsLastConv2d(torch.nn.Conv2d):
    """A convolution that writes channels-last: the prompt encoder's last mask convolution (1x1) on
    the fast path, so the decoder reads a mask prompt's embedding token-major without transposing it."""

    fingerprint_name = "Conv2d"  # the same numbers, laid out otherwise

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return super().forward(x.contiguous(memory_format=torch.channels_last))


def speed_up_decoder(model: torch.nn.Module) -> bool:
    """Build ``model.mask_decoder`` (SAM's as built, guided or not yet) as the fast decoder and the
    prompt encoder's last mask convolution as a :class:`ChannelsLastConv2d`; False (nothing changed)
    when the decoder is not one of SAM's as built."""
    decoder = model.mask_decoder
    if isinstance(decoder, FastDecoderForward):
        return True
    decoder = guided_decoder(decoder)
    if not isinstance(decoder, GuidedDecoder) or not _fits(decoder):
        return False
    installed = type(decoder).__mro__[2]  # (Guided<cls>, GuidedDecoder, cls, ...)
    fast = subclass(FastDecoderForward, type(decoder), f"Fast{installed.__name__}", f"Fast{installed.__name__}")
    model.mask_decoder = rebuilt_as(decoder, fast, _kept={})
    masks = model.prompt_encoder.mask_downscaling
    last = masks[-1]
    if type(last) is torch.nn.Conv2d and last.kernel_size == (1, 1):
        masks[len(masks) - 1] = rebuilt_as(last, ChannelsLastConv2d)
    return True
