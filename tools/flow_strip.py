#!/usr/bin/env python
"""docs/method.md's real-footage figure: one clip segmented from the same box on frame 0 with the
recipe and with the motion switches, as overlays of chosen frames (rows: settings).

    python tools/flow_strip.py VIDEO --box X0,Y0,X1,Y1 --frames 0,10,30,60,100 --out strip.png

docs/images/flow_strip.jpg is that strip for OpenCV's vtest.avi, box 398,148,430,203, saved as JPEG.
"""
from __future__ import annotations

import argparse
from typing import Dict, List

import cv2
import numpy as np
from PIL import Image

from persam_video.export.render import overlay_frame
from persam_video.io.frames import open_frames
from persam_video.model.loading import load_sam
from persam_video.options import TrackerOptions
from persam_video.tracking.session import VideoSession

SETTINGS = {
    "recipe (PerSAM-F)": {},
    "flow + leak guard 1 (the page's 'follow motion')": {"propagation": "flow", "leak_guard": 1.0},
}


def track(model, video: str, box: List[float], last: int, options: TrackerOptions) -> Dict[int, np.ndarray]:
    """Label maps of frames 0..last, forward from the box on frame 0."""
    session = VideoSession(model, open_frames(video), options)
    session.add_box(0, 1, box)
    out = {}
    for result in session.propagate(direction="forward"):
        out[result.index] = result.labels
        print(f"frame {result.index}", end="\r", flush=True)
        if result.index >= last:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--box", required=True, help="X0,Y0,X1,Y1 of the object on frame 0")
    parser.add_argument("--frames", default="0,10,30,60,100")
    parser.add_argument("--model-type", default="small")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    box = [float(v) for v in args.box.split(",")]
    frames = [int(v) for v in args.frames.split(",")]
    model = load_sam(args.model_type, device="cpu")
    source = open_frames(args.video)
    images = {i: source.read(i).image for i in frames}
    rows = []
    for name, settings in SETTINGS.items():
        labels = track(model, args.video, box, max(frames), TrackerOptions(**settings))
        tiles = []
        for i in frames:
            tile = overlay_frame(images[i], labels[i])
            cv2.putText(tile, f"{name}, frame {i}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1)
            tiles.append(tile)
            tiles.append(np.full((tile.shape[0], 4, 3), 255, np.uint8))
        rows.append(np.concatenate(tiles[:-1], axis=1))
        rows.append(np.full((4, rows[-1].shape[1], 3), 255, np.uint8))
    strip = np.concatenate(rows[:-1], axis=0)
    scale = min(1.0, 1800 / strip.shape[1])
    Image.fromarray(cv2.resize(strip, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)).save(args.out)


if __name__ == "__main__":
    main()
