"""The fast path: fused attention equals SAM's modules, fp32 is left exactly as it was, reduced
precision keeps the masks, and the fast PerSAM-F fit keeps the exact fit's weights and masks."""
from __future__ import annotations

import argparse
import copy

import numpy as np
import pytest
import torch
from conftest import BF16_MACHINES
from segment_anything.modeling import image_encoder as sam_encoder
from segment_anything.modeling import transformer as sam_transformer

from persam_video import persam
from persam_video.batch.markers import run_settings
from persam_video.cli.common import add_method_options, add_model_options, model_spec, tracker_options
from persam_video.errors import PersamError
from persam_video.model import fast_path as precision
from persam_video.model import guided_decoder
from persam_video.model.fast_attention import fuse_attention, fused
from persam_video.model.loading import ModelSpec, build_model, load_sam
from persam_video.options import TrackerOptions
from persam_video.persam import fit as fit_module
from persam_video.tracking.segmenter import VideoSegmenter


def classes(model):
    return {type(m) for m in model.modules()}


def sams_own(model) -> bool:
    """Every module of ``model`` is segment_anything's (or torch's) as built, but for the decoder and
    its transformer, built with PerSAM's switches (subclasses whose unguided call is SAM's own)."""
    guided = (guided_decoder.GuidedDecoder, guided_decoder.GuidedTransformer)
    return all(c.__module__.startswith(("segment_anything", "torch"))
               or (issubclass(c, guided) and c.__mro__[2].__module__.startswith("segment_anything"))
               for c in classes(model))


def test_fp32_leaves_every_module_as_segment_anything_built_it(small_checkpoint):
    from segment_anything.modeling.mask_decoder import MaskDecoder
    from segment_anything.modeling.transformer import TwoWayTransformer

    model = load_sam("small", small_checkpoint, device="cpu", precision="fp32")
    plain = load_sam("small", small_checkpoint, device="cpu", precision="fp32", attention="plain")
    assert classes(model) == classes(plain)
    assert sam_encoder.Attention in classes(model) and sam_transformer.Attention in classes(model)
    assert sams_own(model)
    assert model.precision == "fp32"
    image = torch.rand(1, 3, 256, 256) * 255
    with torch.no_grad():
        assert torch.equal(model.image_encoder(model.preprocess(image)), plain.image_encoder(plain.preprocess(image)))
        embedding = model.image_encoder(model.preprocess(image))
        sparse, dense = model.prompt_encoder(points=(torch.rand(2, 2, 2) * 256, torch.ones(2, 2)), boxes=None,
                                             masks=None)
        inputs = (embedding, model.prompt_encoder.get_dense_pe(), sparse, dense, True)
        decoder = model.mask_decoder
        assert all(torch.equal(a, b) for a, b in zip(decoder(*inputs), MaskDecoder.forward(decoder, *inputs)))
        tokens = torch.randn(2, 5, decoder.transformer_dim)
        image_pe = model.prompt_encoder.get_dense_pe()
        assert all(torch.equal(a, b) for a, b in zip(decoder.transformer(embedding, image_pe, tokens),
                                                      TwoWayTransformer.forward(decoder.transformer, embedding,
                                                                                image_pe, tokens)))


def test_fused_attention_equals_the_installed_modules(small_model):
    fused = copy.deepcopy(small_model)
    assert fuse_attention(fused) == 6 + 7  # 6 encoder blocks; 2 two-way layers x 3 + the final attention
    image = torch.rand(1, 3, 256, 256) * 255
    with torch.no_grad():
        expected = small_model.image_encoder(small_model.preprocess(image))
        got = fused.image_encoder(fused.preprocess(image))
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
        sparse, dense = small_model.prompt_encoder(points=(torch.rand(3, 2, 2) * 256, torch.ones(3, 2)),
                                                   boxes=None, masks=None)
        runs = [m.mask_decoder(image_embeddings=expected, image_pe=m.prompt_encoder.get_dense_pe(),
                               sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
                               multimask_output=True) for m in (small_model, fused)]
    for want, have in zip(*runs):
        torch.testing.assert_close(have, want, rtol=1e-4, atol=1e-4)
    assert not {sam_encoder.Attention, sam_transformer.Attention} & classes(fused)
    assert sam_encoder.Attention in classes(small_model)  # the model it was copied from is as it was


def test_fused_tiny_vit_attention_equals_mobile_sam():
    tiny_vit = pytest.importorskip("mobile_sam.modeling.tiny_vit_sam")
    torch.manual_seed(0)
    module = tiny_vit.Attention(64, 16, num_heads=4, attn_ratio=2, resolution=(7, 7))
    torch.nn.init.normal_(module.attention_biases)
    module.eval()
    x = torch.randn(2, 49, 64)
    with torch.no_grad():
        expected = module(x)
        fast = fused(module)
        assert type(fast) is not type(module) and isinstance(fast, tiny_vit.Attention)
        torch.testing.assert_close(fast(x), expected, rtol=1e-4, atol=1e-5)


def test_fused_attention_builds_mobile_sams_decoder_attention():
    """MobileSAM's decoder attention is its own class (segment_anything's attributes): it is rebuilt as a
    fused class of its own line, computing as it did (a whole vit_t model fuses without an error)."""
    from mobile_sam.modeling import transformer  # the [mobile] extra, in the test extra

    torch.manual_seed(0)
    module = transformer.Attention(64, 4, downsample_rate=2).eval()
    q, k, v = torch.randn(2, 5, 64), torch.randn(2, 30, 64), torch.randn(2, 30, 64)
    with torch.no_grad():
        expected = module(q=q, k=k, v=v)
        fast = fused(module)
        assert type(fast) is not type(module) and isinstance(fast, transformer.Attention)
        torch.testing.assert_close(fast(q=q, k=k, v=v), expected, rtol=1e-4, atol=1e-5)
    model = build_model("vit_t").eval()
    assert fuse_attention(model) > 0 and transformer.Attention not in classes(model)


def test_cpu_bf16_detection_reads_the_kernel_flags(tmp_path, monkeypatch):
    monkeypatch.delenv(precision.NATIVE_BF16_ENV, raising=False)
    with_bf16, without = tmp_path / "a", tmp_path / "b"
    with_bf16.write_text("processor : 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile\n")
    without.write_text("processor : 0\nflags\t\t: fpu avx512f avx512_vnni\n")
    assert precision.cpu_has_native_bf16(str(with_bf16))
    assert not precision.cpu_has_native_bf16(str(without))
    assert not precision.cpu_has_native_bf16(str(tmp_path / "missing"))
    cpu = torch.device("cpu")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.resolve_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    assert precision.resolve_precision("auto", cpu) == "fp32"
    assert precision.resolve_precision("fp16", cpu) == "fp16"
    with pytest.raises(PersamError, match="precision 'fp8'"):
        precision.resolve_precision("fp8", cpu)
    with pytest.raises(PersamError, match="attention mode"):
        precision.resolve_attention("flash", "fp32")


def test_the_environment_says_whether_the_cpu_has_native_bf16(tmp_path, monkeypatch):
    without = tmp_path / "cpuinfo"
    without.write_text("processor : 0\nflags\t\t: fpu avx512f\n")
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "1")
    assert precision.cpu_has_native_bf16(str(without))
    assert precision.resolve_precision("auto", torch.device("cpu")) == "bf16"
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "0")
    assert not precision.cpu_has_native_bf16()
    assert precision.resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setenv(precision.NATIVE_BF16_ENV, "yes")
    with pytest.raises(PersamError, match="PERSAM_VIDEO_NATIVE_BF16 must be 1 or 0"):
        precision.cpu_has_native_bf16()


@BF16_MACHINES
def test_the_default_is_exact_on_every_machine_and_fast_resolves_per_machine(machine_bf16, small_checkpoint):
    exact = ModelSpec(model_type="small", checkpoint=str(small_checkpoint), device="cpu")
    model = exact.load(progress=False)
    assert model.precision == "fp32" and model.numerics == "exact (fp32)"
    assert sams_own(model)
    assert load_sam("small", small_checkpoint, device="cpu").numerics == "exact (fp32)"
    assert TrackerOptions().fit_mode == "exact"
    settings = run_settings(TrackerOptions(), exact)
    assert settings["precision"] == "fp32" and not settings["fused_attention"] and "fast_decoder" not in settings

    fast = ModelSpec.fast(model_type="small", checkpoint=str(small_checkpoint), device="cpu")
    expected = "bf16" if machine_bf16 else "fp32"
    assert fast.load(progress=False).numerics == f"{expected}, fused attention, fast decoder"
    settings = run_settings(TrackerOptions.fast(), fast)
    assert (settings["precision"], settings["fused_attention"], settings["fast_decoder"]) == (expected, True, 2)
    assert settings["fit_mode"] == "fast"
    assert ModelSpec.fast(precision="fp32").precision == "fp32"  # a setting given wins


@pytest.mark.parametrize("flags, expected", [
    ([], ("fp32", "auto", "auto", "exact")),
    (["--fast"], ("auto", "fused", "fast", "fast")),
    (["--fast", "--precision", "fp32", "--fit-mode", "exact"], ("fp32", "fused", "fast", "exact")),
    (["--decoder", "fast"], ("fp32", "auto", "fast", "exact")),
])
def test_the_fast_flag_sets_what_was_not_given(flags, expected):
    parser = argparse.ArgumentParser()
    add_method_options(parser)
    add_model_options(parser)
    args = parser.parse_args(flags)
    spec, options = model_spec(args), tracker_options(args)
    assert (spec.precision, spec.attention, spec.decoder, options.fit_mode) == expected
    assert "--fast" in parser.format_help()


def test_bf16_encoder_keeps_its_attributes_and_hands_back_float32(small_checkpoint):
    model = load_sam("small", small_checkpoint, device="cpu", precision="bf16")
    assert model.precision == "bf16" and model.image_encoder.img_size == 256
    assert isinstance(model.image_encoder, sam_encoder.ImageEncoderViT)
    assert set(model.state_dict()) == set(load_sam("small", small_checkpoint, device="cpu").state_dict())
    with torch.no_grad():
        assert model.image_encoder(torch.zeros(1, 3, 256, 256)).dtype == torch.float32
    assert model.mask_decoder.transformer.layers[0].self_attn.__class__.__name__ == "FusedDecoderAttention"


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def run_clip(model, clip, method):
    seg = VideoSegmenter(model, TrackerOptions(method=method, fit_iterations=40))
    out = [seg.seed_frame(clip.frames[0], clip.labels[0])]
    out += [labels for _, labels in seg.propagate(clip.frames[1:])]
    return out


@pytest.mark.parametrize("method", ["persam", pytest.param("persam-f", marks=pytest.mark.slow)])
def test_bf16_fast_path_keeps_the_bundled_models_masks(larger_clip, method):
    clip = larger_clip
    exact = run_clip(load_sam("small", device="cpu"), clip, method)
    fast = run_clip(load_sam("small", device="cpu", precision="bf16"), clip, method)
    scores = [iou(a == k, b == k) for a, b in zip(exact, fast) for k in (1, 2)]
    assert np.mean(scores) >= 0.99, scores
    assert any((a > 0).any() for a in exact[1:])  # the model finds something to agree on


def fit_inputs(small_model, clip):
    seg = VideoSegmenter(small_model, TrackerOptions(method="persam"))
    seg.seed_frame(clip.frames[0], clip.labels[0])
    maps = persam.confidence_maps(seg.predictor, torch.stack([o.feature for o in seg.objects]))
    prompts = persam.Prompts(persam.top_points(maps, 1), torch.ones(2, 1),
                             torch.as_tensor(np.stack([o.box for o in seg.objects]), dtype=torch.float32))
    with torch.no_grad():
        logits = persam.predict(seg.predictor, prompts).logits
    target = torch.stack([torch.as_tensor(clip.labels[0] == k) for k in (1, 2)])
    return logits, target


@pytest.mark.parametrize("budget", [None, 500])
def test_closed_form_gradient_equals_autograd(small_model, clip, budget):
    logits, target = fit_inputs(small_model, clip)
    if budget is None:  # the exact fit: every pixel once
        kept, kept_target, weight = logits.flatten(2), target.flatten(1).float(), None
    else:  # the lattice: blocks of several sizes (the last row and column are shorter)
        kept, kept_target, weight = fit_module.sample_pixels(logits, target.float(), budget=budget)
        assert kept.shape[-1] <= budget and len(set(weight.flatten().tolist())) > 1
    weights = torch.tensor([[0.2, 0.5], [0.6, 0.1]], requires_grad=True)
    every = torch.ones_like(kept_target) if weight is None else weight
    fit_module.weighted_loss(persam.fuse(kept, weights), kept_target, every, target[0].numel()).sum().backward()
    closed = fit_module.PixelLoss(kept, kept_target, weight, target[0].numel()).gradient(weights.detach())
    torch.testing.assert_close(closed, weights.grad, rtol=1e-4, atol=1e-7)


def test_lattice_weights_cover_the_frame_once(small_model, clip):
    logits, target = fit_inputs(small_model, clip)
    kept, kept_target, weight = fit_module.sample_pixels(logits, target.float(), budget=777)
    assert kept.shape[-1] <= 777 and float(weight.sum()) == target[0].numel()
    weights = torch.tensor([[0.2, 0.5], [0.6, 0.1]])
    fused = persam.fuse(logits, weights)
    exact = persam.dice_loss(fused, target.float()) + persam.focal_loss(fused, target.float())
    sampled = fit_module.weighted_loss(persam.fuse(kept, weights), kept_target, weight, target[0].numel())
    torch.testing.assert_close(sampled, exact, rtol=0.1, atol=0.01)  # an estimate of the same sums


@pytest.mark.parametrize("frames", [1, 2])
def test_fast_fit_keeps_the_exact_fits_weights_and_masks(small_model, clip, frames):
    logits, target = fit_inputs(small_model, clip)
    if frames == 2:  # an object prompted on two frames: S = (F, H, W)
        logits = torch.stack((logits, logits.flip(-1)), dim=2)
        target = torch.stack((target, target.flip(-1)), dim=1)
    exact = persam.fit_scale_weights(logits, target, iterations=200)
    fast = persam.fit_scale_weights(logits, target, iterations=200, mode="fast")
    assert fast.shape == (2, 2)
    assert float((fast - exact).abs().max()) < 2e-3
    a, b = persam.fuse(logits, exact) > 0, persam.fuse(logits, fast) > 0
    inter = (a & b).flatten(1).sum(1).float()
    union = (a | b).flatten(1).sum(1).clamp(min=1).float()
    assert float((inter / union).mean()) >= 0.99
    with pytest.raises(ValueError, match="fit mode"):
        persam.fit_scale_weights(logits, target, iterations=1, mode="newton")
