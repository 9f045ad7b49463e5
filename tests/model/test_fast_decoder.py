"""The fast mask decoder equals SAM's to float rounding and keeps the masks; the cheaper
post-processing equals SAM's bit for bit."""
from __future__ import annotations

import copy
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from segment_anything.modeling.mask_decoder import MaskDecoder
from segment_anything.modeling.sam import Sam
from test_fast_path import iou, run_clip  # noqa: E402 (this folder is on the path)

from persam_video.errors import PersamError
from persam_video.model import fast_path as precision
from persam_video.model.fast_decoder import ChannelsLastConv2d, FastDecoderForward, speed_up_decoder
from persam_video.model.guided_decoder import Guide
from persam_video.model.loading import build_model, load_sam
from persam_video.model.predictor import FramePredictor
from persam_video.model.upscaling import postprocess


def decoder_inputs(model, n: int, mask_input: bool, seed: int = 0):
    """Image embedding, positional encoding and prompt embeddings for ``n`` objects."""
    gen = torch.Generator().manual_seed(seed)
    grid = model.prompt_encoder.image_embedding_size
    side = model.image_encoder.img_size
    embedding = torch.randn(1, model.mask_decoder.transformer_dim, *grid, generator=gen)
    points = torch.rand(n, 2, 2, generator=gen) * side
    labels = torch.tensor([[1.0, 0.0]]).expand(n, 2)
    boxes = torch.tensor([[10.0, 20.0, side * 0.6, side * 0.7]]).expand(n, 4)
    masks = torch.randn(n, 1, 4 * grid[0], 4 * grid[1], generator=gen) * 5 if mask_input else None
    with torch.no_grad():
        sparse, dense = model.prompt_encoder(points=(points, labels), boxes=boxes, masks=masks)
    return dict(image_embeddings=embedding, image_pe=model.prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense)


def both(model):
    fast = copy.deepcopy(model)
    assert speed_up_decoder(fast)
    assert isinstance(fast.mask_decoder, FastDecoderForward) and isinstance(fast.mask_decoder, type(model.mask_decoder))
    return model, fast


@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("mask_input", [False, True])
@pytest.mark.parametrize("multimask", [True, False])
def test_fast_decoder_equals_sams_decoder(small_model, n, mask_input, multimask):
    plain, fast = both(small_model)
    inputs = decoder_inputs(plain, n, mask_input)
    if not mask_input and n > 1:  # SAM's "no mask" embedding is one row expanded: the objects share the image pass
        assert inputs["dense_prompt_embeddings"].stride(0) == 0
    with torch.no_grad():
        want = plain.mask_decoder(**inputs, multimask_output=multimask)
        have = fast.mask_decoder(**inputs, multimask_output=multimask)
    for w, h in zip(want, have):
        assert w.shape == h.shape
        torch.testing.assert_close(h, w, rtol=1e-4, atol=1e-4)
    assert (want[0] > 0).any() and (want[0] < 0).any()  # logits of both signs: a real comparison
    # the same once more: the kept positional projections are reused, not stale
    with torch.no_grad():
        again = fast.mask_decoder(**inputs, multimask_output=multimask)
    assert torch.equal(again[0], have[0])


def test_fast_decoder_sees_changed_weights(small_model):
    plain, fast = both(copy.deepcopy(small_model))  # the weights change: not the session's model
    inputs = decoder_inputs(plain, 2, False)
    with torch.no_grad():
        fast.mask_decoder(**inputs, multimask_output=True)  # keeps the token-major positional encoding
        for model in (plain, fast):
            model.mask_decoder.transformer.layers[1].cross_attn_token_to_image.k_proj.weight.mul_(1.5)
        want = plain.mask_decoder(**inputs, multimask_output=True)
        have = fast.mask_decoder(**inputs, multimask_output=True)
    torch.testing.assert_close(have[0], want[0], rtol=1e-4, atol=1e-4)


def test_a_guided_call_on_the_fast_decoder_runs_sams_order(small_model):
    plain, fast = both(small_model)
    inputs = decoder_inputs(plain, 2, False)
    bias = torch.rand(2, 1, 1, int(np.prod(plain.prompt_encoder.image_embedding_size)))
    torch.manual_seed(0)
    guide = Guide(bias, torch.randn(2, plain.mask_decoder.transformer_dim))
    with torch.no_grad():
        want = plain.mask_decoder(**inputs, multimask_output=True, guide=guide)
        have = fast.mask_decoder(**inputs, multimask_output=True, guide=guide)
        unguided = fast.mask_decoder(**inputs, multimask_output=True)
    assert torch.equal(have[0], want[0]) and torch.equal(have[1], want[1])
    assert not torch.allclose(unguided[0], want[0], atol=1e-3)  # the guide acts
    assert plain.mask_decoder.transformer.guide is None and fast.mask_decoder.transformer.guide is None
    masks = torch.randn(2, 1, 256, 256)
    with torch.no_grad():  # the fast decoder has the mask prompt's embedding written channels-last
        assert type(fast.prompt_encoder.mask_downscaling[-1]) is ChannelsLastConv2d
        assert fast.prompt_encoder(points=None, boxes=None, masks=masks)[1].is_contiguous(
            memory_format=torch.channels_last)
        assert type(plain.prompt_encoder.mask_downscaling[-1]) is torch.nn.Conv2d
        assert plain.prompt_encoder(points=None, boxes=None, masks=masks)[1].is_contiguous()
    assert isinstance(plain.mask_decoder, MaskDecoder) and not isinstance(plain.mask_decoder, FastDecoderForward)


def test_fast_decoder_on_mobile_sams_decoder():
    pytest.importorskip("mobile_sam")
    torch.manual_seed(0)
    model = build_model("vit_t").eval()
    plain, fast = both(model)
    inputs = decoder_inputs(plain, 3, True)
    with torch.no_grad():
        want = plain.mask_decoder(**inputs, multimask_output=True)
        have = fast.mask_decoder(**inputs, multimask_output=True)
    for w, h in zip(want, have):
        torch.testing.assert_close(h, w, rtol=1e-4, atol=1e-5)


def test_decoder_mode_follows_attention_and_can_be_forced(small_checkpoint):
    def is_fast(**kwargs):
        return isinstance(load_sam("small", small_checkpoint, device="cpu", **kwargs).mask_decoder,
                          FastDecoderForward)

    assert not is_fast()  # fp32: SAM's own decoder, byte-identical results
    assert is_fast(attention="fused")
    assert not is_fast(attention="fused", decoder="exact")
    assert is_fast(decoder="fast")
    with pytest.raises(PersamError, match="decoder mode 'turbo'"):
        precision.resolve_decoder("turbo", False)


def test_fast_decoder_keeps_the_bundled_models_masks(larger_clip):
    clip = larger_clip
    exact = run_clip(load_sam("small", device="cpu"), clip, "persam")
    fast = run_clip(load_sam("small", device="cpu", attention="fused", decoder="fast"), clip, "persam")
    scores = [iou(a == k, b == k) for a, b in zip(exact, fast) for k in (1, 2)]
    assert np.mean(scores) >= 0.99, scores
    assert any((a > 0).any() for a in exact[1:])


def test_postprocess_equals_sams_bit_for_bit():
    rng = random.Random(0)
    gen = torch.Generator().manual_seed(0)
    for side, grid in ((1024, 256), (1024, 64), (512, 128), (512, 32)):
        model = SimpleNamespace(image_encoder=SimpleNamespace(img_size=side))
        for _ in range(12):
            h, w = rng.randint(20, 1500), rng.randint(20, 1500)
            scale = side / max(h, w)
            input_size = (int(h * scale + 0.5), int(w * scale + 0.5))
            low = torch.randn(2, 3, grid, grid, generator=gen) * 10
            want = Sam.postprocess_masks(model, low, input_size, (h, w))
            assert torch.equal(postprocess(model, low, input_size, (h, w)), want), (side, grid, h, w)


def test_postprocess_falls_back_where_the_factor_is_not_whole():
    calls = []
    model = SimpleNamespace(image_encoder=SimpleNamespace(img_size=1000),
                            postprocess_masks=lambda *args: calls.append(args) or "sam's")
    assert postprocess(model, torch.zeros(1, 1, 256, 256), (600, 1000), (480, 800)) == "sam's"
    assert len(calls) == 1


def test_dense_pe_is_made_once_and_equals_the_prompt_encoders(small_model):
    model = copy.deepcopy(small_model)
    predictor = FramePredictor(model)
    first = predictor.dense_pe()
    assert torch.equal(first, model.prompt_encoder.get_dense_pe())
    assert predictor.dense_pe() is first
    with torch.no_grad():
        model.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix.mul_(2)
    changed = predictor.dense_pe()
    assert changed is not first and torch.equal(changed, model.prompt_encoder.get_dense_pe())


def test_resume_fingerprints_name_the_classes_the_modules_compute_as(small_checkpoint):
    from persam_video.resume_file import weights_digest

    def names(model):
        return [getattr(type(m), "fingerprint_name", type(m).__qualname__) for m in model.modules()]

    exact = load_sam("small", small_checkpoint, device="cpu")
    fast = load_sam("small", small_checkpoint, device="cpu", decoder="fast")
    assert type(exact.mask_decoder).__name__ == "GuidedMaskDecoder"
    assert "MaskDecoder" in names(exact) and "TwoWayTransformer" in names(exact)
    assert not any("Guided" in n for n in names(exact) + names(fast))
    assert names(fast) == [n.replace("MaskDecoder", "FastMaskDecoder") for n in names(exact)]
    assert weights_digest(fast) != weights_digest(exact)
