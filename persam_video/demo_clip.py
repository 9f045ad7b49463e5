"""The demo's clip: a seeded synthetic video of moving textured objects, with exact labels.

:func:`make_clip` gives the frames and label maps that ``persam-video demo`` segments and
scores. One ``numpy`` ``Generator`` drives every random choice (OpenCV only draws and
warps), so a seed gives the same clip. Objects (:func:`random_shape` outlines filled with
:func:`random_texture` textures that move with them) drift over a slowly panning background.
``tools/synthetic.py`` builds the benchmarks' and the trainer's data from these pieces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, List, NamedTuple, Optional, Sequence, Tuple

import cv2
import numpy as np

Size = Tuple[int, int]  # (height, width)
Pose = Tuple[Tuple[float, float], float, float]  # centre (x, y), radius, angle

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
class TexturedObject:
    """An outline and its texture, drawn in the object's own frame; ``shadow``: it casts one."""

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


def random_object(rng: np.random.Generator, max_radius: float) -> TexturedObject:
    """A random shape with a random shaded texture, for radii up to ``max_radius`` pixels."""
    shape = random_shape(rng)
    length = int(min(max(2 * _TEXTURE_EXTENT * max_radius, 16), 768))
    tex = random_texture(rng, length, length, scale=rng.uniform(3, max(4, 0.6 * length)))
    # a shading gradient across the object, so objects look lit
    u, _ = _coords(length, length, rng.uniform(0, 2 * math.pi))
    u = (u - u.min()) / max(float(u.max() - u.min()), 1e-6)
    tex = tex * (1 - rng.uniform(0, 0.4) * u[..., None])
    return TexturedObject(shape, np.clip(tex, 0, 255).astype(np.float32), shadow=bool(rng.random() < 0.3))


def compose(background: np.ndarray, objects: Sequence[TexturedObject], poses: Sequence[Pose],
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


def camera_effects(rng: np.random.Generator, image: np.ndarray, blur: float, noise: float) -> np.ndarray:
    """Camera effects: slight blur and sensor noise; to uint8 RGB."""
    if blur > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigmaX=blur)
    if noise > 0:
        image = image + rng.normal(0, noise, image.shape).astype(np.float32)
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------ videos

class Clip(NamedTuple):
    """A synthetic video: ``frames`` (T, H, W, 3) uint8 RGB and ``labels`` (T, H, W) uint8."""

    frames: np.ndarray
    labels: np.ndarray


@dataclass
class Track:
    """Smooth motion of one object: centre path, radius and angle as functions of time."""

    obj: TexturedObject
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
    bounds: Tuple[Tuple[float, float], Tuple[float, float]] = ((0.0, 1.0), (0.0, 1.0))

    def position(self, t: float) -> np.ndarray:
        """The centre (x, y) at time ``t``: drift and wobble, bouncing off the walls ``bounds``."""
        raw = self.c0 + self.vel * t + self.wobble_amp * np.sin(self.wobble_freq * t + self.wobble_phase)
        pos = np.empty(2)
        for axis in range(2):
            lo, hi = self.bounds[axis]
            span = max(hi - lo, 1e-6)  # reflect into [lo, hi]: a bounce off the walls
            u = (raw[axis] - lo) % (2 * span)
            pos[axis] = lo + (u if u <= span else 2 * span - u)
        return pos

    def pose(self, t: float) -> Pose:
        radius = self.radius0 * (1 + self.scale_amp * math.sin(self.scale_freq * t + self.scale_phase))
        pos = self.position(t)
        return (float(pos[0]), float(pos[1])), float(radius), float(self.angle0 + self.spin * t)


def random_track(rng: np.random.Generator, size: Size, radius_range: Tuple[float, float], speed: float) -> Track:
    """One object and its motion; radii are fractions of the short side, ``speed`` too (per frame)."""
    h, w = size
    short = min(h, w)
    radius = float(rng.uniform(*radius_range) * short)
    obj = random_object(rng, radius * 1.25)
    bounds = ((radius * 0.8, w - radius * 0.8), (radius * 0.8, h - radius * 0.8))
    if bounds[0][0] >= bounds[0][1]:
        bounds = ((w / 2, w / 2), bounds[1])
    if bounds[1][0] >= bounds[1][1]:
        bounds = (bounds[0], (h / 2, h / 2))
    c0 = np.array([rng.uniform(*bounds[0]), rng.uniform(*bounds[1])])
    direction = rng.uniform(0, 2 * math.pi)
    v = speed * short * rng.uniform(0.3, 1.0)
    return Track(
        obj=obj, c0=c0, vel=np.array([math.cos(direction), math.sin(direction)]) * v,
        wobble_amp=rng.uniform(0, 0.05, 2) * short, wobble_freq=rng.uniform(0.05, 0.25, 2),
        wobble_phase=rng.uniform(0, 2 * math.pi, 2), radius0=radius,
        scale_amp=float(rng.uniform(0, 0.15)), scale_freq=float(rng.uniform(0.02, 0.1)),
        scale_phase=float(rng.uniform(0, 2 * math.pi)), angle0=float(rng.uniform(0, 2 * math.pi)),
        spin=float(rng.uniform(-0.03, 0.03)), bounds=bounds)


#: ``adjust(rng, k, track)`` may replace object ``k``'s track as it is made (drawing from ``rng``).
TrackHook = Callable[[np.random.Generator, int, Track], Track]


def clip_frames(rng: np.random.Generator, n_frames: int, size: Size, n_objects: int,
                radius_range: Tuple[float, float] = (0.1, 0.25), speed: float = 0.012, camera_motion: bool = True,
                min_first_visible: float = 0.4, adjust: Optional[TrackHook] = None, hidden: Sequence[int] = ()
                ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """Yield ``(rgb, labels)`` frames of a clip drawn from ``rng``.

    ``n_objects`` objects (ids 1..n, fixed front-to-back order: higher ids in front)
    move smoothly (translation bouncing off the frame edges, a slight wobble, scale
    oscillation of up to 15 % and slow rotation) over a textured background that pans
    slowly with ``camera_motion``. ``speed`` is the typical speed in fractions of the short
    side per frame. Every object shows at least ``min_first_visible`` of its area in frame 0
    (re-drawn until it does, a few tries); objects in ``hidden`` are not drawn (object removal's truth).
    """
    h, w = size
    pad = int(0.1 * min(h, w)) + 2 if camera_motion else 0
    background = random_texture(rng, h + 2 * pad, w + 2 * pad)
    pan_amp = rng.uniform(0, pad, 2) if camera_motion else np.zeros(2)
    pan_freq = rng.uniform(0.01, 0.05, 2)
    pan_phase = rng.uniform(0, 2 * math.pi, 2)

    def bg_at(t: int) -> np.ndarray:
        off = pad + pan_amp * np.sin(pan_freq * t + pan_phase)
        mat = np.array([[1, 0, -off[0]], [0, 1, -off[1]]], dtype=np.float64)
        return cv2.warpAffine(background, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)

    ids = list(range(1, n_objects + 1))
    tracks: List[Track] = []
    for _ in range(10):
        tracks = []
        for k in range(n_objects):
            track = random_track(rng, size, radius_range, speed)
            tracks.append(track if adjust is None else adjust(rng, k, track))
        poses = [tr.pose(0) for tr in tracks]
        _, labels, areas = compose(bg_at(0), [tr.obj for tr in tracks], poses, ids)
        owns = [int(shape_mask(tr.obj.shape, size, *p).sum()) for tr, p in zip(tracks, poses)]
        if all(areas[k + 1] >= max(16, min_first_visible * owns[k]) for k in range(n_objects)):
            break
    blur = float(rng.uniform(0, 0.8))
    noise = float(rng.uniform(0, 4))
    brightness = rng.uniform(0, 0.08)
    tracks, ids = [tr for tr, i in zip(tracks, ids) if i not in hidden], [i for i in ids if i not in hidden]
    for t in range(n_frames):
        image, labels, _ = compose(bg_at(t), [tr.obj for tr in tracks], [tr.pose(t) for tr in tracks], ids)
        image *= 1 + brightness * math.sin(0.1 * t)
        yield camera_effects(rng, image, blur=blur, noise=noise), labels


def stack_clip(frames: Iterable[Tuple[np.ndarray, np.ndarray]]) -> Clip:
    """A :class:`Clip` of ``(rgb, labels)`` frames."""
    rgb, labels = zip(*frames)
    return Clip(np.stack(rgb), np.stack(labels))


def make_clip(seed: int, n_frames: int, size: Size = (480, 854), n_objects: int = 2, **kwargs) -> Clip:
    """A whole clip as arrays, deterministic for ``seed``; see :func:`clip_frames` for the
    keyword arguments."""
    rng = np.random.default_rng(seed)
    # tools/synthetic.py draws here which objects leave the frame: drawn and unused here, so a seed
    # gives the same clip in both
    rng.permutation(n_objects)
    return stack_clip(clip_frames(rng, n_frames, size, n_objects, **kwargs))
