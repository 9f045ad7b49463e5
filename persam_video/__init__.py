"""persam-video: segment chosen objects through a video from one annotated frame.

Library use::

    from persam_video import load_sam, open_frames, VideoSegmenter, TrackerOptions
    source = open_frames("clip.mp4")
    segmenter = VideoSegmenter(load_sam("small"), TrackerOptions(method="persam-f"))
    first = source.read(0)
    segmenter.init(first.image, seed_labels)            # (H, W) uint8 ids
    for index, labels in segmenter.propagate(source.frames(1)):
        ...
"""
from .sam_import import defer_package_init

defer_package_init()  # before any segment_anything import below: its __init__ costs torchvision (sam_import.py)

from .errors import PersamError  # noqa: E402 (the hook above must come first)
from .frames import Frame, FrameSource, open_frames
from .masks import DAVIS_PALETTE, read_label_png, write_label_png
from .models import MODEL_TYPES, load_sam
from .pipeline import RunSummary, VideoJob, prepare_job, run_job, segment_video
from .prompts import Prompt, PromptSet, Reference, load_prompts, save_prompts
from .session import FrameResult, ObjectResult, VideoSession
from .tracker import TrackerOptions, VideoSegmenter, load_state, save_state

__version__ = "0.1.0"

__all__ = [
    "DAVIS_PALETTE", "Frame", "FrameResult", "FrameSource", "MODEL_TYPES", "ObjectResult", "PersamError", "Prompt",
    "PromptSet", "Reference", "RunSummary", "TrackerOptions", "VideoJob", "VideoSegmenter", "VideoSession",
    "load_prompts", "load_sam", "load_state", "open_frames", "prepare_job", "read_label_png", "run_job",
    "save_prompts", "save_state", "segment_video", "write_label_png",
]
