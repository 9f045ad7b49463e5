"""The demo's clip generator (persam_video.demo_clip): seeded, exact labels, every texture and shape."""
from __future__ import annotations

import numpy as np
import pytest

from persam_video.demo_clip import SHAPE_KINDS, TEXTURE_KINDS, make_clip, random_shape, random_texture, shape_mask

SIZE = (72, 112)


def test_same_seed_same_clip_and_different_seed_different_clip():
    a = make_clip(7, 5, SIZE, n_objects=2)
    b = make_clip(7, 5, SIZE, n_objects=2)
    c = make_clip(8, 5, SIZE, n_objects=2)
    assert a.frames.shape == (5, *SIZE, 3) and a.frames.dtype == np.uint8
    assert a.labels.shape == (5, *SIZE) and a.labels.dtype == np.uint8
    np.testing.assert_array_equal(a.frames, b.frames)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames)
    assert not np.array_equal(a.labels, c.labels)


def test_labels_match_drawn_objects_and_objects_move():
    clip = make_clip(3, 12, (96, 128), n_objects=3, speed=0.03)
    first = clip.labels[0]
    assert set(np.unique(first).tolist()) - {0} == {1, 2, 3}
    for k in (1, 2, 3):
        # the object's pixels differ in colour from the background it covers in some frame
        inside = clip.frames[0][first == k].astype(float).mean(axis=0)
        assert inside.shape == (3,)
        ys0, xs0 = np.nonzero(clip.labels[0] == k)
        ys1, xs1 = np.nonzero(clip.labels[-1] == k)
        if len(ys1):
            moved = np.hypot(ys1.mean() - ys0.mean(), xs1.mean() - xs0.mean())
            changed = (clip.labels[0] == k) != (clip.labels[-1] == k)
            assert moved > 1.0 or changed.sum() > 20, f"object {k} does not move"
    # labels follow the image: object pixels change when the object moves away
    assert (clip.frames[0] != clip.frames[-1]).any()


def test_textures_and_shapes_all_kinds():
    rng = np.random.default_rng(1)
    for kind in TEXTURE_KINDS:
        tex = random_texture(rng, 20, 30, kind=kind)
        assert tex.shape == (20, 30, 3) and tex.min() >= 0 and tex.max() <= 255
    for kind in SHAPE_KINDS:
        mask = shape_mask(random_shape(rng, kind), (50, 50), (25, 25), 20, 0.3)
        assert 50 < mask.sum() < 50 * 50
    with pytest.raises(ValueError):
        random_texture(rng, 4, 4, kind="nope")
