"""The per-frame method: exact computations and the fixed defects of the public scripts."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import load_script
from segment_anything.modeling.transformer import Attention

from persam_video import persam
from persam_video.model.guided_decoder import Guide, guided_attention
from persam_video.model.predictor import FramePredictor
from persam_video.persam import decoding
from persam_video.persam.geometry import attention_bias


@pytest.fixture
def predictor(small_model, clip):
    p = FramePredictor(small_model)  # SamPredictor to the bit (tests/model/test_predictor.py)
    p.set_image(clip.frames[0])
    return p


def test_largest_mask_counts_areas_beyond_255():
    logits = torch.full((1, 3, 20, 20), -1.0)
    logits[0, 0].view(-1)[:300] = 1.0   # 300 pixels: wraps to 44 in uint8
    logits[0, 1].view(-1)[:200] = 1.0
    logits[0, 2].view(-1)[:100] = 1.0
    wrapped = (logits > 0).flatten(2).sum(-1).to(torch.uint8).argmax(dim=1)
    assert wrapped.item() == 1  # the defect picks the 200-pixel mask
    assert persam.largest_mask(logits).item() == 0


def test_mask_to_grid_follows_the_image_transform(predictor):
    h, w = predictor.original_size
    mask = np.zeros((h, w), bool)
    mask[:, : w // 2] = True
    grid = persam.mask_to_grid(predictor, mask)
    g = grid.shape[0]
    scale = predictor.model.image_encoder.img_size / max(h, w)
    cells_w = int(round(w / 2 * scale / (predictor.model.image_encoder.img_size / g)))
    cells_h = int(round(h * scale / (predictor.model.image_encoder.img_size / g)))
    expected = torch.zeros_like(grid)
    expected[:cells_h, :cells_w] = True
    assert torch.equal(grid, expected)


def test_one_pixel_object_gives_a_finite_target(predictor):
    mask = np.zeros(predictor.original_size, bool)
    mask[40, 61] = True
    assert not persam.mask_to_grid(predictor, mask).any()  # too small for the 215-rule
    target = persam.target_embedding(predictor, mask)
    assert target.rule == "touched" and target.cells == 1
    assert torch.isfinite(target.feature).all() and torch.isfinite(target.mean).all()
    assert abs(float(target.feature.norm()) - 1) < 1e-5


def test_target_modes(predictor):
    mask = np.zeros(predictor.original_size, bool)
    mask[10:60, 20:90] = True
    feats = predictor.features[0].permute(1, 2, 0)[persam.mask_to_grid(predictor, mask)]
    mean = persam.target_embedding(predictor, mask, "mean")
    both = persam.target_embedding(predictor, mask, "mean-max")
    assert torch.allclose(mean.feature, torch.nn.functional.normalize(feats.mean(0), dim=0), atol=1e-6)
    expected = feats.mean(0) / 2 + feats.max(0).values / 2
    assert torch.allclose(both.feature, expected / expected.norm(), atol=1e-6)
    assert torch.allclose(both.mean, feats.mean(0))


def test_confidence_map_top_points_are_x_y(predictor):
    h, w = predictor.original_size
    maps = torch.zeros(2, h, w)
    maps[0, 5, 70] = 3.0
    maps[0, 6, 71] = 2.0
    maps[1, 90, 3] = 1.0
    pts = persam.top_points(maps, 2)
    assert pts[0].tolist() == [[70.0, 5.0], [71.0, 6.0]]
    assert pts[1, 0].tolist() == [3.0, 90.0]
    maps[1, 50, 40] = -1.0
    assert persam.lowest_point(maps)[1, 0].tolist() == [40.0, 50.0]
    real = persam.confidence_maps(predictor, torch.nn.functional.normalize(torch.randn(3, 128), dim=1))
    assert real.shape == (3, h, w) and real.abs().max() <= 1.0 + 1e-4


def test_boxes():
    mask = np.zeros((30, 40), bool)
    mask[5:9, 2:39] = True
    box = persam.tight_box(mask)
    assert box.tolist() == [2, 5, 38, 8]
    assert persam.widen_box(box, 10, 30, 40).tolist() == [0, 0, 40, 18]
    assert persam.box_centre(persam.widen_box(box, 10, 30, 40)).tolist() == [20, 9]
    assert persam.tight_box(np.zeros((4, 4), bool)) is None
    batch = torch.zeros(2, 30, 40, dtype=torch.bool)
    batch[0] = torch.as_tensor(mask)
    boxes = persam.tight_boxes(batch)
    assert boxes[0].tolist() == box.tolist() and boxes[1] is None


def test_label_map_keeps_ids_and_ties_go_to_background():
    logits = torch.tensor([[[2.0, -1.0, 0.0]], [[1.0, 3.0, 0.0]]])
    assert persam.label_map(logits, [3, 7]).tolist() == [[3, 7, 0]]
    absent = torch.full((2, 1, 3), float("-inf"))
    assert persam.label_map(absent, [3, 7]).tolist() == [[0, 0, 0]]


def test_cached_fit_equals_refitting_through_the_decoder(predictor, clip):
    """The tracker fits on the decoder's logits computed once; the public recipe (kept in
    benchmarks/bench_fit.py, which times both) re-runs the decoder every iteration."""
    bench_fit = load_script("benchmarks/bench_fit.py")
    mask = clip.labels[0] == 1
    box = persam.widen_box(persam.tight_box(mask), 10, *mask.shape)
    target = persam.target_embedding(predictor, mask)
    sim = persam.confidence_maps(predictor, target.feature[None])
    prompts = persam.Prompts(
        points=torch.cat((persam.top_points(sim, 1), torch.as_tensor(persam.box_centre(box))[None, None]), 1),
        labels=torch.ones(1, 2), boxes=torch.as_tensor(box, dtype=torch.float32)[None])
    gt = torch.as_tensor(mask)[None]
    with torch.no_grad():
        cached = persam.predict(predictor, prompts).logits
    calls = []

    def rerun():
        calls.append(1)
        with torch.no_grad():
            return persam.predict(predictor, prompts).logits

    fast = persam.fit_scale_weights(cached, gt, iterations=100)
    slow = bench_fit.fit_rerunning_the_decoder(rerun, gt, iterations=100)
    assert len(calls) == 100
    assert torch.allclose(fast, slow, atol=1e-5)
    assert not torch.allclose(fast, torch.full_like(fast, 1 / 3), atol=1e-4)  # it did move


def test_joint_fit_equals_separate_fits(predictor):
    torch.manual_seed(1)
    logits = torch.randn(2, 3, 24, 32) * 4
    gt = torch.rand(2, 24, 32) > 0.6
    joint = persam.fit_scale_weights(logits, gt, iterations=50)
    for i in range(2):
        alone = persam.fit_scale_weights(logits[i:i + 1], gt[i:i + 1], iterations=50)
        assert torch.allclose(joint[i], alone[0], atol=1e-6)


def test_fuse():
    logits = torch.stack([torch.full((2, 2), v) for v in (1.0, 2.0, 4.0)])[None]
    weights = torch.tensor([[0.25, 0.5]])
    assert torch.allclose(persam.fuse(logits, weights), torch.full((1, 2, 2), 0.25 * 1 + 0.25 * 2 + 0.5 * 4))


def test_guided_attention_is_a_double_softmax():
    torch.manual_seed(0)
    plain = Attention(16, 2)
    q, k = torch.randn(2, 5, 16), torch.randn(2, 12, 16)
    bias = torch.rand(2, 1, 1, 12)
    qh = plain._separate_heads(plain.q_proj(q), 2)
    kh = plain._separate_heads(plain.k_proj(k), 2)
    vh = plain._separate_heads(plain.v_proj(k), 2)
    attn = torch.softmax(qh @ kh.transpose(-1, -2) / np.sqrt(8), -1)
    assert torch.allclose(plain.out_proj(plain._recombine_heads(attn @ vh)), plain(q, k, k), atol=1e-6)
    attn = torch.softmax(attn + bias, -1)
    expected = plain.out_proj(plain._recombine_heads(attn @ vh))
    assert torch.allclose(guided_attention(plain, q, k, k, bias), expected, atol=1e-6)
    assert not torch.allclose(guided_attention(plain, q, k, k, bias), plain(q, k, k), atol=1e-3)


def test_attention_bias_standardises_then_sigmoids():
    maps = torch.arange(64.0).reshape(1, 8, 8)
    bias = attention_bias(maps, (4, 4))
    standard = (maps - maps.mean()) / maps.std()
    small = torch.nn.functional.interpolate(standard[None], size=(4, 4), mode="bilinear")
    assert bias.shape == (1, 1, 1, 16)
    assert torch.allclose(bias.flatten(), small.sigmoid().flatten())


def test_switches_change_the_first_pass_and_leave_the_decoder_as_it_was(predictor, clip):
    mask = clip.labels[0] == 1
    target = persam.target_embedding(predictor, mask)
    sim = persam.confidence_maps(predictor, target.feature[None])
    prompts = persam.Prompts(persam.top_points(sim, 2), torch.ones(1, 2))
    decoder = predictor.model.mask_decoder
    with torch.no_grad():
        base = persam.predict(predictor, prompts).logits
        guided = persam.predict(predictor, prompts, attention_maps=sim).logits
        semantic = persam.predict(predictor, prompts, target_means=target.mean[None]).logits
        after = persam.predict(predictor, prompts).logits
    assert (base - guided).abs().max() > 1e-3 and (base - semantic).abs().max() > 1e-3
    assert torch.equal(base, after)
    assert all(type(layer.cross_attn_token_to_image) is Attention for layer in decoder.transformer.layers)
    assert decoder.transformer.guide is None


def test_semantic_prompt_adds_to_queries_not_to_positional_encoding(small_model):
    transformer = small_model.mask_decoder.transformer
    seen = {}
    c = small_model.mask_decoder.transformer_dim
    image = torch.randn(1, c, 4, 4)
    points = torch.randn(1, 3, c)
    extra = torch.randn(1, c)
    image_pe = torch.randn(1, c, 4, 4)

    def add_to(name):  # the definition, on SAM's own forward: the mean added to the queries only
        def hook(_module, args, kwargs):
            seen.setdefault(name, kwargs.get("query_pe"))
            return args, {**kwargs, name: kwargs[name] + extra[:, None]}
        return hook

    handles = [layer.register_forward_pre_hook(add_to("queries"), with_kwargs=True) for layer in transformer.layers]
    handles.append(transformer.final_attn_token_to_image.register_forward_pre_hook(add_to("q"), with_kwargs=True))
    try:
        want = transformer(image, image_pe, points)
    finally:
        for handle in handles:
            handle.remove()
    with transformer.guided(Guide(target_means=extra)):
        have = transformer(image, image_pe, points)
    assert torch.equal(seen["queries"], points)  # the positional encoding stays the points'
    assert all(torch.equal(a, b) for a, b in zip(have, want))
    assert not torch.allclose(transformer(image, image_pe, points)[0], want[0], atol=1e-3)


def test_upscaling_the_fused_low_res_equals_fusing_full_res(predictor, clip):
    mask = clip.labels[0] == 2
    box = persam.widen_box(persam.tight_box(mask), 10, *mask.shape)
    prompts = persam.Prompts(torch.as_tensor(persam.box_centre(box))[None, None], torch.ones(1, 1),
                             torch.as_tensor(box, dtype=torch.float32)[None])
    weights = torch.tensor([[0.1, 0.6]])
    with torch.no_grad():
        decoded = persam.predict(predictor, prompts)
        direct = persam.fuse(decoded.logits, weights)
        cheap = decoded.upscale(persam.fuse(decoded.low_res, weights)[:, None])[:, 0]
        assert torch.allclose(direct, cheap, atol=1e-4, rtol=1e-5)
        one, low = decoded.take(torch.tensor([2]))
        assert torch.equal(low[:, 0], decoded.low_res[:, 2])
        assert torch.allclose(one, decoded.logits[:, 2], atol=1e-5)


def test_switches_work_on_mobile_sam_decoders(tmp_path, clip):
    """vit_t's decoder comes from the mobile_sam package: the hooks must fit its classes too."""
    from conftest import save_random_checkpoint

    from persam_video.model.loading import build_model, load_sam

    path = save_random_checkpoint(lambda: build_model("vit_t"), tmp_path / "mobile_sam.pt", seed=4)
    predictor = FramePredictor(load_sam("vit_t", path, device="cpu"))
    predictor.set_image(clip.frames[0])
    target = persam.target_embedding(predictor, clip.labels[0] == 1)
    sim = persam.confidence_maps(predictor, target.feature[None])
    prompts = persam.Prompts(persam.top_points(sim, 2), torch.ones(1, 2))
    with torch.no_grad():
        base = persam.predict(predictor, prompts).low_res
        switched = persam.predict(predictor, prompts, attention_maps=sim, target_means=target.mean[None]).low_res
        again = persam.predict(predictor, prompts).low_res
    assert (base - switched).abs().max() > 1e-4
    assert torch.equal(base, again)


def test_decoders_report_the_predicted_iou_of_the_kept_mask(predictor, monkeypatch):
    """Scripted decoder passes: the score is that of the mask the cascade keeps (the first
    pass's largest for PerSAM, the fused one for PerSAM-F, then the best-scored ones), and
    stays at the last non-empty pass's when a pass comes back empty."""
    h, w = predictor.model.prompt_encoder.mask_input_size

    def scripted(areas, scores):
        low = torch.full((1, 3, h, w), -4.0)
        for k, side in enumerate(areas):
            low[0, k, :side, :side] = 4.0
        return persam.PassOutput(scores=torch.tensor([scores]), low_res=low, predictor=predictor)

    prompts = persam.Prompts(torch.tensor([[[20.0, 20.0]]]), torch.ones(1, 1), torch.tensor([[0.0, 0.0, 60.0, 60.0]]))
    cases = [
        # PerSAM: largest of pass 1 (0.3, not the best 0.9), then best of passes 2 and 3
        (persam.decode_persam, [([8, 20, 4], [0.9, 0.3, 0.5]), ([8, 8, 8], [0.1, 0.6, 0.2]),
                                ([8, 8, 8], [0.7, 0.2, 0.1])], 0.7),
        # ... and pass 3's best mask is empty: pass 2's mask and score stay
        (persam.decode_persam, [([8, 20, 4], [0.9, 0.3, 0.5]), ([8, 8, 8], [0.1, 0.6, 0.2]),
                                ([0, 8, 8], [0.7, 0.2, 0.1])], 0.6),
        # PerSAM-F: the fused score, then an empty best mask in pass 2 stops the cascade
        (lambda pr, pm: persam.decode_persam_f(pr, pm, torch.tensor([[0.25, 0.5]])),
         [([8, 8, 8], [0.4, 0.8, 0.2]), ([0, 8, 8], [0.9, 0.2, 0.1]), ([8, 8, 8], [0.5, 0.2, 0.1])],
         0.25 * 0.4 + 0.25 * 0.8 + 0.5 * 0.2),
    ]
    for decode, passes, expected in cases:
        queue = [scripted(*p) for p in passes]
        monkeypatch.setattr(decoding, "predict", lambda *a, **k: queue.pop(0))
        result = decode(predictor, prompts)
        assert bool(result.found[0]) and result.scores[0].item() == pytest.approx(expected), (passes, expected)


def test_limit_box_growth():
    previous = np.array([40, 40, 60, 60])  # 20 x 20
    small = np.array([38, 41, 62, 61])  # 24 x 20: grows 1.2x, taken
    assert persam.limit_box_growth(small, previous, 1.5) is small
    for grown in (np.array([0, 0, 200, 100]), np.array([45, 10, 100, 65])):  # a flood; a jump
        held = persam.limit_box_growth(grown, previous, 1.5)
        assert held.tolist() == previous.tolist() and held.dtype == np.int64 and held is not previous
    assert persam.limit_box_growth(np.array([45, 10, 100, 65]), previous, 8.0).tolist() == [45, 10, 100, 65]


def test_interior_point_is_deepest_inside_and_none_for_an_empty_mask():
    mask = np.zeros((40, 60), bool)
    mask[5:15, 10:50] = True  # a bar, 10 rows high ...
    mask[5:35, 10:20] = True  # ... with a leg: an L whose box centre (30, 20) is outside it
    assert not mask[20, 30]
    x, y = persam.interior_point(mask)
    assert mask[int(y), int(x)]
    dist = cv2.distanceTransform(np.pad(mask.astype(np.uint8), 1), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    assert dist[int(y), int(x)] == dist.max()
    edge = np.zeros((10, 10), bool)
    edge[:, :3] = True  # touching the frame's border: the border counts as outside
    assert persam.interior_point(edge)[0] == 1
    assert persam.interior_point(np.zeros((5, 5), bool)) is None


def test_clip_to_box_cuts_every_pass_to_the_box_prompt(predictor, monkeypatch):
    """Scripted passes whose masks spill far out of the box prompt: with ``clip_to_box`` the kept
    mask and the tight boxes that prompt the refinements stay inside it; without, they do not."""
    h, w = predictor.model.prompt_encoder.mask_input_size
    low = torch.full((1, 3, h, w), -4.0)
    low[0, :, :40, :40] = 4.0
    spill = persam.PassOutput(scores=torch.tensor([[0.5, 0.6, 0.7]]), low_res=low, predictor=predictor)
    x1, y1 = 15, 12
    prompts = persam.Prompts(torch.tensor([[[5.0, 5.0]]]), torch.ones(1, 1), torch.tensor([[0.0, 0.0, x1, y1]]))
    decoders = [persam.decode_persam,
                lambda pr, pm, **kw: persam.decode_persam_f(pr, pm, torch.tensor([[0.25, 0.5]]), **kw)]
    for decode in decoders:
        for clip_to_box in (False, True):
            boxes = []

            def scripted(pred, pm, *args, **kwargs):
                boxes.append(pm.boxes)
                return spill

            monkeypatch.setattr(decoding, "predict", scripted)
            result = decode(predictor, prompts, clip_to_box=clip_to_box)
            ys, xs = torch.nonzero(result.logits[0] > 0, as_tuple=True)
            refinements = [b[0].tolist() for b in boxes[1:] if b is not None]
            assert bool(result.found[0]) and refinements
            inside = int(xs.max()) <= x1 and int(ys.max()) <= y1
            assert inside == clip_to_box
            assert all(b[2] <= x1 and b[3] <= y1 for b in refinements) == clip_to_box
