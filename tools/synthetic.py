"""Synthetic data for the benchmarks and the trainer, built on the demo's clip generator.

* :func:`render_scene` – one image: textured objects on a textured background, with
  partial occlusion; returns ``(rgb uint8 HxWx3, labels uint8 HxW)`` with ids ``1..n``.
* :func:`iter_clip` / :func:`make_clip` – the clips of :mod:`persam_video.demo_clip` (the same
  clip for the same seed), where objects may also leave the frame and come back and a
  void (255) band may mark every boundary.
* :func:`write_davis_dataset` – a DAVIS-layout dataset of such clips.

Not a package: scripts of tools/ import it as ``synthetic`` (their folder is on
``sys.path``); benchmarks put tools/ on ``sys.path``; tests load it with ``load_tool``.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple, Union

import cv2
import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from persam_video.demo_clip import (
    Clip,
    Pose,
    Size,
    TexturedObject,
    Track,
    camera_effects,
    clip_frames,
    compose,
    random_object,
    random_texture,
    shape_mask,
    stack_clip,
)
from persam_video.io.masks import VOID_ID, write_label_png

# ------------------------------------------------------------------------------ scenes

def void_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Mark as void (255) the pixels within ``width`` of a boundary between different labels."""
    if width <= 0:
        return labels
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * width + 1, 2 * width + 1))
    boundary = cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)
    out = labels.copy()
    out[boundary] = VOID_ID
    return out


def render_scene(rng: np.random.Generator, size: Size, n_objects: int,
                 radius_range: Tuple[float, float] = (0.06, 0.4), min_visible: float = 0.15,
                 min_area: int = 16, allow_cut: bool = True) -> Tuple[np.ndarray, np.ndarray]:
    """One image of ``n_objects`` textured objects on a textured background.

    Returns ``(rgb, labels)``: ``rgb`` uint8 (H, W, 3) and ``labels`` uint8 (H, W) with
    object ids ``1..n_objects`` (id k is drawn k-th, so higher ids occlude lower ones) and
    0 for background. Radii are fractions of ``min(H, W)``. Each object keeps at least
    ``min_visible`` of its own area and ``min_area`` pixels visible (placements are
    retried; an object that cannot be placed is re-sampled smaller), so every id is present.
    With ``allow_cut`` objects may be cut by the image border.
    """
    h, w = size
    short = min(h, w)
    background = random_texture(rng, h, w)
    objects: List[TexturedObject] = []
    poses: List[Pose] = []
    for k in range(1, n_objects + 1):
        placed = False
        lo, hi = radius_range
        for attempt in range(30):
            radius = float(rng.uniform(lo, hi) * short) * (0.8 ** (attempt // 10))
            radius = max(radius, 3.0)
            margin = -0.5 * radius if allow_cut else radius
            center = (float(rng.uniform(margin, w - margin)), float(rng.uniform(margin, h - margin)))
            angle = float(rng.uniform(0, 2 * math.pi))
            if attempt % 10 == 0:  # a new shape every 10 tries; in between, new poses for it
                obj = random_object(rng, radius)
            own = int(shape_mask(obj.shape, (h, w), center, radius, angle).sum())
            if own < min_area:
                continue
            _, labels, areas = compose(background, objects + [obj], poses + [(center, radius, angle)],
                                        list(range(1, k + 1)))
            # the new object is on top; check that it did not hide earlier ones too much
            ok = areas[k] >= max(min_area, min_visible * own)
            for j in range(1, k):
                ok = ok and areas[j] >= min_area
            if ok:
                objects.append(obj)
                poses.append((center, radius, angle))
                placed = True
                break
        if not placed:
            raise RuntimeError(f"could not place object {k} in a {h}x{w} image; use fewer or smaller objects")
    image, labels, _ = compose(background, objects, poses, list(range(1, n_objects + 1)))
    rgb = camera_effects(rng, image, blur=float(rng.uniform(0, 1.0)), noise=float(rng.uniform(0, 6)))
    return rgb, labels


# ------------------------------------------------------------------------------ videos

@dataclass
class LeavingTrack(Track):
    """A track that, on one axis, goes out of the frame and comes back instead of bouncing."""

    leave_axis: int = 0  # 0: leaves along x, 1: along y
    leave_amp: float = 0.0
    leave_period: float = 1.0

    def position(self, t: float) -> np.ndarray:
        pos = super().position(t)
        # out and back: 0 at t=0, peaks at leave_amp (outside the frame) mid-period
        pos[self.leave_axis] = self.c0[self.leave_axis] + self.leave_amp * 0.5 * (
            1 - math.cos(2 * math.pi * t / self.leave_period))
        return pos


def leaving_track(rng: np.random.Generator, track: Track, size: Size, n_frames: int) -> LeavingTrack:
    """``track`` made to leave the frame once and come back within ``n_frames``."""
    h, w = size
    radius = track.radius0
    axis = int(rng.integers(2))
    extent = (w, h)[axis]
    towards_high = rng.random() < 0.5
    # start near the exit border, fully inside, so frame 0 shows the whole object
    d = rng.uniform(radius * 1.1, max(radius * 1.2, 0.3 * extent))
    start = extent - d if towards_high else d
    start = float(np.clip(start, radius, extent - radius)) if extent > 2 * radius else extent / 2
    track.c0[axis] = start
    exit_at = (extent + 1.3 * radius - start) if towards_high else -(start + 1.3 * radius)
    return LeavingTrack(**vars(track), leave_axis=axis,
                        leave_amp=exit_at / 0.7,  # outside while (1 - cos)/2 > 0.7: ~37% of the period
                        leave_period=max(n_frames * float(rng.uniform(0.75, 0.95)), 2.0))


def iter_clip(seed: int, n_frames: int, size: Size = (480, 854), n_objects: int = 2, void_width: int = 0,
              leave_frame: Union[bool, int] = False, **kwargs) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rgb, labels)`` frames of a synthetic clip, deterministic for ``seed``: the
    clip of ``persam_video.demo_clip.make_clip`` (see ``clip_frames`` there for the keyword
    arguments), with ``leave_frame``: True makes one object leave the frame and come back,
    an int makes that many objects do so; ``void_width`` > 0 marks a band of that many
    pixels around every object boundary as void (255) in the labels.
    """
    rng = np.random.default_rng(seed)
    n_leave = int(leave_frame) if not isinstance(leave_frame, bool) else (1 if leave_frame else 0)
    n_leave = min(n_leave, n_objects)
    leave = [k < n_leave for k in rng.permutation(n_objects)]

    def adjust(rng: np.random.Generator, k: int, track: Track) -> Track:
        return leaving_track(rng, track, size, n_frames) if leave[k] else track

    for rgb, labels in clip_frames(rng, n_frames, size, n_objects, adjust=adjust, **kwargs):
        yield rgb, void_band(labels, void_width)


def make_clip(seed: int, n_frames: int, size: Size = (480, 854), n_objects: int = 2, void_width: int = 0,
              leave_frame: Union[bool, int] = False, **kwargs) -> Clip:
    """A whole clip of :func:`iter_clip` as arrays."""
    return stack_clip(iter_clip(seed, n_frames, size, n_objects, void_width=void_width, leave_frame=leave_frame,
                                **kwargs))


# ------------------------------------------------------------------------------- DAVIS

def write_davis_dataset(root: Union[str, os.PathLike], seed: int = 0, n_sequences: int = 10, n_frames: int = 50,
                        size: Size = (480, 854), subset: str = "val", objects: Tuple[int, int] = (1, 3),
                        void_width: int = 3, leave_prob: float = 0.4, jpeg_quality: int = 90,
                        resolution: str = "480p", progress: bool = False,
                        truth_root: Optional[Union[str, os.PathLike]] = None) -> List[str]:
    """Write a DAVIS-2017-layout dataset of synthetic clips; returns the sequence names.

    Layout: ``JPEGImages/<resolution>/<seq>/00000.jpg``, ``Annotations/<resolution>/<seq>/00000.png``
    (indexed PNGs with the DAVIS palette) and ``ImageSets/2017/<subset>.txt``. Sequence
    ``i`` uses clip seed ``seed * 100003 + i`` with between ``objects[0]`` and ``objects[1]``
    objects; with probability ``leave_prob`` one object leaves the frame and comes back.
    ``void_width`` > 0 adds DAVIS-like void bands around boundaries (the first frame's
    annotation gets none, like DAVIS's reference masks, so it can seed a tracker).
    ``truth_root``: also write the label maps before the void bands there, as a results folder
    (``<truth_root>/<seq>/<frame>.png``): what a perfect tracker would write.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    names: List[str] = []
    iterator = range(n_sequences)
    if progress:
        iterator = tqdm(iterator, desc="synthetic sequences")
    for i in iterator:
        n_obj = int(rng.integers(objects[0], objects[1] + 1))
        leave = bool(rng.random() < leave_prob)
        name = f"synth-{seed:03d}-{i:03d}"
        img_dir = root / "JPEGImages" / resolution / name
        ann_dir = root / "Annotations" / resolution / name
        img_dir.mkdir(parents=True, exist_ok=True)
        ann_dir.mkdir(parents=True, exist_ok=True)
        frames = iter_clip(seed * 100003 + i, n_frames, size, n_obj, void_width=0, leave_frame=leave)
        truth_dir = Path(truth_root) / name if truth_root is not None else None
        if truth_dir is not None:
            truth_dir.mkdir(parents=True, exist_ok=True)
        for t, (rgb, labels) in enumerate(frames):
            Image.fromarray(rgb).save(img_dir / f"{t:05d}.jpg", quality=jpeg_quality)
            if truth_dir is not None:
                write_label_png(truth_dir / f"{t:05d}.png", labels)
            if t > 0:
                labels = void_band(labels, void_width)
            write_label_png(ann_dir / f"{t:05d}.png", labels)
        names.append(name)
    sets = root / "ImageSets" / "2017"
    sets.mkdir(parents=True, exist_ok=True)
    (sets / f"{subset}.txt").write_text("".join(n + "\n" for n in names))
    return names
