"""Prompting with the bundled (trained) small model on small synthetic clips: one click per object, a
correction, a reference from another clip. The bounds were measured with this model (the figures are
in each test's docstring and in its assertion messages)."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
from conftest import write_frame_folder

from persam_video.cli.demo import DEMO_SEED
from persam_video.davis.metrics import f_measure, j_measure
from persam_video.demo_clip import clip_frames, compose, make_clip, random_texture
from persam_video.io.frames import open_frames
from persam_video.model.loading import load_sam
from persam_video.options import TrackerOptions
from persam_video.persam import interior_point
from persam_video.tracking.session import VideoSession

SIZE = (120, 160)
N_FRAMES = 10
SEED = 3
REFERENCE_SEED = 4
OPTIONS = TrackerOptions(fit_iterations=100)


@pytest.fixture(scope="module")
def bundled():
    return load_sam("small", device="cpu")


def _run(model, folder: Path, add: Callable[[VideoSession], None], options: TrackerOptions = OPTIONS) -> np.ndarray:
    session = VideoSession(model, open_frames(folder), options)
    add(session)
    results = {r.index: r.labels for r in session.propagate()}
    return np.stack([results[i] for i in range(len(results))])


def scores(labels: np.ndarray, truth: np.ndarray, ids: List[int], frames) -> Dict[str, float]:
    """Mean J and J&F over ``frames`` and ``ids``."""
    j = np.mean([j_measure(labels[frames] == k, truth[frames] == k).mean() for k in ids])
    f = np.mean([f_measure(labels[frames] == k, truth[frames] == k).mean() for k in ids])
    return {"J": float(j), "JF": float((j + f) / 2)}


def _masks(labels: np.ndarray, ids: List[int], frames=(0,)) -> Callable[[VideoSession], None]:
    def add(session: VideoSession) -> None:
        for frame in frames:
            for k in ids:
                session.add_mask(frame, k, labels[frame] == k)
    return add


def test_one_click_per_object_seeds_close_to_the_truth(bundled, tmp_path):
    """One click on each object's most interior pixel (the best of SAM's three masks): measured IoUs
    0.647 and 0.879 with the true seed, J&F 0.752 from the clicks against 0.798 from the true masks
    (on the demo's 3-object clip at this size the gap is 0.109: see benchmarks/README.md for a set)."""
    clip = make_clip(seed=SEED, n_frames=N_FRAMES, size=SIZE, n_objects=2, camera_motion=False)
    folder = write_frame_folder(tmp_path / "frames", clip.frames)
    ious = []

    def clicks(session):
        for k in (1, 2):
            truth = clip.labels[0] == k
            mask = session.add_points(0, k, [interior_point(truth)], [1])
            ious.append(float((mask & truth).sum() / (mask | truth).sum()))

    frames = list(range(1, N_FRAMES - 1))
    from_clicks = scores(_run(bundled, folder, clicks), clip.labels, [1, 2], frames)["JF"]
    from_truth = scores(_run(bundled, folder, _masks(clip.labels, [1, 2])), clip.labels, [1, 2], frames)["JF"]
    assert min(ious) >= 0.55 and np.median(ious) >= 0.7, f"one-click IoUs {ious} (bounds: min 0.55, median 0.7)"
    assert from_clicks >= from_truth - 0.10, (f"J&F from one click {from_clicks:.3f}, "
                                              f"from the true masks {from_truth:.3f}")


def test_a_correction_on_the_worst_frame_raises_j_after_it(bundled, tmp_path):
    """The demo's clip (3 objects) at half size, tracked from its true first masks, drifts to J 0.69
    after its worst frame (5); its true masks there as a correction give J 0.74 after it."""
    ids = [1, 2, 3]
    clip = make_clip(seed=DEMO_SEED, n_frames=N_FRAMES, size=(120, 213), n_objects=3)
    folder = write_frame_folder(tmp_path / "frames", clip.frames)
    plain = _run(bundled, folder, _masks(clip.labels, ids))
    per_frame = [scores(plain, clip.labels, ids, [t])["J"] for t in range(N_FRAMES)]
    worst = int(np.argmin(per_frame[1:-1])) + 1
    fixed = _run(bundled, folder, _masks(clip.labels, ids, (0, worst)))
    after = list(range(worst + 1, N_FRAMES))
    before_j, after_j = scores(plain, clip.labels, ids, after)["J"], scores(fixed, clip.labels, ids, after)["J"]
    assert np.array_equal(fixed[worst], clip.labels[worst])
    assert after_j >= before_j + 0.02, \
        f"J after frame {worst}: {before_j:.3f} without the correction, {after_j:.3f} with it (bound +0.02)"


def entering_clip(seed: int, n_frames: int, enter: int):
    """A one-object clip (frame 0 and its mask: the reference) and another clip, on another background,
    where the same object comes in from the left edge at frame ``enter``."""
    captured = []

    def keep(rng, k, track):
        captured.append(track)
        return track

    rng = np.random.default_rng(seed)
    image, labels = next(clip_frames(rng, 1, SIZE, 1, camera_motion=False, adjust=keep))
    track = captured[-1]
    _, radius, angle = track.pose(0)
    background = random_texture(np.random.default_rng(seed + 1), *SIZE)
    frames, truth = [], []
    h, w = SIZE
    for t in range(n_frames):
        x = -1.5 * radius + (t - enter + 1) * 0.9 * radius  # fully outside before ``enter``
        centre = (x, h / 2 + 0.1 * h * math.sin(0.3 * t))
        drawn, lab, _ = compose(background.astype(np.float32), [track.obj], [(centre, radius, angle + 0.02 * t)], [1])
        frames.append(np.clip(drawn + 0.5, 0, 255).astype(np.uint8))
        truth.append(lab)
    return image, labels == 1, np.stack(frames), np.stack(truth)


def test_a_reference_from_another_clip_finds_the_object_entering_at_frame_5(bundled, tmp_path):
    """The object of one clip (its frame 0 and mask as the reference) on another background, coming in
    from the left at frame 5 (a sliver of it): measured 0 pixels of it on frames 0-4, J 0, 0.88, 0.85,
    0.83, 0.81 on frames 5-9 (mean 0.67)."""
    ref_image, ref_mask, frames, truth = entering_clip(REFERENCE_SEED, N_FRAMES, 5)
    assert not truth[:5].any() and truth[5:].any(axis=(1, 2)).all()
    folder = write_frame_folder(tmp_path / "frames", frames)
    labels = _run(bundled, folder, lambda s: s.add_reference(ref_image, 1, ref_mask))
    empty_before = [int((labels[i] == 1).sum()) for i in range(5)]
    j_after = float(j_measure(labels[5:] == 1, truth[5:] == 1).mean())
    assert sum(empty_before) == 0, f"pixels of object 1 on frames 0-4, where it is not: {empty_before}"
    assert j_after >= 0.55, f"J on frames 5-{N_FRAMES - 1}: {j_after:.3f} (bound 0.55)"
