"""SAM 2.1's image path behind SAM's interface, so the rest of persam-video never asks which
family it holds.

:class:`Sam2Image` wraps a ``sam2`` ``SAM2Base`` (built by the ``sam2`` package from its own
config) and offers what :class:`~persam_video.model.predictor.FramePredictor` and the PerSAM
decoding use of a SAM: ``image_encoder`` (returns the image embedding, ``no_mem_embed`` added, and
the two high-resolution feature maps, as ``SAM2ImagePredictor.set_image`` makes them),
``prompt_encoder`` (SAM 2's, with a box given as two corner points before the clicks, as
``SAM2ImagePredictor`` gives it, and mask prompts clamped to [-32, 32] as it returns them),
``mask_decoder`` (SAM's call signature plus ``high_res_features``), ``preprocess``,
``postprocess_masks``, ``pixel_mean``/``pixel_std`` and :attr:`Sam2Image.input_transform`
(SAM 2 squeezes every image to a 1024 x 1024 square instead of padding its longest side).
"""
from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import PersamError
from .guided_decoder import Guide, guided_transformer
from .sam2_checkpoints import SAM2_SIZES

SAM2_EXTRA_HINT = "pip install -e '.[sam2]'"
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
NO_OBJECT_SCORE = -1024.0  # SAM 2's logit for "no object here" (sam2_base.NO_OBJ_SCORE)


def build_sam2_base(model_type: str) -> torch.nn.Module:
    """``sam2``'s own ``SAM2Base`` of ``model_type`` with fresh (seeded by the caller) weights, built
    from the package's config with the image predictor's post-processing settings."""
    try:
        from sam2.build_sam import build_sam2
    except ImportError as exc:
        raise PersamError(f"model type {model_type} needs Meta's sam2 package ({exc}): "
                          f"{SAM2_EXTRA_HINT}") from None
    return build_sam2(SAM2_SIZES[model_type].config, ckpt_path=None, device="cpu", mode="eval")


class SquareResize:
    """SAM 2's input geometry: an (H, W) image becomes the ``side`` x ``side`` square (no padding),
    points are scaled per axis; computed in float32 in SAM2Transforms' order, so the numbers match."""

    def __init__(self, side: int) -> None:
        self.target_length = int(side)

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (side, side, 3) float32 in [0, 1]: scaled to [0, 1], then resized by
        antialiased bilinear interpolation (what torchvision's ToTensor + Resize do)."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise PersamError(f"expected an (H, W, 3) RGB image, got an array of shape {tuple(image.shape)}")
        chw = torch.from_numpy(np.array(image, order="C")).permute(2, 0, 1).contiguous()
        chw = chw.float().div(255) if chw.dtype == torch.uint8 else chw.float()
        side = (self.target_length, self.target_length)
        resized = F.interpolate(chw[None], side, mode="bilinear", align_corners=False, antialias=True)[0]
        return resized.permute(1, 2, 0).numpy()

    def apply_coords(self, coords: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """(..., 2) (x, y) pixels of an (H, W) image -> the square's pixels (float32)."""
        return self.apply_coords_torch(torch.as_tensor(np.asarray(coords), dtype=torch.float32),
                                       original_size).numpy()

    def apply_boxes(self, boxes: np.ndarray, original_size: Sequence[int]) -> np.ndarray:
        """(B, 4) boxes -> the square's pixels."""
        return self.apply_coords(np.asarray(boxes).reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_coords_torch(self, coords: torch.Tensor, original_size: Sequence[int]) -> torch.Tensor:
        """As :meth:`apply_coords` on a tensor: x / W * side, y / H * side in float32."""
        h, w = original_size
        out = coords.detach().clone().to(torch.float)
        out[..., 0] = out[..., 0] / w
        out[..., 1] = out[..., 1] / h
        return out * self.target_length

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: Sequence[int]) -> torch.Tensor:
        """As :meth:`apply_boxes` on a tensor."""
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)


class EncoderOutput(tuple):
    """(embedding, [high-res features]): a tuple that the fast path's autocast wrapper can hand back
    as float32 like a tensor (``.float()``)."""

    def float(self) -> "EncoderOutput":
        return EncoderOutput((self[0].float(), [f.float() for f in self[1]]))


class Sam2ImageEncoder(torch.nn.Module):
    """Hiera + FPN neck of a ``SAM2Base``: a normalised (B, 3, S, S) batch -> the image embedding
    (B, 256, S/16, S/16) with ``no_mem_embed`` added, and the high-resolution features
    [(B, 32, S/4, S/4), (B, 64, S/8, S/8)] already through the decoder's ``conv_s0``/``conv_s1``."""

    def __init__(self, base: torch.nn.Module) -> None:
        super().__init__()
        self.base = base
        self.img_size = int(base.image_size)

    def forward(self, images: torch.Tensor) -> EncoderOutput:  # noqa: D102
        base = self.base
        out = base.forward_image(images)
        _, feats, _, sizes = base._prepare_backbone_features(out)
        if base.directly_add_no_mem_embed:
            feats[-1] = feats[-1] + base.no_mem_embed
        batch = images.shape[0]
        maps = [f.permute(1, 2, 0).reshape(batch, -1, *s) for f, s in zip(feats, sizes)]
        return EncoderOutput((maps[-1], maps[:-1]))


class Sam2PromptEncoder(torch.nn.Module):
    """SAM 2's prompt encoder with SAM's call: ``(points, boxes, masks)`` -> (sparse, dense)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    @property
    def pe_layer(self) -> torch.nn.Module:
        return self.inner.pe_layer

    @property
    def image_embedding_size(self) -> Tuple[int, int]:
        return self.inner.image_embedding_size

    @property
    def mask_downscaling(self) -> torch.nn.Module:
        return self.inner.mask_downscaling

    def get_dense_pe(self) -> torch.Tensor:
        """The positional encoding of the embedding grid (1, C, h, w)."""
        return self.inner.get_dense_pe()

    def forward(self, points: Optional[Tuple[torch.Tensor, torch.Tensor]], boxes: Optional[torch.Tensor],
                masks: Optional[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        if boxes is not None:  # SAM2ImagePredictor: a box is two points labelled 2, 3, before the clicks
            corners = boxes.reshape(-1, 2, 2)
            labels = torch.tensor([[2, 3]], dtype=torch.int, device=boxes.device).repeat(corners.shape[0], 1)
            if points is not None:
                corners, labels = torch.cat([corners, points[0]], dim=1), torch.cat([labels, points[1]], dim=1)
            points = (corners, labels)
        if masks is not None:
            masks = masks.clamp(-32.0, 32.0)
        return self.inner(points=points, boxes=None, masks=masks)


class Sam2MaskDecoder(torch.nn.Module):
    """SAM 2's mask decoder with SAM's call and returns (PerSAM's :class:`~.guided_decoder.Guide`
    included: its two-way transformer is built as a guided one), and its three SAM 2 switches.

    ``high_res`` (default on, as SAM 2 runs): the high-resolution skip connections in the
    upscaling; off feeds zeros there. ``stability`` (default on, as ``SAM2ImagePredictor`` builds
    it): a single-mask call falls back to the best of the three masks when the single one is
    unstable. ``object_score`` (default off, as ``SAM2ImagePredictor``): masks of a prompt whose
    object-score logit is not positive become empty (SAM 2's video rule).
    """

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        inner.transformer = guided_transformer(inner.transformer)
        self.inner = inner
        self.transformer_dim = inner.transformer_dim
        self.high_res = True
        self.object_score = False

    @property
    def transformer(self) -> torch.nn.Module:
        return self.inner.transformer

    @property
    def stability(self) -> bool:
        return bool(self.inner.dynamic_multimask_via_stability)

    @stability.setter
    def stability(self, on: bool) -> None:
        self.inner.dynamic_multimask_via_stability = bool(on)

    def forward(self, image_embeddings: torch.Tensor, image_pe: torch.Tensor,
                sparse_prompt_embeddings: torch.Tensor, dense_prompt_embeddings: torch.Tensor,
                multimask_output: bool, high_res_features: Optional[List[torch.Tensor]] = None,
                guide: Optional[Guide] = None) -> Tuple[torch.Tensor, torch.Tensor]:  # noqa: D102
        if high_res_features is None:
            raise PersamError("SAM 2's decoder needs the image's high-resolution features")
        if not self.high_res:
            high_res_features = [torch.zeros_like(f) for f in high_res_features]
        with self.transformer.guided(guide):
            masks, scores, _, object_logits = self.inner(
                image_embeddings=image_embeddings, image_pe=image_pe,
                sparse_prompt_embeddings=sparse_prompt_embeddings, dense_prompt_embeddings=dense_prompt_embeddings,
                multimask_output=multimask_output, high_res_features=high_res_features,
                repeat_image=sparse_prompt_embeddings.shape[0] != image_embeddings.shape[0])
        if self.object_score:
            masks = torch.where(object_logits[:, :, None, None] > 0, masks, NO_OBJECT_SCORE)
        return masks, scores


class Sam2Image(torch.nn.Module):
    """A SAM 2.1 model's image path with SAM's attributes (see the module's docstring)."""

    image_format = "RGB"
    mask_threshold = 0.0
    resizes_directly = True  # masks go from the low-res grid straight to the frame (no padded square)

    def __init__(self, base: torch.nn.Module, model_type: str) -> None:
        super().__init__()
        self.base = base
        self.model_type = model_type
        self.image_encoder = Sam2ImageEncoder(base)
        self.prompt_encoder = Sam2PromptEncoder(base.sam_prompt_encoder)
        self.mask_decoder = Sam2MaskDecoder(base.sam_mask_decoder)
        self.input_transform = SquareResize(self.image_encoder.img_size)
        self.register_buffer("pixel_mean", torch.tensor(MEAN).view(-1, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(STD).view(-1, 1, 1), persistent=False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a (B, 3, S, S) batch in [0, 1] with ImageNet's mean and std (no padding)."""
        return (x - self.pixel_mean) / self.pixel_std

    def postprocess_masks(self, masks: torch.Tensor, input_size: Sequence[int],
                          original_size: Sequence[int]) -> torch.Tensor:
        """Low-res maps (..., h, w) -> the frame (..., H, W), bilinearly, as SAM2Transforms does."""
        return F.interpolate(masks.float(), tuple(int(v) for v in original_size), mode="bilinear",
                             align_corners=False)

    def state_dict(self, *args, **kwargs):  # noqa: D102 - the checkpoint's own keys
        return self.base.state_dict(*args, **kwargs)

    def load_state_dict(self, state: Mapping[str, torch.Tensor], strict: bool = True, assign: bool = False):
        """Load a SAM 2 checkpoint's state_dict (its own keys) into the wrapped model."""
        return self.base.load_state_dict(state, strict=strict, assign=assign)


def build_sam2_image(model_type: str) -> Sam2Image:
    """A :class:`Sam2Image` of ``model_type`` with fresh weights (loading.py loads the checkpoint)."""
    return Sam2Image(build_sam2_base(model_type), model_type)
