"""The photo recipe against a step-by-step reimplementation of the public image scripts' maths on
segment_anything's own SamPredictor (written here, as the public scripts cannot run in the tests;
the decoder switches are persam_video's hooks on both sides), presence, several references."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from segment_anything import SamPredictor

from persam_video.demo_clip import make_clip
from persam_video.model.guided_decoder import Guide
from persam_video.persam.geometry import attention_bias
from persam_video.photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference

SIZE = (120, 160)
FIT_ITERATIONS = 40


@pytest.fixture(scope="module")
def photos():
    clip = make_clip(seed=21, n_frames=4, size=SIZE, n_objects=1)
    red = np.where(clip.labels[0] == 1, 128, 0).astype(np.uint8)  # PerSeg's palette red for index 1
    return clip, red


def reference_target(predictor: SamPredictor, image, red, mode):
    """The public scripts' target: the mask's colour through SAM's own resize, normalisation and
    padding, bilinearly down to the grid, cells > 0; mean (persam.py) or (max + mean) / 2."""
    predictor.set_image(image)
    coloured = np.zeros(image.shape, np.uint8)
    coloured[..., 0] = red
    resized = torch.as_tensor(predictor.transform.apply_image(coloured)).permute(2, 0, 1)[None].float()
    grid = predictor.features.shape[-2:]
    cells = F.interpolate(predictor.model.preprocess(resized), size=grid, mode="bilinear")[0, 0] > 0
    feats = predictor.features[0].permute(1, 2, 0)[cells]
    mean = feats.mean(0)
    pooled = mean if mode == "mean" else (feats.max(0).values + mean) / 2
    return pooled / pooled.norm(), mean


def similarity(predictor: SamPredictor, target):
    feats = predictor.features[0]
    feats = feats / feats.norm(dim=0, keepdim=True)
    c, h, w = feats.shape
    sim = (target @ feats.reshape(c, h * w)).reshape(1, 1, h, w)
    sim = F.interpolate(sim, scale_factor=4, mode="bilinear")
    return predictor.model.postprocess_masks(sim, predictor.input_size, predictor.original_size)[0, 0]


def xy(flat_index, width):
    return np.array([[int(flat_index) % width, int(flat_index) // width]], np.float32)


def tight(mask):
    y, x = np.nonzero(mask)
    return np.array([x.min(), y.min(), x.max(), y.max()], np.float32)


@torch.no_grad()
def public_persam(predictor: SamPredictor, ref_image, red, photo):
    target, mean = reference_target(predictor, ref_image, red, "mean")
    predictor.set_image(photo)
    sim = similarity(predictor, target)
    w = sim.shape[1]
    points = np.concatenate([xy(sim.flatten().argmax(), w), xy(sim.flatten().argmin(), w)])
    labels = np.array([1, 0])
    bias = attention_bias(sim[None], predictor.features.shape[-2:])
    with predictor.model.mask_decoder.transformer.guided(Guide(bias, mean[None])):
        _, _, low = predictor.predict(points, labels, multimask_output=False)
    masks, scores, low = predictor.predict(points, labels, mask_input=low[0:1], multimask_output=True)
    best = int(np.argmax(scores))
    masks, scores, _ = predictor.predict(points, labels, box=tight(masks[best])[None], mask_input=low[best:best + 1],
                                         multimask_output=True)
    return masks[int(np.argmax(scores))]


def public_persam_f(predictor: SamPredictor, ref_image, red, photo, iterations):
    with torch.no_grad():
        target, _ = reference_target(predictor, ref_image, red, "mean-max")
        sim = similarity(predictor, target)
        point = xy(sim.flatten().argmax(), sim.shape[1])
        logits_high, _, _ = predictor.predict(point, np.array([1]), multimask_output=True, return_logits=True)
    logits_high = torch.as_tensor(logits_high).flatten(1)
    truth = torch.as_tensor(red > 0).float().flatten()[None]
    weights = torch.nn.Parameter(torch.full((2, 1), 1 / 3))
    optimiser = torch.optim.AdamW([weights], lr=1e-3, eps=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, iterations)
    for _ in range(iterations):
        full = torch.cat((1 - weights.sum(0, keepdim=True), weights))
        fused = (logits_high * full).sum(0, keepdim=True)
        prob = fused.sigmoid()
        dice = 1 - (2 * (prob * truth).sum(-1) + 1) / (prob.sum(-1) + truth.sum(-1) + 1)
        ce = F.binary_cross_entropy_with_logits(fused, truth, reduction="none")
        p_t = prob * truth + (1 - prob) * (1 - truth)
        focal = ((0.25 * truth + 0.75 * (1 - truth)) * ce * (1 - p_t) ** 2).mean()
        optimiser.zero_grad()
        (dice.sum() + focal).backward()
        optimiser.step()
        schedule.step()
    full = torch.cat((1 - weights.sum(0, keepdim=True), weights)).detach()
    with torch.no_grad():
        predictor.set_image(photo)
        sim = similarity(predictor, target)
        point = xy(sim.flatten().argmax(), sim.shape[1])
        high, _, low = predictor.predict(point, np.array([1]), multimask_output=True, return_logits=True)
        mask = (torch.as_tensor(high) * full[:, :, None]).sum(0).numpy() > 0
        fused_low = (low * full.numpy()[:, :, None]).sum(0)
        masks, scores, low = predictor.predict(point, np.array([1]), box=tight(mask)[None], mask_input=fused_low[None],
                                               multimask_output=True)
        best = int(np.argmax(scores))
        masks, scores, _ = predictor.predict(point, np.array([1]), box=tight(masks[best])[None],
                                             mask_input=low[best:best + 1], multimask_output=True)
    return masks[int(np.argmax(scores))], full[1:, 0]


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_persam_equals_the_public_image_recipe(small_model, photos):
    clip, red = photos
    ours = ImagePersonalizer(small_model, [PhotoReference(clip.frames[0], red > 0, 1, red)])
    theirs = SamPredictor(small_model)
    for photo in clip.frames[1:]:
        expected = public_persam(theirs, clip.frames[0], red, photo)
        got = ours.segment(photo).objects[0].mask
        assert np.array_equal(got, expected), f"IoU {iou(got, expected):.4f}"


def test_persam_f_equals_the_public_image_recipe(small_model, photos):
    clip, red = photos
    ours = ImagePersonalizer(small_model, [PhotoReference(clip.frames[0], red > 0, 1, red)],
                             PhotoOptions(method="persam-f", fit_iterations=FIT_ITERATIONS))
    theirs = SamPredictor(small_model)
    for photo in clip.frames[1:]:
        expected, weights = public_persam_f(theirs, clip.frames[0], red, photo, FIT_ITERATIONS)
        torch.testing.assert_close(ours.weights[0], weights, rtol=1e-4, atol=1e-6)
        got = ours.segment(photo).objects[0].mask
        # the fused low-res logits are upscaled once instead of fusing three upscaled ones: float rounding
        assert iou(got, expected) >= 0.99, f"IoU {iou(got, expected):.4f}"


def test_the_mask_colour_decides_the_reference_cells_as_in_the_public_scripts(small_model, photos):
    clip, red = photos
    dim = ImagePersonalizer(small_model, [PhotoReference(clip.frames[0], red > 0, 1, red)])
    bright = ImagePersonalizer(small_model, [PhotoReference(clip.frames[0], red > 0, 1, np.where(red > 0, 255, 0))])
    # red 128 barely passes SAM's normalisation (mean 123.675): fewer cells, another target
    assert not torch.equal(dim.features, bright.features)


def test_presence_empties_an_object_that_is_not_there(small_model, photos):
    clip, red = photos
    options = PhotoOptions(presence=1.0)
    personalizer = ImagePersonalizer(small_model, [PhotoReference(clip.frames[0], red > 0, 1, red)], options)
    elsewhere = make_clip(seed=77, n_frames=1, size=SIZE, n_objects=1).frames[0]
    result = personalizer.segment(elsewhere)
    peak = float(personalizer.reference_peak[0])
    on_reference = personalizer.segment(clip.frames[0]).objects[0]
    assert on_reference.found and on_reference.similarity >= peak - 1e-6
    obj = result.objects[0]
    assert (obj.similarity < peak) == (not obj.found)
    if not obj.found:
        assert not obj.mask.any() and not result.labels.any() and obj.score == 0.0


def test_two_objects_and_several_references(small_model):
    clip = make_clip(seed=4, n_frames=4, size=SIZE, n_objects=2)
    one = [PhotoReference(clip.frames[0], clip.labels[0] == k, k) for k in (1, 2)]
    two = one + [PhotoReference(clip.frames[1], clip.labels[1] == 1, 1)]
    single = ImagePersonalizer(small_model, one, PhotoOptions(method="persam-f", fit_iterations=5))
    double = ImagePersonalizer(small_model, two, PhotoOptions(method="persam-f", fit_iterations=5))
    assert single.ids == double.ids == [1, 2]
    assert torch.equal(single.features[1], double.features[1])  # object 2: one reference in both
    assert not torch.equal(single.features[0], double.features[0])  # object 1: two references averaged
    assert not torch.equal(single.weights[0], double.weights[0])  # and fitted on both
    result = double.segment(clip.frames[2])
    assert [o.obj_id for o in result.objects] == [1, 2]
    assert set(np.unique(result.labels)) <= {0, 1, 2}
    for o in result.objects:
        assert np.array_equal(o.mask, result.labels == o.obj_id)
