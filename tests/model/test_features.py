"""The feature store encodes an image once per key, hands its features back exactly, and keeps at
most its capacity, dropping the least recently used first."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from persam_video.model.predictor import FramePredictor


def random_frame(size, seed):
    return np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)


def counting_store(predictor, capacity):
    calls = []

    def encode(image):
        calls.append(image.shape)
        return predictor.encode(image)

    from persam_video.model.features import FeatureStore
    return FeatureStore(encode, capacity), calls


def test_an_image_is_encoded_once_and_brought_back_exactly(small_model):
    predictor = FramePredictor(small_model)
    store, calls = counting_store(predictor, capacity=4)
    first, second = random_frame((60, 80), seed=1), random_frame((90, 70), seed=2)
    a = store.get(("frame", 0), first)
    embedding = a.embedding.clone()
    store.get(("frame", 1), lambda: second)
    assert len(calls) == 2 and not torch.equal(predictor.features, embedding)
    again = store.get(("frame", 0), first)
    assert len(calls) == 2 and again is a and torch.equal(again.embedding, embedding)
    predictor.use(again)
    masks, _, _ = predictor.predict(point_coords=np.array([[30.0, 20.0]]), point_labels=np.array([1]))
    assert masks.shape[1:] == (60, 80)  # the image made current again has its own size
    assert predictor.original_size == (60, 80) and predictor.input_size == a.input_size


def test_the_least_recently_used_image_is_dropped_first(small_model):
    store, calls = counting_store(FramePredictor(small_model), capacity=2)
    frames = [random_frame((40, 50), seed=s) for s in range(3)]
    store.get("a", frames[0])
    store.get("b", frames[1])
    store.get("a")  # a use: "b" is now the least recent
    store.get("c", frames[2])
    assert store.keys() == ["a", "c"] and len(calls) == 3
    with pytest.raises(RuntimeError, match="no image for 'b'"):
        store.get("b")
    store.get("b", frames[1])
    assert len(calls) == 4 and store.keys() == ["c", "b"]
    store.retain(["b"])
    assert store.keys() == ["b"]
    store.retain()
    assert store.keys() == []


def test_a_store_keeps_at_least_one_image(small_model):
    from persam_video.model.features import FeatureStore
    with pytest.raises(ValueError):
        FeatureStore(FramePredictor(small_model).encode, capacity=0)
