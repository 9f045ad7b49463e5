#!/usr/bin/env python
"""Pictures of `export --kind remove`: a frame before and after removal, and a strip over a real clip.

The README's figure is a synthetic clip (object 1 outlined, then removed):

    python tools/removal_figure.py docs/images/removal.png

``--video PATH`` instead removes whatever moves in a static-camera clip (the masks come from
OpenCV's MOG2 background subtraction, grown a little) and writes a strip of ``--show`` frames,
each the frame over its cleaned version, to judge the removal on real footage by eye:

    python tools/removal_figure.py strip.jpg --video vtest.avi --frames 80 --show 4
"""
from __future__ import annotations

import argparse
from typing import List, Tuple

import cv2
import numpy as np
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.export.holes import grow
from persam_video.export.removal import Remover
from persam_video.io.frames import open_frames


def outlined(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = image.copy()
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, (255, 255, 0), 2)
    return out


def remove_all(frames: List[np.ndarray], holes: List[np.ndarray]) -> List[np.ndarray]:
    remover = Remover(frames[0].shape[:2])
    out: List[np.ndarray] = []
    for frame, hole in zip(frames, holes):
        out += remover.push(frame, hole)
    return out + remover.finish()


def synthetic_pair() -> np.ndarray:
    """Frame 20 of a synthetic clip with object 1 outlined, beside the same frame with object 1 removed."""
    clip = make_clip(seed=2, n_frames=36, size=(240, 427), n_objects=2, speed=0.06)
    holes = [grow(labels == 1, 4) for labels in clip.labels]
    clean = remove_all(list(clip.frames), holes)
    t = 20
    gap = np.full((clip.frames[t].shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([outlined(clip.frames[t], clip.labels[t] == 1), gap, clean[t]], axis=1)


def moving_masks(frames: List[np.ndarray], grow_px: int = 6) -> List[np.ndarray]:
    """What moves, by MOG2 background subtraction (learnt over the whole clip first), cleaned and grown."""
    subtractor = cv2.createBackgroundSubtractorMOG2(history=len(frames), detectShadows=False)
    for frame in frames:
        subtractor.apply(frame)
    holes = []
    for frame in frames:
        mask = subtractor.apply(frame, learningRate=0) > 0
        mask = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) > 0
        holes.append(grow(mask, grow_px))
    return holes


def real_strip(path: str, n_frames: int, show: int) -> Tuple[np.ndarray, float]:
    """Frames over their cleaned versions for ``show`` frames spread over the clip; the hole's mean share."""
    source = open_frames(path)
    frames = [f.image for _, f in zip(range(n_frames), source.frames())]
    holes = moving_masks(frames)
    clean = remove_all(frames, holes)
    picks = np.linspace(len(frames) // 4, len(frames) - 1 - len(frames) // 8, show).astype(int)
    columns = [np.concatenate([outlined(frames[t], holes[t]), clean[t]], axis=0) for t in picks]
    gap = np.full((columns[0].shape[0], 6, 3), 255, np.uint8)
    strip = np.concatenate(sum(([c, gap] for c in columns), [])[:-1], axis=1)
    return strip, float(np.mean([h.mean() for h in holes]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--video", default=None, help="a static-camera clip: remove whatever moves")
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--show", type=int, default=4)
    args = parser.parse_args()
    if args.video:
        picture, share = real_strip(args.video, args.frames, args.show)
        print(f"mean hole: {100 * share:.1f} % of the frame")
    else:
        picture = synthetic_pair()
    Image.fromarray(picture).save(args.out)


if __name__ == "__main__":
    main()
