"""SAM 2.1's model types: official checkpoint files, the package configs that build them, and
what a state_dict holds (so a wrong file is named in one line, not a key mismatch dump)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import torch

SAM2_URL = "https://dl.fbaipublicfiles.com/segment_anything_2/092824/"


@dataclass(frozen=True)
class Sam2Size:
    """One Hiera size: its checkpoint file, its config in the ``sam2`` package, and its trunk's shape."""

    filename: str
    config: str
    width: int  # channels of the Hiera trunk's patch embedding
    blocks: int  # Hiera blocks in the trunk (sum of the config's stages)
    download_mb: int  # size of the official file, as Meta lists it


SAM2_SIZES: Dict[str, Sam2Size] = {
    "sam2.1_hiera_tiny": Sam2Size("sam2.1_hiera_tiny.pt", "configs/sam2.1/sam2.1_hiera_t.yaml", 96, 12, 149),
    "sam2.1_hiera_small": Sam2Size("sam2.1_hiera_small.pt", "configs/sam2.1/sam2.1_hiera_s.yaml", 96, 16, 176),
    "sam2.1_hiera_base_plus": Sam2Size("sam2.1_hiera_base_plus.pt", "configs/sam2.1/sam2.1_hiera_b+.yaml",
                                       112, 24, 309),
    "sam2.1_hiera_large": Sam2Size("sam2.1_hiera_large.pt", "configs/sam2.1/sam2.1_hiera_l.yaml", 144, 48, 857),
}
SAM2_MODEL_TYPES = tuple(SAM2_SIZES)

# Keys that SAM 2.1 added to SAM 2's model (a SAM 2.0 file lacks them).
_SAM21_ONLY = ("no_obj_embed_spatial", "obj_ptr_tpos_proj.weight")
_BLOCK = re.compile(r"^image_encoder\.trunk\.blocks\.(\d+)\.")


def is_sam2_model_type(model_type: str) -> bool:
    """Whether ``model_type`` names a SAM 2.1 size."""
    return model_type in SAM2_SIZES


def sam2_url(model_type: str) -> str:
    """The official download address of a SAM 2.1 checkpoint."""
    return SAM2_URL + SAM2_SIZES[model_type].filename


def describe_sam2_state(state: Mapping[str, torch.Tensor]) -> Optional[str]:
    """What a SAM 2 state_dict holds: a SAM 2.1 model type, or words such as ``a SAM 2 (not 2.1)
    hiera_tiny model``; None when it is not a SAM 2 checkpoint at all."""
    proj = state.get("image_encoder.trunk.patch_embed.proj.weight")
    if proj is None or "sam_mask_decoder.iou_token.weight" not in state:
        return None
    blocks = 1 + max((int(m.group(1)) for m in map(_BLOCK.match, state) if m), default=-1)
    width = int(proj.shape[0])
    name = next((k for k, s in SAM2_SIZES.items() if (s.width, s.blocks) == (width, blocks)), None)
    if name is None:
        return f"a SAM 2 model with a Hiera trunk of width {width} and {blocks} blocks (no known size)"
    if not all(key in state for key in _SAM21_ONLY):
        return f"a SAM 2 (not 2.1) {name.split('_', 1)[1]} model"
    return name
