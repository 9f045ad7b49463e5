"""The flow prior's parts: boxes and anchors from carried masks, negative points, the leak guard,
and a fast object that the recipe loses and the flow prior keeps (the bundled model)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from persam_video.davis.metrics import j_measure
from persam_video.demo_clip import make_clip
from persam_video.model.loading import load_sam
from persam_video.options import OptionError, TrackerOptions
from persam_video.tracking import decode_objects as decode_objects_module
from persam_video.tracking import segmenter as segmenter_module
from persam_video.tracking.follow import follow, guard_leaks, negative_points
from persam_video.tracking.object_state import ObjectState
from persam_video.tracking.segmenter import VideoSegmenter


def _disc(size, centre, radius):
    ys, xs = np.mgrid[:size[0], :size[1]]
    return (xs - centre[0]) ** 2 + (ys - centre[1]) ** 2 < radius ** 2


def _object(k: int) -> ObjectState:
    return ObjectState(k, torch.ones(4), torch.ones(4))


def test_follow_moves_the_box_and_anchor_and_drops_an_object_carried_out():
    carried = np.zeros((100, 200), np.uint8)
    carried[_disc(carried.shape, (150, 50), 10)] = 1
    moved, gone, unseen = _object(1), _object(2), _object(3)
    moved.box, gone.box = np.array([0, 0, 30, 30]), np.array([0, 0, 30, 30])
    unseen.box, unseen.missing = np.array([5, 5, 20, 20]), 2
    follow([moved, gone, unseen], carried, margin=5)
    assert moved.box.tolist() == [136, 36, 164, 64]  # the disc's tight box (141..159) widened by 5
    assert np.allclose(moved.lead, [150, 50], atol=1)
    assert gone.box is None and gone.lead is None  # carried out of the frame: searched for again
    assert unseen.box.tolist() == [5, 5, 20, 20]  # not seen on the last frame: the recipe's rule
    given = _object(1)
    given.box, given.lead = np.array([0, 0, 30, 30]), np.array([3.0, 3.0])
    follow([given], carried, margin=5, skip={1})  # a mask is given for it on this frame
    assert given.box.tolist() == [0, 0, 30, 30] and given.lead is None  # no stale anchor to be a negative point


def test_other_objects_inside_a_box_become_negative_points_padded_with_not_a_point():
    a, b, c = _object(1), _object(2), _object(3)
    a.box, b.box, c.box = np.array([0, 0, 100, 100]), np.array([150, 0, 200, 50]), np.array([0, 0, 10, 10])
    a.lead, b.lead, c.lead = np.array([50.0, 50.0]), np.array([160.0, 10.0]), np.array([5.0, 5.0])
    points, labels = negative_points([a, b], [a, b, c], torch.device("cpu"))
    assert points.shape == (2, 1, 2)
    assert points[0, 0].tolist() == [5.0, 5.0] and labels[0].tolist() == [0.0]  # c is inside a's box
    assert labels[1].tolist() == [-1.0]  # nothing inside b's box: padding SAM ignores
    assert negative_points([b], [b], torch.device("cpu")) is None


def test_leak_guard_cuts_a_painted_in_neighbour_and_leaves_a_normal_mask():
    size = (120, 200)
    carried = np.zeros(size, np.uint8)
    carried[_disc(size, (50, 60), 20)] = 1
    carried[_disc(size, (150, 60), 20)] = 2
    labels = carried.copy()
    labels[_disc(size, (110, 60), 25) & (labels == 0)] = 1  # object 1 spreads towards its neighbour
    labels[_disc(size, (150, 60), 22)] = 2  # object 2 grows a little: within the ratio
    out = guard_leaks(labels, carried, [1, 2], ratio=1.5, margin=3)
    assert (labels == 1).sum() > 1.5 * (carried == 1).sum()
    assert not (out == 1)[:, 80:].any(), "the leak is cut back to the carried disc widened by 3 px"
    assert ((out == 1) & (carried == 1)).sum() == (carried == 1).sum()
    assert np.array_equal(out == 2, labels == 2)


def test_leak_guard_needs_the_flow_prior():
    with pytest.raises(OptionError, match="leak_guard"):
        TrackerOptions(leak_guard=1.5)
    with pytest.raises(OptionError, match="propagation"):
        TrackerOptions(propagation="optical")


def test_switches_off_never_reach_the_motion_code(small_model, clip, monkeypatch):
    """The recipe (both switches off) must not compute flow, carried boxes or negative points."""
    def refuse(*args, **kwargs):
        raise AssertionError("motion code ran with the switches off")

    for name in ("follow", "guard_leaks", "keep_targets", "MotionPrior"):
        monkeypatch.setattr(segmenter_module, name, refuse)
    for name in ("negative_points", "within_boxes"):
        monkeypatch.setattr(decode_objects_module, name, refuse)
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam"))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    for frame in clip.frames[1:4]:
        seg.step(frame)
    assert seg.motion is None


@pytest.fixture(scope="module")
def bundled():
    return load_sam("small", device="cpu")


def test_a_fast_object_lost_by_the_recipe_is_kept_with_flow(bundled):
    """One object moving about 12 px a frame (a tenth of the short side) on 120x160 frames, seeded by
    its true mask. Measured mean J over frames 1-11: recipe 0.036, flow 0.519 (clip seed 2: 0.289 and
    0.634; over seeds 0-7: 0.52 and 0.62)."""
    clip = make_clip(seed=0, n_frames=12, size=(120, 160), n_objects=1, camera_motion=False, speed=0.1)
    scores = {}
    for propagation in ("none", "flow"):
        seg = VideoSegmenter(bundled, TrackerOptions(method="persam", propagation=propagation))
        seg.seed_frame(clip.frames[0], clip.labels[0])
        scores[propagation] = float(np.mean([j_measure((seg.step(f) == 1)[None], (t == 1)[None])[0]
                                             for f, t in zip(clip.frames[1:], clip.labels[1:])]))
    message = f"mean J: recipe {scores['none']:.3f}, flow {scores['flow']:.3f}"
    assert scores["flow"] > 0.45 and scores["flow"] > scores["none"] + 0.25, message
