"""tools/synthetic.py: scenes, clips whose objects leave the frame or have void bands, the DAVIS writer."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import load_tool
from PIL import Image

from persam_video import demo_clip as demo
from persam_video.io.masks import DAVIS_PALETTE, VOID_ID, read_label_png

SYNTHETIC = load_tool("synthetic")
make_clip, render_scene, write_davis_dataset = (SYNTHETIC.make_clip, SYNTHETIC.render_scene,
                                               SYNTHETIC.write_davis_dataset)

SIZE = (72, 112)


def test_clips_with_a_leaving_object_and_void_are_seeded():
    a, b, c = (make_clip(seed, 5, SIZE, n_objects=2, leave_frame=True, void_width=1) for seed in (7, 7, 8))
    assert a.labels.shape == (5, *SIZE) and a.labels.dtype == np.uint8
    assert np.array_equal(a.frames, b.frames) and np.array_equal(a.labels, b.labels)
    assert not np.array_equal(a.frames, c.frames) and not np.array_equal(a.labels, c.labels)


@pytest.mark.parametrize("seed, n_objects, kwargs", [(2024, 3, {}), (3, 2, {"camera_motion": False}),
                                                     (9, 4, {"speed": 0.03, "radius_range": (0.15, 0.3)})])
def test_a_seed_gives_the_demo_s_clip(seed, n_objects, kwargs):
    """Without leaving objects or void, the clip of a seed is the demo's (one random stream)."""
    ours = make_clip(seed, 4, SIZE, n_objects, **kwargs)
    theirs = demo.make_clip(seed, 4, SIZE, n_objects, **kwargs)
    assert np.array_equal(ours.frames, theirs.frames) and np.array_equal(ours.labels, theirs.labels)


def test_render_scene_is_seeded_and_has_every_id():
    for n in (1, 3, 5):
        rgb, labels = render_scene(np.random.default_rng(n), (64, 64), n)
        rgb2, labels2 = render_scene(np.random.default_rng(n), (64, 64), n)
        np.testing.assert_array_equal(rgb, rgb2)
        np.testing.assert_array_equal(labels, labels2)
        assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
        assert sorted(np.unique(labels).tolist()) in (list(range(n + 1)), list(range(1, n + 1)))


def test_object_texture_is_where_the_label_is():
    # a flat background and one object whose colour differs: label 1 must cover the changed pixels
    rng = np.random.default_rng(0)
    rgb, labels = render_scene(rng, (80, 80), 1, radius_range=(0.25, 0.3), allow_cut=False)
    mask = labels == 1
    assert mask.sum() > 100
    # object is a compact region: its bounding box is mostly filled
    ys, xs = np.nonzero(mask)
    box = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
    assert mask.sum() > 0.2 * box


def test_leaving_object_leaves_and_comes_back():
    clip = make_clip(11, 40, (64, 96), n_objects=1, leave_frame=True)
    present = [(lab == 1).any() for lab in clip.labels]
    assert present[0] and present[-1]
    assert not all(present), "the object never left the frame"


def test_void_band_around_boundaries():
    clip = make_clip(5, 2, (64, 96), n_objects=2, void_width=2)
    assert (clip.labels == VOID_ID).any()
    plain = make_clip(5, 2, (64, 96), n_objects=2, void_width=0)
    assert not (plain.labels == VOID_ID).any()
    # void only replaces pixels near boundaries; the objects remain
    assert set(np.unique(clip.labels[0]).tolist()) >= {1, 2}


def test_davis_writer_layout(tmp_path):
    names = write_davis_dataset(tmp_path, seed=2, n_sequences=2, n_frames=3, size=(48, 64), subset="val",
                                objects=(1, 3), void_width=2, leave_prob=1.0)
    assert len(names) == 2
    assert (tmp_path / "ImageSets" / "2017" / "val.txt").read_text().split() == names
    saw_void = False
    for name in names:
        jpgs = sorted((tmp_path / "JPEGImages" / "480p" / name).glob("*.jpg"))
        pngs = sorted((tmp_path / "Annotations" / "480p" / name).glob("*.png"))
        assert [p.name for p in jpgs] == ["00000.jpg", "00001.jpg", "00002.jpg"]
        assert [p.stem for p in pngs] == [p.stem for p in jpgs]
        with Image.open(jpgs[0]) as im:
            assert im.size == (64, 48)
        for png in pngs:
            with Image.open(png) as im:
                assert im.mode == "P"
                pal = np.array(im.getpalette()[:768], dtype=np.uint8).reshape(-1, 3)
                np.testing.assert_array_equal(pal, DAVIS_PALETTE[:len(pal)])
                labels = np.array(im)
            assert labels.shape == (48, 64)
            saw_void |= bool((labels == VOID_ID).any())
        with Image.open(pngs[0]) as im:
            first = np.array(im)
        assert (first > 0).any() and not (first == VOID_ID).any()
    assert saw_void


def test_davis_writer_truth_is_the_annotation_before_void(tmp_path):
    names = write_davis_dataset(tmp_path / "set", seed=4, n_sequences=2, n_frames=3, size=(48, 64),
                                void_width=2, truth_root=tmp_path / "truth")
    plain = write_davis_dataset(tmp_path / "plain", seed=4, n_sequences=2, n_frames=3, size=(48, 64), void_width=2)
    assert plain == names
    voids = 0
    for name in names:
        for t in range(3):
            ann = read_label_png(tmp_path / "set" / "Annotations" / "480p" / name / f"{t:05d}.png")
            truth = read_label_png(tmp_path / "truth" / name / f"{t:05d}.png")
            assert np.array_equal(ann, read_label_png(tmp_path / "plain" / "Annotations" / "480p" / name
                                                      / f"{t:05d}.png"))
            assert not (truth == VOID_ID).any()
            keep = ann != VOID_ID
            assert np.array_equal(truth[keep], ann[keep])
            voids += int((~keep).sum())
    assert voids > 0
