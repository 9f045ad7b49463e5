"""One frame's image embedding and SAM's prompt-to-mask call on it, without torchvision; a store
of encoded frames; the prompt encoder's positional encoding made once per model.

:class:`FramePredictor` has the part of ``segment_anything.SamPredictor``'s interface that
persam-video uses, with the same results to the bit (the frame resized by Pillow's bilinear
filter, as ``SamPredictor`` does through torchvision); ``SamPredictor``'s module imports
torchvision, a slow start-up (:mod:`persam_video.model.sam_import`).
"""
from __future__ import annotations

from typing import Dict, Hashable, Iterable, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import PersamError
from .upscaling import postprocess


def dense_pe(model: torch.nn.Module) -> torch.Tensor:
    """The prompt encoder's positional encoding of the embedding grid, made once per model: it
    depends only on the encoder's fixed random projection, so every pass gets the same tensor
    (equal to ``get_dense_pe()``), and the fast decoder keeps what it derived from it."""
    matrix = model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
    key = (matrix.data_ptr(), matrix._version, tuple(model.prompt_encoder.image_embedding_size))
    kept = model.__dict__.get("_dense_pe")
    if kept is None or kept[0] != key:
        kept = (key, model.prompt_encoder.get_dense_pe())
        model.__dict__["_dense_pe"] = kept
    return kept[1]


class LongestSide:
    """Scale images, points and boxes so that an image's longest side becomes ``target_length``
    (SAM's input size), the other side in proportion, rounded to the nearest pixel."""

    def __init__(self, target_length: int) -> None:
        self.target_length = int(target_length)

    @staticmethod
    def get_preprocess_shape(old_h: int, old_w: int, long_side_length: int) -> Tuple[int, int]:
        """(height, width) of an ``old_h`` x ``old_w`` image scaled to ``long_side_length``."""
        scale = long_side_length * 1.0 / max(old_h, old_w)
        return int(old_h * scale + 0.5), int(old_w * scale + 0.5)

    def _scales(self, original_size: Tuple[int, ...]) -> Tuple[float, float]:
        old_h, old_w = original_size
        new_h, new_w = self.get_preprocess_shape(old_h, old_w, self.target_length)
        return new_w / old_w, new_h / old_h

    def apply_image(self, image: np.ndarray) -> np.ndarray:
        """Resize an (H, W, 3) image (uint8; floats in [0, 1] are scaled to uint8 first) with
        Pillow's bilinear filter. Always a new, writable, C-ordered array."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise PersamError(f"expected an (H, W, 3) RGB image, got an array of shape {tuple(image.shape)}")
        if np.issubdtype(image.dtype, np.floating):
            image = (image * 255).astype(np.uint8)
        elif image.dtype != np.uint8:
            raise PersamError(f"expected an RGB image of uint8 pixels, got {image.dtype}")
        height, width = self.get_preprocess_shape(image.shape[0], image.shape[1], self.target_length)
        if (height, width) == image.shape[:2]:
            return np.array(image, order="C")
        return np.array(Image.fromarray(image).resize((width, height), Image.BILINEAR))

    def apply_image_torch(self, image: torch.Tensor) -> torch.Tensor:
        """Resize a (B, C, H, W) float batch with antialiased bilinear interpolation (close to,
        not equal to, :meth:`apply_image`)."""
        size = self.get_preprocess_shape(image.shape[-2], image.shape[-1], self.target_length)
        return F.interpolate(image, size, mode="bilinear", align_corners=False, antialias=True)

    def apply_coords(self, coords: np.ndarray, original_size: Tuple[int, ...]) -> np.ndarray:
        """(..., 2) (x, y) pixels of an ``original_size`` (H, W) image -> the resized image's (float64 copy)."""
        sx, sy = self._scales(original_size)
        out = np.array(coords, dtype=float)
        out[..., 0] = out[..., 0] * sx
        out[..., 1] = out[..., 1] * sy
        return out

    def apply_boxes(self, boxes: np.ndarray, original_size: Tuple[int, ...]) -> np.ndarray:
        """(B, 4) (x0, y0, x1, y1) boxes -> the resized image's."""
        return self.apply_coords(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)

    def apply_coords_torch(self, coords: torch.Tensor, original_size: Tuple[int, ...]) -> torch.Tensor:
        """As :meth:`apply_coords` on a tensor (a float32 copy)."""
        sx, sy = self._scales(original_size)
        out = coords.detach().clone().to(torch.float)
        out[..., 0] = out[..., 0] * sx
        out[..., 1] = out[..., 1] * sy
        return out

    def apply_boxes_torch(self, boxes: torch.Tensor, original_size: Tuple[int, ...]) -> torch.Tensor:
        """As :meth:`apply_boxes` on a tensor."""
        return self.apply_coords_torch(boxes.reshape(-1, 2, 2), original_size).reshape(-1, 4)


class FramePredictor:
    """A SAM model and the embedding of its current image: :meth:`set_image` encodes a frame,
    :meth:`predict` / :meth:`predict_torch` prompt the decoder on it (as ``SamPredictor``).
    :meth:`keep` and :meth:`recall` store encoded images by key (prompted frames, references),
    so an image needed again is not encoded again."""

    _NOT_IMAGE = ("model", "transform", "_kept")  # what an image's state leaves out

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        # a model may bring its own input geometry (SAM 2.1 squeezes to a square; sam2_model.py)
        self.transform = getattr(model, "input_transform", None) or LongestSide(model.image_encoder.img_size)
        self._kept: Dict[Hashable, dict] = {}
        self.reset_image()

    def keep(self, key: Hashable) -> None:
        """Store the current image's embedding and sizes under ``key``."""
        self._kept[key] = {k: v for k, v in vars(self).items() if k not in self._NOT_IMAGE}

    def recall(self, key: Hashable) -> bool:
        """Make the image kept under ``key`` the current one; False (nothing changed) if none is."""
        state = self._kept.get(key)
        if state is None:
            return False
        self.__dict__.update(state)
        return True

    def forget(self, keep: Iterable[Hashable] = ()) -> None:
        """Drop every kept image but those of ``keep``."""
        wanted = set(keep)
        for key in [k for k in self._kept if k not in wanted]:
            del self._kept[key]

    def kept(self) -> List[Hashable]:
        """The keys of the images kept."""
        return list(self._kept)

    @property
    def device(self) -> torch.device:
        """The model's device."""
        return self.model.device

    def reset_image(self) -> None:
        """Forget the current image and its embedding."""
        self.is_image_set = False
        self.features: Optional[torch.Tensor] = None
        self.high_res: Optional[List[torch.Tensor]] = None  # SAM 2.1's high-resolution features, else None
        self.orig_h = self.orig_w = self.input_h = self.input_w = None

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
        self.original_size = tuple(original_image_size)
        self.input_size = tuple(transformed_image.shape[-2:])
        encoded = self.model.image_encoder(self.model.preprocess(transformed_image))
        if isinstance(encoded, tuple):  # (embedding, high-resolution features): SAM 2.1 (sam2_model.py)
            encoded, self.high_res = encoded[0], list(encoded[1])
        self.features = encoded
        self.is_image_set = True

    def get_image_embedding(self) -> torch.Tensor:
        """The current image's embedding (1, C, h, w)."""
        self._check_image()
        return self.features

    def _check_image(self) -> None:
        if not self.is_image_set:
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
        self._check_image()
        points = None if point_coords is None else (point_coords, point_labels)
        sparse, dense = self.model.prompt_encoder(points=points, boxes=boxes, masks=mask_input)
        low_res, scores = decode(self, sparse, dense, multimask_output)
        masks = postprocess(self.model, low_res, self.input_size, self.original_size)
        if not return_logits:
            masks = masks > self.model.mask_threshold
        return masks, scores, low_res


def decode(predictor, sparse: torch.Tensor, dense: torch.Tensor, multimask_output: bool
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """The mask decoder on ``predictor``'s current image (a FramePredictor or segment_anything's
    SamPredictor) for encoded prompts: low-res logits (B, C, h, w) and predicted IoUs (B, C). The one
    decoder call of every family: SAM 2.1's also gets the image's high-resolution features."""
    high_res = getattr(predictor, "high_res", None)
    extra = {} if high_res is None else {"high_res_features": high_res}
    model = predictor.model
    return model.mask_decoder(
        image_embeddings=predictor.features, image_pe=dense_pe(model), sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense, multimask_output=multimask_output, **extra)
