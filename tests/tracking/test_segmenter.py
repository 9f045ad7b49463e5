"""The tracker's per-object state: ids, vanishing objects, empty seeds, state files."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import relabel

from persam_video import persam
from persam_video.errors import PersamError
from persam_video.persam import decoding
from persam_video.tracking.object_state import load_state, save_state
from persam_video.tracking.segmenter import TrackerOptions, VideoSegmenter


def test_ids_3_and_7_come_out_as_3_and_7(small_model, clip):
    seed = relabel(clip.labels[0], {1: 3, 2: 7})
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam"))
    first = seg.seed_frame(clip.frames[0], seed)
    assert set(np.unique(first)) == {0, 3, 7}
    outputs = [labels for _, labels in seg.propagate(clip.frames[1:4])]
    assert all(set(np.unique(o)) <= {0, 3, 7} for o in outputs)
    assert any(3 in o for o in outputs) and any(7 in o for o in outputs)


def test_empty_seed_for_one_of_two_objects(small_model, clip):
    seed = relabel(clip.labels[0], {1: 3, 2: 0})
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam-f", fit_iterations=10))
    with pytest.warns(UserWarning, match="object 7 is empty"):
        seg.seed_frame(clip.frames[0], seed, ids=[3, 7])
    labels = seg.step(clip.frames[1])
    assert 7 not in labels and 3 in labels
    assert seg.objects[1].feature is None and seg.objects[0].weights is not None


def _boxes(seg):
    return {o.obj_id: (None if o.box is None else o.box.tolist(), o.missing) for o in seg.objects}


def test_vanishing_object_keeps_its_own_state_and_is_searched_for(small_model, clip):
    """Object 3 vanishes for 5 frames and comes back; object 7 is never paired with 3's box."""
    seed = relabel(clip.labels[0], {1: 3, 2: 7})
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam", keep_box_frames=3))
    seg.seed_frame(clip.frames[0], seed)
    h, w = seed.shape
    only7 = np.where(seed == 7, 7, 0).astype(np.uint8)
    box7 = persam.widen_box(persam.tight_box(seed == 7), 10, h, w).tolist()
    box3 = _boxes(seg)[3][0]
    for gone in range(1, 6):
        seg._update_boxes(only7)
        state = _boxes(seg)
        assert state[7] == (box7, 0)  # never shifted onto object 3's box
        assert state[3] == ((box3 if gone <= 3 else None), gone)
    seg._update_boxes(seed)
    assert _boxes(seg)[3] == (box3, 0)


def test_absent_object_is_decoded_without_a_box_and_gated(small_model, clip, monkeypatch):
    seed = relabel(clip.labels[0], {1: 3, 2: 7})
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam", keep_box_frames=0))
    seg.seed_frame(clip.frames[0], seed)
    seg.objects[0].box = None  # object 3 is being searched for
    calls = []
    real = persam.decode_persam

    def spy(predictor, prompts, *args, **kwargs):
        calls.append((prompts.points.shape, prompts.boxes is None))
        return real(predictor, prompts, *args, **kwargs)

    monkeypatch.setattr(persam, "decode_persam", spy)
    seg.objects[0].reference_similarity = 10.0  # cannot be reached: the search must find nothing
    labels = seg.step(clip.frames[1])
    assert sorted(calls) == sorted([((1, 3, 2), False), ((1, 2, 2), True)])
    assert 3 not in labels
    seg.objects[0].box = None
    seg.objects[0].reference_similarity = -10.0  # always reached: the search result is kept
    labels = seg.step(clip.frames[2])
    assert 3 in labels


@pytest.mark.parametrize("method", ["persam", "persam-f"])
def test_quality_gate_drops_masks_sam_rates_below_the_seed_frames(small_model, clip, method, monkeypatch):
    seed = relabel(clip.labels[0], {1: 3, 2: 7})
    opts = dict(method=method, fit_iterations=10, keep_box_frames=5)
    seg = VideoSegmenter(small_model, TrackerOptions(quality_gate=0.5, **opts))
    seg.seed_frame(clip.frames[0], seed)
    # the reference is SAM's predicted IoU of the object decoded on its seed frame
    references = [o.reference_quality for o in seg.objects]
    assert all(0 < r <= 1.5 for r in references)
    scores = []
    real = persam.decode_persam_f if method == "persam-f" else persam.decode_persam

    def spy(*args, **kwargs):
        result = real(*args, **kwargs)
        scores.append(result.scores.clone())
        return result

    monkeypatch.setattr(persam, real.__name__, spy)
    ungated = VideoSegmenter(small_model, TrackerOptions(**opts))
    ungated.seed_frame(clip.frames[0], seed)
    expected = ungated.step(clip.frames[1])
    assert {3, 7} <= set(np.unique(expected))
    # a reachable gate changes nothing; one object's unreachable gate removes only that object
    seg.objects[1].reference_quality = float(scores[-1][1]) / 0.5 + 1e-3  # 7 needs more than it gets
    seg.objects[0].reference_quality = float(scores[-1][0]) / 0.5 - 1e-3  # 3 passes just
    labels = seg.step(clip.frames[1])
    assert 7 not in labels and 3 in labels
    assert np.array_equal(labels == 3, (expected == 3) | ((expected == 7) & (labels == 3)))
    assert seg.objects[1].missing == 1 and seg.objects[1].box is not None  # absent: box kept a while
    with pytest.raises(PersamError, match="quality_gate must be a ratio"):
        TrackerOptions(quality_gate=1.5)


def test_state_round_trip_skips_fitting(small_model, clip, tmp_path):
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam-f", fit_iterations=30))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    first = [seg.step(f) for f in clip.frames[1:3]]
    save_state(seg.state_dict(), tmp_path / "state.pt")
    again = VideoSegmenter(small_model, TrackerOptions(method="persam-f", fit_iterations=30))
    again.seed_frame(clip.frames[0], clip.labels[0], state=load_state(tmp_path / "state.pt"))
    assert again.timings.fit == 0.0 and seg.timings.fit > 0
    for a, b in zip(seg.objects, again.objects):
        assert torch.equal(a.weights, b.weights) and torch.equal(a.feature, b.feature)
    second = [again.step(f) for f in clip.frames[1:3]]
    assert all(np.array_equal(x, y) for x, y in zip(first, second))


def test_state_from_another_model_is_refused(small_model, clip, tmp_path):
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam"))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    state = seg.state_dict()
    state["objects"][1]["feature"] = torch.zeros(256)
    with pytest.raises(PersamError, match="another model type"):
        VideoSegmenter(small_model).seed_frame(clip.frames[0], clip.labels[0], state=state)


def test_frame_size_change_is_an_error(small_model, clip):
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam"))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    with pytest.raises(PersamError, match="started at"):
        seg.step(clip.frames[1][:50])


def test_box_growth_limit_caps_a_flooded_box_prior(small_model, clip):
    seed = relabel(clip.labels[0], {1: 3, 2: 7})
    h, w = seed.shape
    flood = seed.copy()
    flood[flood == 0] = 3  # object 3's mask floods the whole background
    boxes = {}
    for growth in (0.0, 1.5):
        seg = VideoSegmenter(small_model, TrackerOptions(method="persam", box_growth=growth))
        seg.seed_frame(clip.frames[0], seed)
        before = {o.obj_id: o.box.copy() for o in seg.objects}
        seg._update_boxes(flood)
        boxes[growth] = {o.obj_id: o.box for o in seg.objects}
        assert np.array_equal(boxes[growth][7], before[7])  # object 7 did not move
    assert boxes[0.0][3].tolist() == [0, 0, w, h]  # the recipe: the flood's box
    assert np.array_equal(boxes[1.5][3], before[3])  # limited: the last box is kept
    shifted = np.roll(seed, 3, axis=1)  # both objects move 3 px: their boxes follow
    seg._update_boxes(shifted)
    assert [o.box.tolist() for o in seg.objects] == [
        persam.widen_box(persam.tight_box(shifted == k), 10, h, w).tolist() for k in (3, 7)]
    # an object coming back after being absent is not limited (its box is from before)
    seg.objects[0].missing = 1
    seg._update_boxes(flood)
    assert seg.objects[0].box.tolist() == [0, 0, w, h]
    with pytest.raises(PersamError, match="box_growth must be a factor"):
        TrackerOptions(box_growth=0.5)


def _ring(h: int = 60, w: int = 80) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - 30, xx - 40)
    return (r >= 12) & (r <= 22)


def test_interior_anchor_sits_on_the_object_where_the_box_centre_does_not(small_model, clip):
    """A ring: the recipe's extra positive point (box centre) falls in the hole; the interior
    anchor is on the ring, in the seed frame's fit and on later frames, and follows the mask."""
    seed = np.zeros(clip.labels[0].shape, np.uint8)
    ring = _ring()
    seed[:ring.shape[0], :ring.shape[1]][ring] = 5
    calls = []
    original = persam.predict

    def spy(predictor, prompts, *args, **kwargs):
        calls.append(prompts.points[0, -1].tolist())
        return original(predictor, prompts, *args, **kwargs)

    anchors = {}
    for anchor in ("box-centre", "interior"):
        seg = VideoSegmenter(small_model, TrackerOptions(method="persam-f", fit_iterations=5, anchor=anchor))
        calls.clear()
        with pytest.MonkeyPatch.context() as patch:
            for module in (persam, decoding):  # the tracker's fit and the decoder cascade
                patch.setattr(module, "predict", spy)
            seg.seed_frame(clip.frames[0], seed)
            seg.step(clip.frames[1])
        anchors[anchor] = calls[:2]  # the fit's prompt and the first decoder pass of frame 1
    x, y = anchors["box-centre"][0]
    assert not seed[int(y), int(x)]  # the box centre is in the hole
    for x, y in anchors["interior"]:
        assert seed[int(y), int(x)] == 5
        assert 16 <= np.hypot(y - 30, x - 40) <= 18  # the middle of the ring's band
    moved = np.roll(seed, (7, 9), axis=(0, 1))
    seg._update_boxes(moved)
    assert moved[int(seg.objects[0].interior[1]), int(seg.objects[0].interior[0])] == 5
    with pytest.raises(PersamError, match="anchor must be box-centre or interior"):
        TrackerOptions(anchor="centroid")


def test_box_clip_keeps_each_mask_inside_its_box_prompt(small_model, clip):
    seed = relabel(clip.labels[0], {1: 3, 2: 7})
    outside = {}
    for box_clip in (False, True):
        seg = VideoSegmenter(small_model, TrackerOptions(method="persam-f", fit_iterations=5, box_clip=box_clip))
        seg.seed_frame(clip.frames[0], seed)
        x0, y0, x1, y1 = seg.objects[0].box
        small = np.array([x0, y0, (x0 + x1) // 2, (y0 + y1) // 2])  # a quarter of object 3's box
        seg.objects[0].box = small
        labels = seg.step(clip.frames[1])
        inside = np.zeros(labels.shape, bool)
        inside[small[1]:small[3] + 1, small[0]:small[2] + 1] = True
        outside[box_clip] = int(((labels == 3) & ~inside).sum())
        assert 3 in labels and 7 in labels
    assert outside[False] > 0  # the model does spill out of a box that is too small ...
    assert outside[True] == 0  # ... and the clip cuts it back to the box


def test_box_mask_matches_slicing():
    boxes = torch.tensor([[2, 1, 5, 3], [0, 0, 9, 6], [4, 4, 4, 4]])
    got = persam.box_mask(boxes, 7, 10)
    for box, mask in zip(boxes.tolist(), got):
        want = torch.zeros(7, 10, dtype=torch.bool)
        want[box[1]:box[3] + 1, box[0]:box[2] + 1] = True
        assert torch.equal(mask, want)


@pytest.mark.parametrize("field, value, needle", [("fit_lr", 0.0, "fit_lr must be positive"),
                                                  ("redetect_ratio", 1.5, "redetect_ratio must be a ratio"),
                                                  ("keep_box_frames", -1, "keep_box_frames must be")])
def test_options_out_of_range_are_refused_for_library_callers_too(field, value, needle):
    with pytest.raises(PersamError, match=needle):
        TrackerOptions(**{field: value})


@pytest.mark.parametrize("mode", ["exact", "fast"])
def test_fit_mode_reaches_the_persam_f_fit(small_model, clip, monkeypatch, mode):
    from persam_video import persam as persam_pkg
    seen = []
    real = persam_pkg.fit_scale_weights

    def spy(*args, **kwargs):
        seen.append(kwargs.get("mode"))
        return real(*args, **kwargs)

    monkeypatch.setattr(persam_pkg, "fit_scale_weights", spy)
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam-f", fit_iterations=3, fit_mode=mode))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    assert seen == [mode]
