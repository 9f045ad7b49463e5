"""The PerSAM / PerSAM-F method on one frame: stateless maths on a cached image embedding.

Everything here works on one frame's embedding and a batch of objects; the tracker
(:mod:`persam_video.tracking.segmenter`) owns the state across frames. The method, and where it
departs from the public PerSAM scripts, is described in ``docs/method.md``.

- :mod:`.geometry`: masks on the embedding grid, target embeddings, confidence maps,
  points and boxes;
- :mod:`.decoding`: one decoder pass, the PerSAM and PerSAM-F cascades, the label map;
- :mod:`.fit`: PerSAM-F's two scale weights.

Target-guided attention and target-semantic prompting are switches of the decoder itself
(:mod:`persam_video.model.guided_decoder`); :func:`.geometry.attention_bias` makes the bias.
"""
from .decoding import (
    Cascade,
    CascadeResult,
    PassOutput,
    Prompts,
    Switches,
    decode_persam,
    decode_persam_f,
    fuse,
    label_map,
    largest_mask,
    predict,
)
from .fit import dice_loss, fit_scale_weights, focal_loss
from .geometry import (
    MASK_VALUE,
    Target,
    box_centre,
    box_mask,
    centroid_cell,
    combine_targets,
    confidence_maps,
    interior_point,
    limit_box_growth,
    lowest_point,
    mask_to_grid,
    mask_touched_cells,
    target_embedding,
    tight_box,
    tight_boxes,
    top_points,
    widen_box,
)

__all__ = [
    "MASK_VALUE", "Cascade", "CascadeResult", "PassOutput", "Prompts", "Switches", "Target", "box_centre",
    "box_mask", "centroid_cell", "combine_targets", "confidence_maps", "decode_persam", "decode_persam_f", "dice_loss",
    "fit_scale_weights", "focal_loss", "fuse", "interior_point", "label_map", "largest_mask",
    "limit_box_growth", "lowest_point", "mask_to_grid", "mask_touched_cells", "predict", "target_embedding",
    "tight_box", "tight_boxes", "top_points", "widen_box",
]
