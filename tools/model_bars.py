"""Issue 5's model-level quality bars for a small-SAM checkpoint (the bundled one by default).

Prints one table row per check, so that a candidate from ``tools/train_small_sam.py --export``
can be compared with the bundled model before it replaces it:

* one positive point at the most interior pixel of a single unseen shape, the mask SAM scores
  best: median IoU over the 10 shapes of ``tests/model/test_small.py`` (bar 0.8), the first
  40 of that stream, and 40 of another stream;
* PerSAM-F tracker J over the 20-frame clip of the test (bar 0.7) and the mean over six other
  clips of the same generator.

    python tools/model_bars.py                                   # the bundled model
    python tools/model_bars.py --checkpoint cand.pth --anchor interior --box-clip --margin 5

The test imports ``one_point_ious`` and ``tracked_j`` from here, so the figures are the test's.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional

import cv2
import numpy as np
import torch
from segment_anything import SamPredictor

from persam_video.davis.metrics import j_measure
from persam_video.demo_clip import make_clip
from persam_video.model.loading import load_sam
from persam_video.options import TrackerOptions
from persam_video.tracking.segmenter import VideoSegmenter

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/, also when loaded from elsewhere (tests)
from synthetic import render_scene  # noqa: E402

UNSEEN = 424242  # training renders from (run seed, step) and clip seeds >= 10**10: never this stream
OTHER_STREAM = 777
OTHER_CLIPS = tuple(range(9001, 9007))


def one_point_ious(model: torch.nn.Module, n: int = 10, seed: int = UNSEEN) -> List[float]:
    """IoU of the best-scored mask for one point at the most interior pixel of ``n`` single shapes."""
    rng = np.random.default_rng(seed)
    predictor = SamPredictor(model)
    ious = []
    for _ in range(n):
        rgb, labels = render_scene(rng, (240, 320), 1)
        gt = labels == 1
        dist = cv2.distanceTransform(gt.astype(np.uint8), cv2.DIST_L2, 3)
        y, x = np.unravel_index(dist.argmax(), dist.shape)
        predictor.set_image(rgb)
        masks, quality, _ = predictor.predict(np.array([[x, y]]), np.array([1]), multimask_output=True)
        best = masks[quality.argmax()]
        ious.append(float((best & gt).sum() / max((best | gt).sum(), 1)))
    return ious


def tracked_j(model: torch.nn.Module, seed: int = UNSEEN, options: Optional[TrackerOptions] = None) -> float:
    """Mean J of the tracker (PerSAM-F by default) over a 20-frame, two-object synthetic clip."""
    clip = make_clip(seed=seed, n_frames=20, size=(240, 427), n_objects=2, camera_motion=False)
    seg = VideoSegmenter(model, options or TrackerOptions(method="persam-f"))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    outputs = np.stack([labels for _, labels in seg.propagate(clip.frames[1:])])
    return float(np.mean([j_measure(outputs == k, clip.labels[1:] == k).mean() for k in (1, 2)]))


def main(argv: Optional[List[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", help="a small-SAM checkpoint (default: the bundled one)")
    p.add_argument("--anchor", default="box-centre", choices=("box-centre", "interior"))
    p.add_argument("--box-clip", action="store_true")
    p.add_argument("--margin", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load_sam("small", args.checkpoint, device="cpu")
    options = TrackerOptions(method="persam-f", anchor=args.anchor, box_clip=args.box_clip, margin=args.margin)
    first_40 = one_point_ious(model, 40)  # the stream is drawn in order: its first 10 are the test's shapes
    rows = [
        ("one point, median IoU, the test's 10 shapes (bar 0.8)", np.median(first_40[:10])),
        ("one point, median IoU, 40 of that stream", np.median(first_40)),
        (f"one point, median IoU, 40 of stream {OTHER_STREAM}", np.median(one_point_ious(model, 40, OTHER_STREAM))),
        ("tracker J, the test's clip (bar 0.7)", tracked_j(model, options=options)),
        (f"tracker J, clips {OTHER_CLIPS[0]}-{OTHER_CLIPS[-1]}, mean",
         np.mean([tracked_j(model, s, options) for s in OTHER_CLIPS])),
    ]
    print(f"| check | {args.checkpoint or 'bundled'} |\n|---|---:|")
    for name, value in rows:
        print(f"| {name} | {value:.3f} |")


if __name__ == "__main__":
    main()
