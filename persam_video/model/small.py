"""The project's own small SAM: segment_anything's classes in a small configuration.

It is built from the same ``ImageEncoderViT``, ``PromptEncoder``, ``MaskDecoder`` and
``TwoWayTransformer`` classes as the real models, so everything downstream (the
predictor, PerSAM, the tracker) treats it exactly like ``vit_b``. Its weights are a
plain ``state_dict`` file, loaded through the same path as a real checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial
from typing import Mapping, Optional, Tuple

import torch
from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, Sam, TwoWayTransformer


@dataclass(frozen=True)
class SmallSamConfig:
    """Sizes of the small model. ``img_size`` must be a multiple of 16."""

    img_size: int = 512
    encoder_dim: int = 192
    encoder_depth: int = 6
    encoder_heads: int = 3
    window_size: int = 8
    global_attn_indexes: Tuple[int, ...] = (2, 5)
    prompt_dim: int = 128
    decoder_mlp_dim: int = 1024
    decoder_heads: int = 8


SMALL_CONFIG = SmallSamConfig()


def build_small_sam(config: SmallSamConfig = SMALL_CONFIG) -> Sam:
    """Build the small SAM with freshly initialised weights (load a state_dict afterwards)."""
    patch = 16
    grid = config.img_size // patch
    return Sam(
        image_encoder=ImageEncoderViT(
            img_size=config.img_size,
            patch_size=patch,
            embed_dim=config.encoder_dim,
            depth=config.encoder_depth,
            num_heads=config.encoder_heads,
            mlp_ratio=4,
            out_chans=config.prompt_dim,
            qkv_bias=True,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            use_rel_pos=True,
            window_size=config.window_size,
            global_attn_indexes=config.global_attn_indexes,
        ),
        prompt_encoder=PromptEncoder(
            embed_dim=config.prompt_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.img_size, config.img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2,
                embedding_dim=config.prompt_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=config.decoder_heads,
            ),
            transformer_dim=config.prompt_dim,
            iou_head_depth=3,
            iou_head_hidden_dim=config.prompt_dim,
        ),
        pixel_mean=[123.675, 116.28, 103.53],
        pixel_std=[58.395, 57.12, 57.375],
    )


def config_for_state(state: Optional[Mapping[str, torch.Tensor]],
                     base: SmallSamConfig = SMALL_CONFIG) -> SmallSamConfig:
    """The configuration a small-model state_dict was trained at: its input size is read from
    the shape of the absolute position embedding (one cell per 16-pixel patch), so a checkpoint
    trained at another input size than the bundled one still loads. ``base`` without a state."""
    pos = None if state is None else state.get("image_encoder.pos_embed")
    if pos is None or pos.dim() != 4 or pos.shape[1] != pos.shape[2]:
        return base
    return replace(base, img_size=int(pos.shape[1]) * 16)
