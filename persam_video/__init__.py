"""persam-video: segment chosen objects through a video from one annotated frame.

Library use::

    from persam_video import load_sam, open_frames, VideoSegmenter, TrackerOptions
    source = open_frames("clip.mp4")
    segmenter = VideoSegmenter(load_sam("small"), TrackerOptions(method="persam-f"))
    first = source.read(0)
    segmenter.seed_frame(first.image, seed_labels)            # (H, W) uint8 ids
    for index, labels in segmenter.propagate(source.frames(1)):
        ...
"""
from .model.sam_import import defer_package_init

defer_package_init()  # before any segment_anything import below: its __init__ costs torchvision (sam_import.py)

# the hook above must come before these imports
from .errors import PersamError  # noqa: E402
from .io.frames import Frame, FrameSource, open_frames  # noqa: E402
from .io.masks import DAVIS_PALETTE, read_label_png, write_label_png  # noqa: E402
from .io.prompts import Prompt, PromptSet, Reference, load_prompts, mask_prompts, save_prompts  # noqa: E402
from .model.loading import MODEL_TYPES, ModelSpec, load_sam  # noqa: E402
from .options import TrackerOptions  # noqa: E402
from .pipeline import RunSummary, segment_video  # noqa: E402
from .tracking.object_state import load_state, save_state  # noqa: E402
from .tracking.segmenter import VideoSegmenter  # noqa: E402
from .tracking.session import FrameResult, ObjectResult, VideoSession  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "DAVIS_PALETTE", "Frame", "FrameResult", "FrameSource", "MODEL_TYPES", "ModelSpec", "ObjectResult", "PersamError",
    "Prompt", "PromptSet", "Reference", "RunSummary", "TrackerOptions", "VideoSegmenter", "VideoSession",
    "load_prompts", "load_sam", "load_state", "mask_prompts", "open_frames", "read_label_png", "save_prompts",
    "save_state", "segment_video", "write_label_png",
]
