"""One image's embedding and SAM's prompt-to-mask call on it, without torchvision; the prompt
encoder's positional encoding made once per predictor.

:class:`FramePredictor` has the part of ``segment_anything.SamPredictor``'s interface that
persam-video uses, with the same results to the bit (the frame resized by Pillow's bilinear
filter, as ``SamPredictor`` does through torchvision); ``SamPredictor``'s module imports
torchvision, a slow start-up (:mod:`persam_video.model.sam_import`).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

from ..errors import PersamError
from .features import DEFAULT_CAPACITY, Features, FeatureStore
from .guided_decoder import Guide
from .resizing import LongestSide
from .upscaling import postprocess


class FramePredictor:
    """A SAM model and its current image: :meth:`set_image` (or :meth:`encode`) encodes an image,
    :meth:`use` makes features encoded before current (from a :class:`~.features.FeatureStore`),
    :meth:`predict` / :meth:`predict_torch` prompt the decoder on it (as ``SamPredictor``), and
    :meth:`decode` is the one call of the mask decoder, for clicks and for the method alike."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        # a model may bring its own input geometry (SAM 2.1 squeezes to a square; sam2_model.py)
        self.transform = getattr(model, "input_transform", None) or LongestSide(model.image_encoder.img_size)
        self.image: Optional[Features] = None
        self._pe: Optional[Tuple[tuple, torch.Tensor]] = None  # (what it was made from, dense_pe)

    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.device

    @property
    def is_image_set(self) -> bool:
        """Whether an image is current."""
        return self.image is not None

    @property
    def features(self) -> Optional[torch.Tensor]:
        """The current image's embedding (1, C, h, w)."""
        return None if self.image is None else self.image.embedding

    @property
    def high_res(self) -> Optional[Tuple[torch.Tensor, ...]]:
        """The current image's high-resolution features (SAM 2.1), else None."""
        return None if self.image is None else self.image.high_res

    @property
    def original_size(self) -> Optional[Tuple[int, int]]:
        """The current image's (H, W)."""
        return None if self.image is None else self.image.original_size

    @property
    def input_size(self) -> Optional[Tuple[int, int]]:
        """The current image's (h, w) as resized for the model."""
        return None if self.image is None else self.image.input_size

    def dense_pe(self) -> torch.Tensor:
        """The prompt encoder's positional encoding of the embedding grid, made once: it depends only
        on the encoder's fixed random projection, so every pass gets the same tensor (equal to
        ``get_dense_pe()``), and the fast decoder keeps what it derived from it."""
        encoder = self.model.prompt_encoder
        matrix = encoder.pe_layer.positional_encoding_gaussian_matrix
        key = (matrix.data_ptr(), matrix._version, tuple(encoder.image_embedding_size))
        if self._pe is None or self._pe[0] != key:
            self._pe = (key, encoder.get_dense_pe())
        return self._pe[1]

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.image = None

    def use(self, features: Features) -> None:
        """Make an image encoded before (:meth:`encode`) the current one."""
        self.image = features

    def store(self, capacity: int = DEFAULT_CAPACITY) -> FeatureStore:
        """A feature store that encodes with this predictor."""
        return FeatureStore(self.encode, capacity)

    def encode(self, image: np.ndarray) -> Features:
        """Encode ``image`` ((H, W, 3) uint8 RGB), make it current and return its features."""
        self.set_image(image)
        return self.image

    def set_image(self, image: np.ndarray, image_format: str = "RGB") -> None:
        """Encode ``image`` ((H, W, 3) uint8, RGB or BGR as ``image_format`` says)."""
        if image_format not in ("RGB", "BGR"):
            raise PersamError(f"image_format must be RGB or BGR, not {image_format!r}")
        if image_format != self.model.image_format:
            image = image[..., ::-1]
        resized = torch.as_tensor(self.transform.apply_image(image), device=self.device)
        self.set_torch_image(resized.permute(2, 0, 1).contiguous()[None], image.shape[:2])

    @torch.no_grad()
    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: Tuple[int, ...]) -> None:
        """Encode an image already resized by :attr:`transform` ((1, 3, h, w), longest side the
        model's input size); ``original_image_size`` is its (H, W) before resizing."""
        size = self.model.image_encoder.img_size
        if transformed_image.dim() != 4 or transformed_image.shape[1] != 3 or max(transformed_image.shape[2:]) != size:
            raise PersamError(f"set_torch_image expects a (B, 3, H, W) image with longest side {size}, "
                              f"got shape {tuple(transformed_image.shape)}")
        self.reset_image()
        encoded = self.model.image_encoder(self.model.preprocess(transformed_image))
        high_res = None
        if isinstance(encoded, tuple):  # (embedding, high-resolution features): SAM 2.1 (sam2_model.py)
            encoded, high_res = encoded[0], tuple(encoded[1])
        self.image = Features(encoded, tuple(original_image_size), tuple(transformed_image.shape[-2:]), high_res)

    def _check_image(self) -> None:
        if self.image is None:
            raise PersamError("no image is set: call set_image(...) before predicting")

    def predict(self, point_coords: Optional[np.ndarray] = None, point_labels: Optional[np.ndarray] = None,
                box: Optional[np.ndarray] = None, mask_input: Optional[np.ndarray] = None,
                multimask_output: bool = True, return_logits: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks (C, H, W), their predicted IoUs (C,) and low-res logits (C, h, w) for one object's
        clicks ((P, 2) pixels with (P,) labels, 1 = on the object), box (4,) and mask logits (1, h, w)."""
        self._check_image()
        coords = labels = boxes = masks = None
        if point_coords is not None:
            if point_labels is None:
                raise PersamError("point_labels must be given with point_coords")
            coords = torch.as_tensor(self.transform.apply_coords(point_coords, self.original_size),
                                     dtype=torch.float, device=self.device)[None]
            labels = torch.as_tensor(point_labels, dtype=torch.int, device=self.device)[None]
        if box is not None:
            boxes = torch.as_tensor(self.transform.apply_boxes(box, self.original_size),
                                    dtype=torch.float, device=self.device)[None]
        if mask_input is not None:
            masks = torch.as_tensor(mask_input, dtype=torch.float, device=self.device)[None]
        out, scores, low_res = self.predict_torch(coords, labels, boxes, masks, multimask_output,
                                                  return_logits=return_logits)
        return out[0].detach().cpu().numpy(), scores[0].detach().cpu().numpy(), low_res[0].detach().cpu().numpy()

    @torch.no_grad()
    def click_mask(self, points: Optional[np.ndarray], labels: Optional[np.ndarray],
                   box: Optional[np.ndarray] = None) -> np.ndarray:
        """SAM's (H, W) bool mask for one object's clicks and box, by SamPredictor's rule: the best
        of its three masks for a single click alone, its single mask otherwise (possibly empty)."""
        n_points = 0 if points is None else len(points)
        masks, scores, _ = self.predict(point_coords=points, point_labels=labels, box=box,
                                        multimask_output=n_points == 1 and box is None)
        return masks[int(np.argmax(scores))]

    @torch.no_grad()
    def predict_torch(self, point_coords: Optional[torch.Tensor], point_labels: Optional[torch.Tensor],
                      boxes: Optional[torch.Tensor] = None, mask_input: Optional[torch.Tensor] = None,
                      multimask_output: bool = True, return_logits: bool = False
                      ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Batched :meth:`predict` on prompts already in the resized image's pixels (B, P, 2),
        (B, P), (B, 4), (B, 1, h, w): masks (B, C, H, W), IoUs (B, C), low-res logits (B, C, h, w)."""
        low_res, scores = self.decode(point_coords, point_labels, boxes, mask_input, multimask_output)
        masks = postprocess(self.model, low_res, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, scores, low_res

    def decode(self, points: Optional[torch.Tensor], labels: Optional[torch.Tensor],
               boxes: Optional[torch.Tensor] = None, mask_input: Optional[torch.Tensor] = None,
               multimask: bool = True, guide: Optional[Guide] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        """The one call of the prompt encoder and mask decoder on the current image: prompts in the
        resized image's pixels (B, P, 2) with labels (B, P), boxes (B, 4), mask logits (B, 1, h, w) ->
        low-res logits (B, C, h, w) and predicted IoUs (B, C), C = 3 with ``multimask``, else 1.
        Clicks (:meth:`predict_torch`) and PerSAM / PerSAM-F (:func:`persam_video.persam.predict`)
        both come through here; ``guide`` turns on PerSAM's target-guided attention and/or
        target-semantic prompting for this call (:mod:`.guided_decoder`)."""
        self._check_image()
        sparse, dense = self.model.prompt_encoder(points=None if points is None else (points, labels),
                                                  boxes=boxes, masks=mask_input)
        extra = {} if self.image.high_res is None else {"high_res_features": list(self.image.high_res)}
        if guide is not None:
            extra["guide"] = guide
        return self.model.mask_decoder(
            image_embeddings=self.image.embedding, image_pe=self.dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense, multimask_output=multimask, **extra)
