"""PerSAM and PerSAM-F on SAM 2.1 (hiera_tiny, seeded random weights, input size 256): the video
tracker and the photo personalizer run it unchanged; target-guided attention and target-semantic
prompting act inside SAM 2.1's two-way transformer; each SAM 2.1 decoder switch does what
docs/method.md says."""
from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from conftest import BF16_MACHINES

from persam_video.demo_clip import make_clip
from persam_video.model.fast_path import FAST_MODEL, apply_precision
from persam_video.model.predictor import FramePredictor
from persam_video.model.sam2_model import NO_OBJECT_SCORE
from persam_video.options import TrackerOptions
from persam_video.persam import decoding
from persam_video.persam.geometry import confidence_maps, target_embedding
from persam_video.photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference
from persam_video.tracking.segmenter import VideoSegmenter


@pytest.fixture(scope="module")
def scene():
    return make_clip(seed=5, n_frames=3, size=(90, 150), n_objects=2, camera_motion=False)


@pytest.fixture
def predictor(sam2_tiny_256, scene):
    p = FramePredictor(sam2_tiny_256)
    p.set_image(scene.frames[0])
    return p


def prompts_for(predictor, mask):
    """A PerSAM first pass's prompts for one object: its peak and lowest similarity, from its own target."""
    target = target_embedding(predictor, mask)
    maps = confidence_maps(predictor, target.feature[None])
    h, w = maps.shape[-2:]
    hi, lo = int(maps.flatten(1).argmax()), int(maps.flatten(1).argmin())
    points = torch.tensor([[[hi % w, hi // w], [lo % w, lo // w]]], dtype=torch.float32)
    return decoding.Prompts(points, torch.tensor([[1, 0]])), maps, target


@pytest.mark.parametrize("method", ["persam", "persam-f"])
def test_tracker_runs_on_sam2(sam2_tiny_256, scene, method):
    segmenter = VideoSegmenter(sam2_tiny_256, TrackerOptions(method=method, fit_iterations=5))
    segmenter.seed_frame(scene.frames[0], scene.labels[0])
    assert segmenter.predictor.high_res is not None and len(segmenter.predictor.high_res) == 2
    for frame in scene.frames[1:]:
        labels = segmenter.step(frame)
        assert labels.shape == scene.labels[0].shape and set(np.unique(labels)) <= {0, 1, 2}
    assert segmenter.state_dict()["embedding_dim"] == 256


@pytest.mark.parametrize("method", ["persam", "persam-f"])
def test_photo_personalizer_runs_on_sam2(sam2_tiny_256, scene, method):
    reference = PhotoReference(scene.frames[0], scene.labels[0] == 1)
    personalizer = ImagePersonalizer(sam2_tiny_256, [reference], PhotoOptions(method=method, fit_iterations=5))
    result = personalizer.segment(scene.frames[1])
    assert result.labels.shape == scene.labels[1].shape and len(result.objects) == 1


def test_guided_attention_and_semantic_prompt_act_in_sam2_transformer(predictor, scene):
    prompts, maps, target = prompts_for(predictor, scene.labels[0] == 1)
    plain = decoding.predict(predictor, prompts).low_res
    guided = decoding.predict(predictor, prompts, attention_maps=maps).low_res
    semantic = decoding.predict(predictor, prompts, target_means=target.mean[None]).low_res
    assert not torch.equal(plain, guided) and not torch.equal(plain, semantic)
    assert torch.equal(decoding.predict(predictor, prompts).low_res, plain)  # switched off again after the pass


def test_high_res_switch(predictor, scene):
    prompts, _, _ = prompts_for(predictor, scene.labels[0] == 1)
    decoder = predictor.model.mask_decoder
    on = decoding.predict(predictor, prompts).low_res
    decoder.high_res = False
    try:
        off = decoding.predict(predictor, prompts).low_res
        zeros = tuple(torch.zeros_like(f) for f in predictor.high_res)
        kept = predictor.image
        predictor.use(dataclasses.replace(kept, high_res=zeros))
        decoder.high_res = True
        assert torch.equal(decoding.predict(predictor, prompts).low_res, off)  # off = zero skip connections
        predictor.use(kept)
    finally:
        decoder.high_res = True
    assert not torch.equal(on, off)


def test_object_score_switch(predictor, scene):
    prompts, _, _ = prompts_for(predictor, scene.labels[0] == 1)
    decoder = predictor.model.mask_decoder
    head_bias = decoder.inner.pred_obj_score_head.layers[-1].bias
    kept = head_bias.clone()
    head_bias.fill_(-1e4)  # the head now says "no object" for every prompt
    try:
        assert bool(decoding.decode_persam(predictor, prompts).found.all())  # off (default): ignored
        decoder.object_score = True
        out = decoding.predict(predictor, prompts)
        assert bool((out.low_res == NO_OBJECT_SCORE).all())
        assert not bool(decoding.decode_persam(predictor, prompts).found.any())  # the cascade finds nothing
    finally:
        decoder.object_score = False
        head_bias.copy_(kept)


def test_stability_switch(predictor, scene):
    """Single-mask output: with the switch on, SAM 2's token-0 mask when it is stable, else the best-scored
    of the three multimask outputs; off, always the token-0 mask."""
    prompts, _, _ = prompts_for(predictor, scene.labels[0] == 1)
    decoder = predictor.model.mask_decoder
    assert decoder.stability
    single_on = decoding.predict(predictor, prompts, multimask=False)
    three = decoding.predict(predictor, prompts)
    decoder.stability = False
    try:
        single_off = decoding.predict(predictor, prompts, multimask=False)
    finally:
        decoder.stability = True
    logits = single_off.low_res[0, 0]
    stable = float((logits > 0.05).sum() / (logits > -0.05).sum().clamp(min=1)) >= 0.98
    best = int(three.scores[0].argmax())
    expected = single_off.low_res[0, 0] if stable else three.low_res[0, best]
    assert torch.equal(single_on.low_res[0, 0], expected)


@BF16_MACHINES
def test_fast_path_on_sam2(sam2_tiny_256, scene, machine_bf16):
    """``--fast`` (precision auto) on SAM 2.1: bf16 autocast of the encoder where the CPU has native bf16,
    fp32 (the exact model) elsewhere; the features come back as float32 either way."""
    model = copy.deepcopy(sam2_tiny_256)
    assert apply_precision(model, **{k: v for k, v in FAST_MODEL.items() if k != "compile"}) == \
        ("bf16" if machine_bf16 else "fp32")
    fast, exact = FramePredictor(model), FramePredictor(sam2_tiny_256)
    fast.set_image(scene.frames[0])
    exact.set_image(scene.frames[0])
    assert fast.features.dtype == torch.float32 and all(f.dtype == torch.float32 for f in fast.high_res)
    same = torch.equal(fast.features, exact.features)
    assert same != machine_bf16
    masks = fast.click_mask(np.array([[60.0, 40.0]]), np.array([1]))
    assert masks.shape == scene.labels[0].shape
