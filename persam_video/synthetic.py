"""Seeded procedural images and videos of textured objects, with exact label maps.

Everything here is deterministic for a given seed (one ``numpy`` ``Generator`` drives
every random choice; OpenCV is only used for deterministic drawing and warping).

* :func:`random_texture` – smooth noise, stripes, checker, blobs, dots, gradients.
* :func:`random_shape` – ellipse, polygon, rounded rect, star, blob, ring, crescent, cross.
* :func:`render_scene` – one image: textured objects on a textured background, with
  partial occlusion; returns ``(rgb uint8 HxWx3, labels uint8 HxW)`` with ids ``1..n``.
* :func:`make_clip` / :func:`iter_clip` – a video of objects moving smoothly
  (translation, slight scale and rotation), occluding each other, optionally leaving
  and re-entering the frame, optionally with a void (255) band around boundaries.
* :func:`write_davis_dataset` – a DAVIS-layout dataset of such clips.

An object's texture lives in its own coordinate frame and is warped with the same
affine transform as its outline, so textures move with the objects.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from .masks import VOID_ID, write_label_png

Size = Tuple[int, int]  # (height, width)

TEXTURE_KINDS = ("noise", "stripes", "checker", "blobs", "dots", "gradient")
SHAPE_KINDS = ("ellipse", "polygon", "rounded_rect", "star", "blob", "ring", "crescent", "cross")

_SUBPIXEL_SHIFT = 4  # cv2.fillPoly fixed-point bits
_TEXTURE_EXTENT = 1.6  # an object's texture covers [-extent, extent]^2 of its unit frame


# --------------------------------------------------------------------------- textures

def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour (float32, 0..255), via HSV so that saturation and value vary."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(30, 255)]]], dtype=np.float32)
    hsv8 = np.clip(hsv, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv8, cv2.COLOR_HSV2RGB).reshape(3).astype(np.float32)


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Fractal value noise in [0, 1], shape (h, w): random grids upsampled bicubically."""
    total = np.zeros((h, w), dtype=np.float32)
    weight_sum = 0.0
    for octave in range(octaves):
        c = max(cell / (2 ** octave), 2.0)
        gh, gw = int(math.ceil(h / c)) + 2, int(math.ceil(w / c)) + 2
        grid = rng.random((gh, gw), dtype=np.float32)
        up = cv2.resize(grid, (int(gw * c), int(gh * c)), interpolation=cv2.INTER_CUBIC)
        oy, ox = int(rng.integers(0, max(1, up.shape[0] - h + 1))), int(rng.integers(0, max(1, up.shape[1] - w + 1)))
        weight = 0.5 ** octave
        total += weight * up[oy:oy + h, ox:ox + w]
        weight_sum += weight
    total /= weight_sum
    lo, hi = float(total.min()), float(total.max())
    return (total - lo) / max(hi - lo, 1e-6)


def _coords(h: int, w: int, angle: float) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates rotated by ``angle`` (two (h, w) float32 arrays)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    c, s = math.cos(angle), math.sin(angle)
    return x * c + y * s, -x * s + y * c


def random_texture(rng: np.random.Generator, h: int, w: int, kind: Optional[str] = None,
                   scale: Optional[float] = None) -> np.ndarray:
    """A random (h, w, 3) float32 texture with values in 0..255.

    ``kind`` is one of :data:`TEXTURE_KINDS` (random if None); ``scale`` is the
    typical feature size in pixels (random if None).
    """
    kind = kind if kind is not None else TEXTURE_KINDS[int(rng.integers(len(TEXTURE_KINDS)))]
    scale = float(scale) if scale is not None else float(rng.uniform(4, 0.25 * max(h, w) + 8))
    c1, c2 = _random_colour(rng), _random_colour(rng)
    if kind == "noise":
        t = _smooth_noise(rng, h, w, cell=scale, octaves=int(rng.integers(1, 4)))
        if rng.random() < 0.5:  # a three-colour ramp
            c3 = _random_colour(rng)
            t3 = np.clip(2 * t - 1, 0, 1)[..., None]
            t2 = np.clip(2 * t, 0, 1)[..., None]
            return (c1 * (1 - t2) + c2 * t2) * (1 - t3) + c3 * t3
    elif kind == "stripes":
        u, _ = _coords(h, w, rng.uniform(0, math.pi))
        period = max(scale * 0.5, 3.0)
        t = 0.5 + 0.5 * np.sin(2 * math.pi * u / period + rng.uniform(0, 2 * math.pi))
        sharp = rng.uniform(1, 8)
        t = 0.5 + 0.5 * np.tanh(sharp * (t - 0.5)) / math.tanh(sharp * 0.5)
    elif kind == "checker":
        u, v = _coords(h, w, rng.uniform(0, math.pi / 2))
        cell = max(scale * 0.4, 3.0)
        t = ((np.floor(u / cell) + np.floor(v / cell)) % 2).astype(np.float32)
    elif kind == "blobs":
        canvas = np.zeros((h, w), dtype=np.float32)
        n = int(rng.integers(5, 40))
        centres = np.stack([rng.uniform(0, w, n), rng.uniform(0, h, n)], axis=1)
        radii = rng.uniform(0.1, 0.5, n) * scale + 2
        values = rng.random(n)
        for (cx, cy), r, val in zip(centres, radii, values):
            cv2.circle(canvas, (int(cx), int(cy)), int(r), float(val), -1, lineType=cv2.LINE_AA)
        t = cv2.GaussianBlur(canvas, (0, 0), sigmaX=float(rng.uniform(0.5, 3.0)))
    elif kind == "dots":
        cell = max(scale * 0.4, 4.0)
        u, v = _coords(h, w, rng.uniform(0, math.pi / 2))
        fu, fv = (u / cell) % 1.0 - 0.5, (v / cell) % 1.0 - 0.5
        radius = rng.uniform(0.15, 0.45)
        t = (np.sqrt(fu * fu + fv * fv) < radius).astype(np.float32)
    elif kind == "gradient":
        u, _ = _coords(h, w, rng.uniform(0, 2 * math.pi))
        t = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    else:
        raise ValueError(f"unknown texture kind {kind!r}; choose one of {TEXTURE_KINDS}")
    t = t[..., None].astype(np.float32)
    tex = c1 * (1 - t) + c2 * t
    # low-frequency luminance variation on every kind, so flat colours are rare
    mod = _smooth_noise(rng, h, w, cell=max(h, w) / rng.uniform(1, 4), octaves=1)
    tex = tex * (1 + rng.uniform(0, 0.35) * (mod[..., None] - 0.5))
    return np.clip(tex, 0, 255).astype(np.float32)


# ---------------------------------------------------------------------------- shapes

Polygon = np.ndarray  # (N, 2) float32 vertices in the shape's unit frame


@dataclass
class Shape:
    """An outline in a unit frame (extent about [-1, 1]): polygons drawn in order, each
    filling (``True``) or cutting a hole (``False``)."""

    kind: str
    parts: List[Tuple[Polygon, bool]] = field(default_factory=list)


def _circle(n: int, rx: float = 1.0, ry: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> Polygon:
    t = np.linspace(0, 2 * math.pi, n, endpoint=False)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1).astype(np.float32)


def random_shape(rng: np.random.Generator, kind: Optional[str] = None) -> Shape:
    """A random outline; ``kind`` is one of :data:`SHAPE_KINDS` (random if None)."""
    kind = kind if kind is not None else SHAPE_KINDS[int(rng.integers(len(SHAPE_KINDS)))]
    if kind == "ellipse":
        parts = [(_circle(64, 1.0, rng.uniform(0.35, 1.0)), True)]
    elif kind == "polygon":
        n = int(rng.integers(3, 9))
        t = np.sort(rng.uniform(0, 2 * math.pi, n)) if rng.random() < 0.5 else \
            np.linspace(0, 2 * math.pi, n, endpoint=False) + rng.uniform(0, 1)
        r = rng.uniform(0.6, 1.0, n)
        parts = [(np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32), True)]
    elif kind == "rounded_rect":
        p, aspect = rng.uniform(3, 10), rng.uniform(0.3, 1.0)
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        c, s = np.cos(t), np.sin(t)
        x = np.sign(c) * np.abs(c) ** (2 / p)
        y = aspect * np.sign(s) * np.abs(s) ** (2 / p)
        parts = [(np.stack([x, y], 1).astype(np.float32), True)]
    elif kind == "star":
        n = int(rng.integers(4, 8))
        inner = rng.uniform(0.35, 0.7)
        t = np.linspace(0, 2 * math.pi, 2 * n, endpoint=False)
        r = np.where(np.arange(2 * n) % 2 == 0, 1.0, inner)
        parts = [(np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32), True)]
    elif kind == "blob":
        t = np.linspace(0, 2 * math.pi, 96, endpoint=False)
        r = np.ones_like(t)
        for k in range(2, 6):
            r += rng.uniform(0, 0.35 / k * 2) * np.cos(k * t + rng.uniform(0, 2 * math.pi))
        r = r / r.max()
        parts = [(np.stack([r * np.cos(t), r * np.sin(t)], 1).astype(np.float32), True)]
    elif kind == "ring":
        aspect = rng.uniform(0.6, 1.0)
        hole = rng.uniform(0.35, 0.65)
        parts = [(_circle(64, 1.0, aspect), True), (_circle(48, hole, hole * aspect), False)]
    elif kind == "crescent":
        off = rng.uniform(0.35, 0.7)
        parts = [(_circle(64), True), (_circle(64, 0.9, 0.9, cx=off, cy=rng.uniform(-0.2, 0.2)), False)]
    elif kind == "cross":
        a, b = rng.uniform(0.2, 0.45), rng.uniform(0.2, 0.45)
        bar1 = np.array([[-1, -a], [1, -a], [1, a], [-1, a]], np.float32)
        bar2 = np.array([[-b, -1], [b, -1], [b, 1], [-b, 1]], np.float32)
        if rng.random() < 0.5:  # an L / T instead of a plus
            bar1[:, 0] = np.clip(bar1[:, 0], -b, 1)
        parts = [(bar1, True), (bar2, True)]
    else:
        raise ValueError(f"unknown shape kind {kind!r}; choose one of {SHAPE_KINDS}")
    return Shape(kind, parts)


def _affine(center: Sequence[float], radius: float, angle: float) -> np.ndarray:
    """2x3 matrix mapping the unit frame to pixels: rotate, scale by ``radius``, translate."""
    c, s = math.cos(angle) * radius, math.sin(angle) * radius
    return np.array([[c, -s, center[0]], [s, c, center[1]]], dtype=np.float64)


def shape_mask(shape: Shape, size: Size, center: Sequence[float], radius: float, angle: float) -> np.ndarray:
    """Rasterise ``shape`` placed at ``center`` (x, y) with ``radius`` pixels and ``angle``: bool (H, W)."""
    h, w = size
    canvas = np.zeros((h, w), dtype=np.uint8)
    m = _affine(center, radius, angle)
    for verts, fill in shape.parts:
        pts = verts.astype(np.float64) @ m[:, :2].T + m[:, 2]
        pts = np.round(pts * (1 << _SUBPIXEL_SHIFT)).astype(np.int32)
        cv2.fillPoly(canvas, [pts], 1 if fill else 0, lineType=cv2.LINE_8, shift=_SUBPIXEL_SHIFT)
    return canvas.astype(bool)


# ----------------------------------------------------------------------------- objects

@dataclass
class _Object:
    shape: Shape
    texture: np.ndarray  # (L, L, 3) float32 in the object's frame
    shadow: bool

    def warp_texture(self, size: Size, center: Sequence[float], radius: float, angle: float) -> np.ndarray:
        """The texture warped into the image with the object's pose: (H, W, 3) float32."""
        length = self.texture.shape[0]
        k = 2 * _TEXTURE_EXTENT / length  # unit-frame units per texture pixel
        m = _affine(center, radius, angle)
        lin = m[:, :2] * k
        off = m[:, 2] - lin @ np.array([length / 2, length / 2])
        mat = np.concatenate([lin, off[:, None]], axis=1)
        h, w = size
        return cv2.warpAffine(self.texture, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _random_object(rng: np.random.Generator, max_radius: float) -> _Object:
    shape = random_shape(rng)
    length = int(min(max(2 * _TEXTURE_EXTENT * max_radius, 16), 768))
    tex = random_texture(rng, length, length, scale=rng.uniform(3, max(4, 0.6 * length)))
    # a shading gradient across the object, so objects look lit
    u, _ = _coords(length, length, rng.uniform(0, 2 * math.pi))
    u = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    tex = tex * (1 - rng.uniform(0, 0.4) * u[..., None])
    return _Object(shape, np.clip(tex, 0, 255).astype(np.float32), shadow=bool(rng.random() < 0.3))


def _compose(background: np.ndarray, objects: Sequence[_Object], poses: Sequence[Tuple[Tuple[float, float], float, float]],
             ids: Sequence[int]) -> Tuple[np.ndarray, np.ndarray, List[int]]:
    """Draw objects in order (later ones in front); returns float image, labels, drawn areas."""
    h, w = background.shape[:2]
    image = background.copy()
    labels = np.zeros((h, w), dtype=np.uint8)
    for obj, (center, radius, angle), oid in zip(objects, poses, ids):
        mask = shape_mask(obj.shape, (h, w), center, radius, angle)
        if not mask.any():
            continue
        if obj.shadow:
            off = 0.15 * radius
            shadow_mask = shape_mask(obj.shape, (h, w), (center[0] + off, center[1] + off), radius, angle)
            soft = cv2.GaussianBlur(shadow_mask.astype(np.float32), (0, 0), sigmaX=max(radius * 0.08, 0.8))
            image *= (1 - 0.45 * soft)[..., None]
        tex = obj.warp_texture((h, w), center, radius, angle)
        image[mask] = tex[mask]
        labels[mask] = oid
    areas = np.bincount(labels.ravel(), minlength=256).tolist()
    return image, labels, areas


def _finish(rng: np.random.Generator, image: np.ndarray, blur: float, noise: float) -> np.ndarray:
    """Camera effects: slight blur and sensor noise; to uint8 RGB."""
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=blur)
    if noise > 0:
        image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


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
    objects: List[_Object] = []
    poses: List[Tuple[Tuple[float, float], float, float]] = []
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
                obj = _random_object(rng, radius)
            own = int(shape_mask(obj.shape, (h, w), center, radius, angle).sum())
            if own < min_area:
                continue
            _, labels, areas = _compose(background, objects + [obj], poses + [(center, radius, angle)],
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
    image, labels, _ = _compose(background, objects, poses, list(range(1, n_objects + 1)))
    rgb = _finish(rng, image, blur=float(rng.uniform(0, 1.0)), noise=float(rng.uniform(0, 6)))
    return rgb, labels


# ------------------------------------------------------------------------------ videos

class Clip(NamedTuple):
    """A synthetic video: ``frames`` (T, H, W, 3) uint8 RGB and ``labels`` (T, H, W) uint8."""

    frames: np.ndarray
    labels: np.ndarray


@dataclass
class _Track:
    """Smooth motion of one object: centre path, radius and angle as functions of time."""

    obj: _Object
    c0: np.ndarray
    vel: np.ndarray
    wobble_amp: np.ndarray
    wobble_freq: np.ndarray
    wobble_phase: np.ndarray
    radius0: float
    scale_amp: float
    scale_freq: float
    scale_phase: float
    angle0: float
    spin: float
    leave_axis: int = -1  # -1: stays inside (bounces), 0: leaves along x, 1: along y
    leave_amp: float = 0.0
    leave_period: float = 1.0
    bounds: Tuple[Tuple[float, float], Tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0))

    def pose(self, t: float) -> Tuple[Tuple[float, float], float, float]:
        radius = self.radius0 * (1 + self.scale_amp * math.sin(self.scale_freq * t + self.scale_phase))
        raw = self.c0 + self.vel * t + self.wobble_amp * np.sin(self.wobble_freq * t + self.wobble_phase)
        pos = np.empty(2)
        for axis in range(2):
            lo, hi = self.bounds[axis]
            if axis == self.leave_axis:
                # out and back: 0 at t=0, peaks at leave_amp (outside the frame) mid-period
                pos[axis] = self.c0[axis] + self.leave_amp * 0.5 * (1 - math.cos(2 * math.pi * t / self.leave_period))
            else:
                span = max(hi - lo, 1e-6)  # reflect into [lo, hi]: a bounce off the walls
                u = (raw[axis] - lo) % (2 * span)
                pos[axis] = lo + (u if u <= span else 2 * span - u)
        return (float(pos[0]), float(pos[1])), float(radius), float(self.angle0 + self.spin * t)


def _make_tracks(rng: np.random.Generator, size: Size, n_objects: int, n_frames: int, leave: Sequence[bool],
                 radius_range: Tuple[float, float], speed: float) -> List[_Track]:
    h, w = size
    short = min(h, w)
    tracks = []
    for k in range(n_objects):
        radius = float(rng.uniform(*radius_range) * short)
        obj = _random_object(rng, radius * 1.25)
        bounds = ((radius * 0.8, w - radius * 0.8), (radius * 0.8, h - radius * 0.8))
        if bounds[0][0] >= bounds[0][1]:
            bounds = ((w / 2, w / 2), bounds[1])
        if bounds[1][0] >= bounds[1][1]:
            bounds = (bounds[0], (h / 2, h / 2))
        c0 = np.array([rng.uniform(*bounds[0]), rng.uniform(*bounds[1])])
        direction = rng.uniform(0, 2 * math.pi)
        v = speed * short * rng.uniform(0.3, 1.0)
        track = _Track(
            obj=obj, c0=c0, vel=np.array([math.cos(direction), math.sin(direction)]) * v,
            wobble_amp=rng.uniform(0, 0.05, 2) * short, wobble_freq=rng.uniform(0.05, 0.25, 2),
            wobble_phase=rng.uniform(0, 2 * math.pi, 2), radius0=radius,
            scale_amp=float(rng.uniform(0, 0.15)), scale_freq=float(rng.uniform(0.02, 0.1)),
            scale_phase=float(rng.uniform(0, 2 * math.pi)), angle0=float(rng.uniform(0, 2 * math.pi)),
            spin=float(rng.uniform(-0.03, 0.03)), bounds=bounds)
        if leave[k]:
            axis = int(rng.integers(2))
            extent = (w, h)[axis]
            towards_high = rng.random() < 0.5
            # start near the exit border, fully inside, so frame 0 shows the whole object
            d = rng.uniform(radius * 1.1, max(radius * 1.2, 0.3 * extent))
            start = extent - d if towards_high else d
            start = float(np.clip(start, radius, extent - radius)) if extent > 2 * radius else extent / 2
            track.c0[axis] = start
            exit_at = (extent + 1.3 * radius - start) if towards_high else -(start + 1.3 * radius)
            track.leave_axis = axis
            track.leave_amp = exit_at / 0.7  # outside while (1 - cos)/2 > 0.7: ~37% of the period
            track.leave_period = max(n_frames * float(rng.uniform(0.75, 0.95)), 2.0)
        tracks.append(track)
    return tracks


def iter_clip(seed: int, n_frames: int, size: Size = (480, 854), n_objects: int = 2, void_width: int = 0,
              leave_frame: Union[bool, int] = False, radius_range: Tuple[float, float] = (0.1, 0.25),
              speed: float = 0.012, camera_motion: bool = True, min_first_visible: float = 0.4
              ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rgb, labels)`` frames of a synthetic clip, deterministic for ``seed``.

    ``n_objects`` objects (ids 1..n, fixed front-to-back order: higher ids in front)
    move smoothly (translation bouncing off the frame edges, a slight wobble, scale
    oscillation of up to 15 % and slow rotation) over a textured background that pans
    slowly with ``camera_motion``. ``leave_frame``: True makes one object leave the frame
    and come back, an int makes that many objects do so. ``void_width`` > 0 marks a band
    of that many pixels around every object boundary as void (255) in the labels.
    ``speed`` is the typical speed in fractions of the short side per frame. Every
    object shows at least ``min_first_visible`` of its area in frame 0 (the first frame
    is re-drawn from the same seed stream until it does, up to a few tries).
    """
    h, w = size
    rng = np.random.default_rng(seed)
    n_leave = int(leave_frame) if not isinstance(leave_frame, bool) else (1 if leave_frame else 0)
    n_leave = min(n_leave, n_objects)
    leave = [k < n_leave for k in rng.permutation(n_objects)]
    pad = int(0.1 * min(h, w)) + 2 if camera_motion else 0
    background = random_texture(rng, h + 2 * pad, w + 2 * pad)
    pan_amp = rng.uniform(0, pad, 2) if camera_motion else np.zeros(2)
    pan_freq = rng.uniform(0.01, 0.05, 2)
    pan_phase = rng.uniform(0, 2 * math.pi, 2)

    def bg_at(t: int) -> np.ndarray:
        off = pad + pan_amp * np.sin(pan_freq * t + pan_phase)
        mat = np.array([[1, 0, -off[0]], [0, 1, -off[1]]], dtype=np.float64)
        return cv2.warpAffine(background, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    tracks: List[_Track] = []
    for _ in range(10):
        tracks = _make_tracks(rng, size, n_objects, n_frames, leave, radius_range, speed)
        poses = [tr.pose(0) for tr in tracks]
        _, labels, areas = _compose(bg_at(0), [tr.obj for tr in tracks], poses, list(range(1, n_objects + 1)))
        owns = [int(shape_mask(tr.obj.shape, size, *p).sum()) for tr, p in zip(tracks, poses)]
        if all(areas[k + 1] >= max(16, min_first_visible * owns[k]) for k in range(n_objects)):
            break
    blur = float(rng.uniform(0, 0.8))
    noise = float(rng.uniform(0, 4))
    brightness = rng.uniform(0, 0.08)
    for t in range(n_frames):
        poses = [tr.pose(t) for tr in tracks]
        image, labels, _ = _compose(bg_at(t), [tr.obj for tr in tracks], poses, list(range(1, n_objects + 1)))
        image *= 1 + brightness * math.sin(0.1 * t)
        rgb = _finish(rng, image, blur=blur, noise=noise)
        yield rgb, void_band(labels, void_width)


def make_clip(seed: int, n_frames: int, size: Size = (480, 854), n_objects: int = 2, void_width: int = 0,
              leave_frame: Union[bool, int] = False, **kwargs) -> Clip:
    """A whole synthetic clip as arrays; see :func:`iter_clip` for the arguments."""
    frames, labels = [], []
    for rgb, lab in iter_clip(seed, n_frames, size, n_objects, void_width=void_width,
                              leave_frame=leave_frame, **kwargs):
        frames.append(rgb)
        labels.append(lab)
    return Clip(np.stack(frames), np.stack(labels))


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
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    names: List[str] = []
    iterator = range(n_sequences)
    if progress:
        from tqdm.auto import tqdm
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
