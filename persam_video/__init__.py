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
from .errors import PersamError
from .frames import Frame, FrameSource, open_frames
from .masks import DAVIS_PALETTE, read_label_png, write_label_png
from .models import MODEL_TYPES, load_sam
from .pipeline import RunSummary, VideoJob, prepare_job, run_job
from .tracker import TrackerOptions, VideoSegmenter, load_state, save_state

__version__ = "0.1.0"

__all__ = [
    "DAVIS_PALETTE", "Frame", "FrameSource", "MODEL_TYPES", "PersamError", "RunSummary", "TrackerOptions",
    "VideoJob", "VideoSegmenter", "load_sam", "load_state", "open_frames", "prepare_job", "read_label_png",
    "run_job", "save_state", "write_label_png",
]
