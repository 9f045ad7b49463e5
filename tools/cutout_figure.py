#!/usr/bin/env python
"""The README's photo figure: a synthetic reference photo with its mask outlined, another photo,
and the cut-out `persam-video images --export cutout` writes for it (bundled model, PerSAM).

    python tools/cutout_figure.py docs/images/photos_cutout.png
"""
from __future__ import annotations

import sys

import cv2
import numpy as np
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.export.render import cutout_frame, matte_frame
from persam_video.model.loading import load_sam
from persam_video.photos.personalizer import ImagePersonalizer, PhotoReference


def checkerboard(shape, cell=12):
    yy, xx = np.indices(shape[:2]) // cell
    return np.where(((yy + xx) % 2 == 0)[..., None], 200, 240).astype(np.uint8).repeat(3, axis=2)


def main(out: str) -> None:
    clip = make_clip(seed=503, n_frames=4, size=(240, 320), n_objects=1)
    reference = clip.frames[0].copy()
    contours, _ = cv2.findContours((clip.labels[0] == 1).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(reference, contours, -1, (255, 255, 0), 2)
    personalizer = ImagePersonalizer(load_sam("small", device="cpu"),
                                     [PhotoReference(clip.frames[0], clip.labels[0] == 1, 1)])
    photo = clip.frames[3]
    labels = personalizer.segment(photo).labels
    cutout = cutout_frame(photo, matte_frame(labels, [1]))
    alpha = cutout[..., 3:4].astype(np.float32) / 255
    shown = np.round(cutout[..., :3] * alpha + checkerboard(photo.shape) * (1 - alpha)).astype(np.uint8)
    gap = np.full((photo.shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([reference, gap, photo, gap, shown], axis=1)).save(out)


if __name__ == "__main__":
    main(sys.argv[1])
