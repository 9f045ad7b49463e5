"""On a CUDA GPU only (``-m cuda``, run by tools/gpu_check.sh; the CI suite leaves them out): SAM 2.1
hiera_tiny equals SAM2ImagePredictor on the GPU in fp32, and PerSAM on vit_b, hiera_tiny and
hiera_base_plus in fp16 and bf16 agrees with fp32 on a synthetic clip (seeded random weights)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_sam2 import assert_same_as_sam2, random_sam2

from persam_video.demo_clip import make_clip
from persam_video.model.fast_path import apply_precision
from persam_video.model.loading import build_model, load_sam
from persam_video.options import TrackerOptions
from persam_video.tracking.segmenter import VideoSegmenter

pytestmark = pytest.mark.cuda
AGREEMENT = 0.95  # mean IoU of reduced-precision masks against fp32's


@pytest.fixture(autouse=True)
def gpu():
    if not torch.cuda.is_available():
        pytest.fail("the cuda cases need a CUDA GPU: run tools/gpu_check.sh on a machine with one")


def test_tiny_on_cuda_equals_sam2_image_predictor(tmp_path):
    base = random_sam2("sam2.1_hiera_tiny")
    torch.save({"model": base.state_dict()}, tmp_path / "tiny.pt")
    assert_same_as_sam2(base.cuda(), load_sam("sam2.1_hiera_tiny", tmp_path / "tiny.pt", device="cuda"))


def track(model, clip):
    segmenter = VideoSegmenter(model, TrackerOptions(method="persam"))
    segmenter.seed_frame(clip.frames[0], clip.labels[0])
    return [segmenter.step(frame) for frame in clip.frames[1:]]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a > 0, b > 0).sum()
    return 1.0 if union == 0 else float(np.logical_and(a == b, a > 0).sum() / union)


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
@pytest.mark.parametrize("model_type", ["vit_b", "sam2.1_hiera_tiny", "sam2.1_hiera_base_plus"])
def test_reduced_precision_agrees_with_fp32(model_type, precision):
    clip = make_clip(seed=3, n_frames=4, size=(240, 427), n_objects=2, camera_motion=False)
    torch.manual_seed(0)
    exact = build_model(model_type).eval().requires_grad_(False).cuda()
    torch.manual_seed(0)
    fast = build_model(model_type).eval().requires_grad_(False).cuda()
    apply_precision(fast, precision, "fused", "auto")
    ious = [iou(a, b) for a, b in zip(track(exact, clip), track(fast, clip))]
    print(f"{model_type} {precision}: mean IoU vs fp32 {np.mean(ious):.4f}")
    assert np.mean(ious) >= AGREEMENT
