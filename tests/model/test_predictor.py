"""FramePredictor (no torchvision) gives what segment_anything's SamPredictor gives, to the bit:
embeddings, sizes, resized images, transformed points and boxes, and predicted masks."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from segment_anything import SamPredictor

from persam_video.errors import PersamError
from persam_video.model.predictor import FramePredictor

# (H, W): portrait, landscape, odd sizes, one at the model's input size (256) already, one smaller
SIZES = [(140, 90), (96, 128), (101, 157), (257, 83), (256, 192), (33, 47)]


def random_frame(size, seed):
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


@pytest.fixture(scope="module")
def pair(small_model):
    return SamPredictor(small_model), FramePredictor(small_model)


@pytest.mark.parametrize("size", SIZES)
def test_embedding_and_sizes_equal_sam_predictor(pair, size):
    theirs, ours = pair
    frame = random_frame(size, seed=size[0] * 1000 + size[1])
    theirs.set_image(frame)
    ours.set_image(frame)
    assert ours.original_size == theirs.original_size
    assert ours.input_size == theirs.input_size
    assert ours.features.dtype == theirs.features.dtype
    assert torch.equal(ours.features, theirs.features)
    assert ours.is_image_set and ours.device == theirs.device
    resized = ours.transform.apply_image(frame)
    assert resized.flags.writeable and resized.flags.c_contiguous
    assert np.array_equal(resized, theirs.transform.apply_image(frame))


@pytest.mark.parametrize("size", SIZES)
def test_points_boxes_and_masks_equal_sam_predictor(pair, size):
    theirs, ours = pair
    rng = np.random.default_rng(size[0] + size[1])
    frame = random_frame(size, seed=size[1])
    theirs.set_image(frame)
    ours.set_image(frame)
    h, w = size
    points = torch.as_tensor(rng.uniform(0, [w, h], (3, 2, 2)), dtype=torch.float64)
    boxes = torch.as_tensor(rng.integers(0, min(h, w), (3, 4)))
    for got, want in ((ours.transform.apply_coords_torch(points, size),
                       theirs.transform.apply_coords_torch(points, size)),
                      (ours.transform.apply_boxes_torch(boxes, size), theirs.transform.apply_boxes_torch(boxes, size))):
        assert got.dtype == want.dtype and torch.equal(got, want)
    np_points = points.numpy()
    assert np.array_equal(ours.transform.apply_coords(np_points, size), theirs.transform.apply_coords(np_points, size))
    assert np.array_equal(ours.transform.apply_boxes(boxes.numpy(), size),
                          theirs.transform.apply_boxes(boxes.numpy(), size))
    assert np_points is not ours.transform.apply_coords(np_points, size)  # a copy, as theirs

    click, label, box = np_points[0], np.array([1, 0]), boxes[0].numpy()
    for kwargs in ({"point_coords": click, "point_labels": label}, {"box": box, "multimask_output": False},
                   {"point_coords": click, "point_labels": label, "box": box, "return_logits": True}):
        for got, want in zip(ours.predict(**kwargs), theirs.predict(**kwargs)):
            assert got.dtype == want.dtype and np.array_equal(got, want)
    batch = (ours.transform.apply_coords_torch(points, size), torch.ones(3, 2, dtype=torch.int))
    for got, want in zip(ours.predict_torch(*batch, return_logits=True),
                         theirs.predict_torch(*batch, return_logits=True)):
        assert torch.equal(got, want)


def test_bgr_and_float_frames_equal_sam_predictor(pair):
    theirs, ours = pair
    frame = random_frame((75, 110), seed=5)
    theirs.set_image(frame[..., ::-1], image_format="BGR")
    ours.set_image(frame[..., ::-1], image_format="BGR")
    assert torch.equal(ours.features, theirs.features)
    at_size = random_frame((256, 128), seed=6)  # no resize: the flipped view must still work
    theirs.set_image(at_size[..., ::-1], image_format="BGR")
    ours.set_image(at_size[..., ::-1], image_format="BGR")
    assert torch.equal(ours.features, theirs.features)
    as_float = frame.astype(np.float32) / 255
    assert np.array_equal(ours.transform.apply_image(as_float), theirs.transform.apply_image(as_float))


def test_bad_input_is_one_clear_error(pair):
    _, ours = pair
    fresh = FramePredictor(ours.model)
    with pytest.raises(PersamError, match="no image is set"):
        fresh.predict(np.array([[1.0, 2.0]]), np.array([1]))
    with pytest.raises(PersamError, match=r"\(H, W, 3\)"):
        fresh.set_image(np.zeros((10, 12), np.uint8))
    with pytest.raises(PersamError, match="uint8"):
        fresh.set_image(np.zeros((10, 12, 3), np.int32))
    with pytest.raises(PersamError, match="image_format"):
        fresh.set_image(np.zeros((10, 12, 3), np.uint8), image_format="RGBA")
