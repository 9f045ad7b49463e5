"""VideoSession: prompts on any frame, both directions, several prompted frames, replay and checkpoints
(the random-weight small model: these check the mechanics, test_session_quality.py the results)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import write_frame_folder
from segment_anything import SamPredictor

from persam_video import persam
from persam_video.errors import PersamError
from persam_video.io.frames import frames_backward, open_frames
from persam_video.io.prompts import load_prompts, save_prompts
from persam_video.options import TrackerOptions
from persam_video.tracking.segmenter import VideoSegmenter
from persam_video.tracking.session import VideoSession

OPTIONS = TrackerOptions(fit_iterations=10)


@pytest.fixture(scope="module")
def source(clip, tmp_path_factory):
    return open_frames(write_frame_folder(tmp_path_factory.mktemp("frames"), clip.frames[:8]))


def _session(small_model, source, masks=(), options=OPTIONS):
    session = VideoSession(small_model, source, options)
    for frame, obj_id, mask in masks:
        session.add_mask(frame, obj_id, mask)
    return session


def _labels(results):
    return {r.index: r.labels for r in results}


def test_a_first_frame_mask_gives_exactly_the_trackers_run(small_model, clip, source):
    seg = VideoSegmenter(small_model, OPTIONS)
    expected = [seg.seed_frame(clip.frames[0], clip.labels[0])] + [labels for _, labels
                                                                   in seg.propagate(clip.frames[1:8])]
    session = _session(small_model, source, [(0, k, clip.labels[0] == k) for k in (1, 2)])
    results = list(session.propagate())  # both directions: nothing precedes frame 0
    assert [r.index for r in results] == list(range(8))
    assert [r.name for r in results] == source.names()
    for r, e in zip(results, expected):
        assert np.array_equal(r.labels, e), r.index
        assert [o.obj_id for o in r.objects] == [1, 2]
        assert all(o.found == bool((r.labels == o.obj_id).any()) for o in r.objects)
    assert all(o.score == 1.0 for o in results[0].objects)


def test_backward_equals_a_forward_run_on_the_reversed_clip(small_model, clip, source):
    middle = 4
    session = _session(small_model, source, [(middle, k, clip.labels[middle] == k) for k in (1, 2)])
    results = list(session.propagate())
    assert [r.index for r in results] == [4, 5, 6, 7, 3, 2, 1, 0]
    got = _labels(results)
    seg = VideoSegmenter(small_model, OPTIONS)
    reversed_frames = clip.frames[:middle + 1][::-1]
    seg.seed_frame(reversed_frames[0], clip.labels[middle])
    for i, (_, labels) in enumerate(seg.propagate(reversed_frames[1:])):
        assert np.array_equal(got[middle - 1 - i], labels), middle - 1 - i
    backward = _labels(_session(small_model, source, [(middle, k, clip.labels[middle] == k) for k in (1, 2)])
                       .propagate("backward"))
    assert sorted(backward) == list(range(middle + 1))
    assert all(np.array_equal(backward[i], got[i]) for i in range(middle + 1))


def test_frames_backward_reads_in_chunks(source):
    frames = list(frames_backward(source, 6, chunk=3))
    assert [f.index for f in frames] == [6, 5, 4, 3, 2, 1, 0]
    assert all(np.array_equal(f.image, source.read(f.index).image) for f in frames)


def test_several_prompted_frames_mean_target_joint_fit_and_their_masks_kept(small_model, clip, source, monkeypatch):
    calls = []
    fit = persam.fit_scale_weights

    def spy(logits, target, iterations, lr, **kwargs):
        calls.append((tuple(logits.shape), tuple(target.shape)))
        return fit(logits, target, iterations, lr, **kwargs)

    monkeypatch.setattr(persam, "fit_scale_weights", spy)
    h, w = clip.labels.shape[1:]
    masks = [(0, 1, clip.labels[0] == 1), (5, 1, clip.labels[5] == 1), (2, 2, clip.labels[2] == 2)]
    session = _session(small_model, source, masks)
    results = _labels(session.propagate())
    for frame, obj_id, mask in masks:
        assert np.array_equal(results[frame] == obj_id, mask), (frame, obj_id)
    # object 1 on two frames: one fit over both (N, 3, F, H, W); object 2 on one frame: (N, 3, H, W)
    assert sorted(calls) == sorted([((1, 3, 2, h, w), (1, 2, h, w)), ((1, 3, h, w), (1, h, w))])
    # object 1's target: the mean of its two frames' normalised targets, normalised again
    predictor = SamPredictor(small_model)
    per_frame = []
    for frame in (0, 5):
        predictor.set_image(clip.frames[frame])
        per_frame.append(persam.target_embedding(predictor, clip.labels[frame] == 1).feature)
    expected = F.normalize(torch.stack(per_frame).mean(0), dim=0)
    assert torch.allclose(session.segmenter.objects[0].feature, expected, atol=1e-6)


def test_clicks_accumulate_and_replay_from_a_saved_prompt_set(small_model, clip, source, tmp_path):
    session = _session(small_model, source)
    one = session.add_points(3, 1, [[30, 40]], [1])
    both = session.add_points(3, 1, [[60, 50]], [0])
    (prompt,) = session.prompt_set().prompts
    assert prompt.points.tolist() == [[30, 40], [60, 50]] and prompt.labels.tolist() == [1, 0]
    predictor = SamPredictor(small_model)
    predictor.set_image(clip.frames[3])
    masks, scores, _ = predictor.predict(np.array([[30, 40]], np.float32), np.array([1]), multimask_output=True)
    assert np.array_equal(one, masks[np.argmax(scores)])  # one click: the best of three by predicted IoU
    masks, _, _ = predictor.predict(np.array([[30, 40], [60, 50]], np.float32), np.array([1, 0]),
                                    multimask_output=False)
    assert np.array_equal(both, masks[0])  # several clicks: SAM's single mask
    session.add_box(3, 1, [10, 10, 90, 80])
    session.add_mask(6, 2, clip.labels[6] == 2)
    assert session.object_ids == [1, 2] and session.prompted_frames == [3, 6]
    first = _labels(session.propagate())
    save_prompts(session.prompt_set(), tmp_path / "p.json")
    replay = _session(small_model, source)
    replay.add_prompt_set(load_prompts(tmp_path / "p.json"))
    again = _labels(replay.propagate())
    assert first.keys() == again.keys() and all(np.array_equal(first[i], again[i]) for i in first)
    replay.remove_object(1)
    assert replay.object_ids == [2] and replay.prompted_frames == [6]
    replay.reset()
    assert replay.object_ids == [] and replay.prompted_frames == []
    with pytest.raises(PersamError, match="no prompt"):
        next(replay.propagate())


def test_set_clicks_makes_the_prompt_exactly_these_clicks(small_model, source):
    """An editor's undo: the prompt and mask of fewer clicks are those of these clicks given at once;
    no clicks at all forget the prompt; a refused prompt leaves the earlier one."""
    session = _session(small_model, source)
    one = session.add_points(2, 1, [[30, 40]], [1])
    session.add_points(2, 1, [[60, 50]], [0])
    again = session.set_clicks(2, 1, np.array([[30, 40]], np.float32), np.array([1]))
    assert np.array_equal(again, one)
    (prompt,) = session.prompt_set().prompts
    assert prompt.points.tolist() == [[30, 40]] and prompt.labels.tolist() == [1] and prompt.box is None
    with pytest.raises(PersamError, match="only negative points"):
        session.set_clicks(2, 1, np.array([[3, 4]], np.float32), np.array([0]))
    assert session.prompt_set().prompts[0].points.tolist() == [[30, 40]]
    assert session.set_clicks(2, 1, None, None) is None
    assert session.prompt_set().prompts == [] and session.prompted_frames == []


def test_a_mask_replaces_clicks_and_bad_calls_are_one_line_errors(small_model, clip, source):
    session = _session(small_model, source)
    session.add_points(1, 1, [[30, 40]])
    session.add_mask(1, 1, clip.labels[1] == 1)
    (prompt,) = session.prompt_set().prompts
    assert prompt.points is None and np.array_equal(prompt.mask, clip.labels[1] == 1)
    h, w = clip.labels.shape[1:]
    for call, needle in [(lambda: session.add_points(8, 1, [[3, 4]]), "frame 8 is outside"),
                         (lambda: session.add_points(0, 1, [[w, 4]]), "outside the"),
                         (lambda: session.add_points(0, 1, [[3, 4]], [0]), "only negative points"),
                         (lambda: session.add_box(0, 1, [5, 5, 2, 9]), "x1 > x0"),
                         (lambda: session.add_mask(0, 255, clip.labels[0] == 1), "1 to 254"),
                         (lambda: next(session.propagate("sideways")), "direction")]:
        with pytest.raises(PersamError, match=needle):
            call()


@pytest.mark.parametrize("options", [OPTIONS, TrackerOptions(fit_iterations=50, propagation="flow", target_memory=2,
                                                               leak_guard=1.0)], ids=["recipe", "motion"])
def test_a_checkpoint_continues_the_run_identically(small_model, clip, source, options):
    """With the motion switches the checkpoint also holds the last frame's flow input and the kept targets."""
    masks = [(4, k, clip.labels[4] == k) for k in (1, 2)] + [(6, 1, clip.labels[6] == 1)]
    whole = list(_session(small_model, source, masks, options).propagate())
    session = _session(small_model, source, masks, options)
    run = session.propagate()
    for _ in range(5):  # 4..7 forward, then 3: one frame into the backward pass
        next(run)
    buffer = io.BytesIO()
    torch.save(session.checkpoint(), buffer)  # the way the progress file keeps it
    run.close()
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    rest = list(_session(small_model, source, masks, options).propagate(resume=checkpoint))
    assert [r.index for r in rest] == [2, 1, 0]
    for r, w in zip(rest, whole[5:]):
        assert r.index == w.index and np.array_equal(r.labels, w.labels)


def test_a_referenced_object_is_searched_whole_until_found(small_model, clip, source, monkeypatch):
    session = _session(small_model, source, [(0, 1, clip.labels[0] == 1)])
    session.add_reference(clip.frames[3], 2, clip.labels[3] == 2)
    calls = []
    decode = VideoSegmenter.decode

    def spy(self, objs, maps, with_box):
        calls.extend((obj.obj_id, with_box) for obj in objs)
        return decode(self, objs, maps, with_box)

    monkeypatch.setattr(VideoSegmenter, "decode", spy)
    last_found = None
    for result in session.propagate():
        mode = [with_box for obj_id, with_box in calls if obj_id == 2]
        calls.clear()
        boxed = last_found is not None and result.index - last_found <= OPTIONS.keep_box_frames + 1
        assert mode == [boxed], (result.index, mode, last_found)  # a box prior only once found, kept a while
        found = {o.obj_id: o.found for o in result.objects}
        assert found[2] == bool((result.labels == 2).any())
        last_found = result.index if found[2] else last_found
