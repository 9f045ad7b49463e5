"""Target memory: targets kept from confident frames, the seed's never dropped, maps as the best match."""
from __future__ import annotations

import numpy as np
import torch

from persam_video import persam
from persam_video.options import TrackerOptions
from persam_video.tracking import target_memory as memory
from persam_video.tracking.segmenter import VideoSegmenter
from persam_video.tracking.target_memory import object_maps


def test_memory_is_capped_keeps_the_newest_and_never_drops_the_seed_target(small_model, clip, monkeypatch):
    monkeypatch.setattr(memory, "QUALITY", 0.0)  # every steady frame is confident enough
    monkeypatch.setattr(memory, "KEEP_EVERY", 1)
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam", target_memory=2))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    seeds = {o.obj_id: o.feature.clone() for o in seg.objects}
    kept = {o.obj_id: [] for o in seg.objects}
    for frame in clip.frames[1:]:
        labels = seg.step(frame)
        for obj in seg.objects:
            if obj.memory and (not kept[obj.obj_id] or obj.memory[-1] is not kept[obj.obj_id][-1]):
                expected = persam.target_embedding(seg.predictor, labels == obj.obj_id).feature
                assert torch.equal(obj.memory[-1], expected)  # this frame's target, from its mask
                kept[obj.obj_id].append(obj.memory[-1])
    for obj in seg.objects:
        assert torch.equal(obj.feature, seeds[obj.obj_id])
        assert len(kept[obj.obj_id]) > 2, "the rule kept too few targets to test the cap"
        assert len(obj.memory) == 2 and all(a is b for a, b in zip(obj.memory, kept[obj.obj_id][-2:]))


def test_unsteady_areas_keep_nothing(small_model, clip, monkeypatch):
    monkeypatch.setattr(memory, "AREA_TOLERANCE", 1.0 + 1e-9)  # no two frames have exactly one area
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam", target_memory=3))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    for frame in clip.frames[1:]:
        seg.step(frame)
    assert all(not o.memory for o in seg.objects)


def test_maps_take_the_best_target_per_cell(small_model, clip):
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam", target_memory=1))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    seg.encode(clip.frames[3])
    one, two = seg.objects
    plain = object_maps(seg.predictor, [one, two])
    assert torch.equal(plain, persam.confidence_maps(seg.predictor, torch.stack([one.feature, two.feature])))
    one.memory = [two.feature.clone()]  # object 1 also matches object 2's look
    both = object_maps(seg.predictor, [one, two])
    assert torch.equal(both[1], plain[1])
    # the best match is taken per grid cell, before the maps are resized to the frame: never below either
    assert torch.all(both[0] >= torch.maximum(plain[0], plain[1]) - 1e-5)
    assert (both[0] > plain[0] + 1e-3).any()


def test_kept_targets_survive_the_track_state(small_model, clip, monkeypatch, tmp_path):
    monkeypatch.setattr(memory, "QUALITY", 0.0)
    monkeypatch.setattr(memory, "KEEP_EVERY", 1)
    options = TrackerOptions(method="persam", target_memory=2, propagation="flow")
    seg = VideoSegmenter(small_model, options)
    seg.seed_frame(clip.frames[0], clip.labels[0])
    for frame in clip.frames[1:7]:
        seg.step(frame)
    state = seg.track_state()
    again = VideoSegmenter(small_model, options)
    again.load_track_state(state, clip.frames[0].shape[:2])
    rest = clip.frames[7:]
    assert all(np.array_equal(seg.step(f), again.step(f)) for f in rest)
