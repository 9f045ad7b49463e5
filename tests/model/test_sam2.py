"""SAM 2.1 through persam-video's model layer: masks equal to sam2's own SAM2ImagePredictor on
seeded random weights (clicks, boxes, mask prompts), checkpoint checks that name what a wrong file
holds, and the one-line error without the sam2 package."""
from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli, write_frame_folder, write_seed
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.errors import PersamError
from persam_video.io.masks import read_label_png
from persam_video.model.loading import MODEL_TYPES, load_sam
from persam_video.model.predictor import FramePredictor
from persam_video.model.sam2_checkpoints import SAM2_MODEL_TYPES, SAM2_SIZES, describe_sam2_state

warnings.filterwarnings("ignore", message=".*cannot import name '_C'.*")
from sam2.build_sam import build_sam2  # noqa: E402  (the [sam2] extra is part of the test install)


def random_sam2(model_type: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """sam2's own SAM2Base of ``model_type`` with seeded random weights (as SAM2ImagePredictor builds it)."""
    torch.manual_seed(seed)
    extra = [f"++model.{k}={v}" for k, v in overrides.items()]
    return build_sam2(SAM2_SIZES[model_type].config, None, device="cpu", hydra_overrides_extra=extra)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(sam2's model, the file it was saved to) for hiera_tiny with seeded random weights."""
    base = random_sam2("sam2.1_hiera_tiny")
    path = tmp_path_factory.mktemp("sam2") / "tiny_random.pt"
    torch.save({"model": base.state_dict()}, path)  # the official files wrap the state_dict so
    return base, path


PROMPTS = {
    "one click": dict(point_coords=np.array([[100.0, 50.0]]), point_labels=np.array([1]), multimask_output=True),
    "two clicks": dict(point_coords=np.array([[100.0, 50.0], [210.0, 130.0]]), point_labels=np.array([1, 0]),
                       multimask_output=False),
    "box": dict(box=np.array([10.0, 20.0, 300.0, 250.0]), multimask_output=False),
    "click and box": dict(point_coords=np.array([[120.0, 90.0]]), point_labels=np.array([1]),
                          box=np.array([10.0, 20.0, 300.0, 250.0]), multimask_output=True),
}


def assert_same_as_sam2(base: torch.nn.Module, model: torch.nn.Module) -> None:
    """Every prompt of PROMPTS, then each again with the best mask's logits as mask prompt: the same
    masks, scores and (clamped, as sam2 returns them) low-res logits as SAM2ImagePredictor's."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    image = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    reference, ours = SAM2ImagePredictor(base), FramePredictor(model)
    reference.set_image(image)
    ours.set_image(image)
    assert torch.equal(reference._features["image_embed"], ours.features)
    for name, prompt in PROMPTS.items():
        theirs, mine = reference.predict(**prompt), ours.predict(**prompt)
        assert np.array_equal(theirs[0].astype(bool), mine[0]), name
        assert np.array_equal(theirs[1], mine[1]), name
        assert np.array_equal(theirs[2], np.clip(mine[2], -32, 32)), name
        best = int(np.argmax(mine[1]))
        again_theirs = reference.predict(**prompt, mask_input=theirs[2][best][None])
        again_mine = ours.predict(**prompt, mask_input=mine[2][best][None])
        assert np.array_equal(again_theirs[0].astype(bool), again_mine[0]), f"{name} + mask prompt"
        assert 0 < again_mine[0].mean() < 1 or 0 < mine[0].mean() < 1, "degenerate masks prove nothing"


def test_model_types_listed():
    assert set(SAM2_MODEL_TYPES) <= set(MODEL_TYPES)


def test_tiny_equals_sam2_image_predictor(tiny):
    base, path = tiny
    assert_same_as_sam2(base, load_sam("sam2.1_hiera_tiny", path, device="cpu"))


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"])
def test_larger_sizes_equal_sam2_image_predictor(model_type, tmp_path):
    base = random_sam2(model_type)
    path = tmp_path / "random.pt"
    torch.save({"model": base.state_dict()}, path)
    assert_same_as_sam2(base, load_sam(model_type, path, device="cpu"))


def one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text
    return text


def test_wrong_size_is_named(tiny):
    with pytest.raises(PersamError) as exc:
        load_sam("sam2.1_hiera_small", tiny[1], device="cpu")
    assert "holds a sam2.1_hiera_tiny model" in one_line(exc)


def test_sam2_not_21_is_named(tiny, tmp_path):
    state = {k: v for k, v in tiny[0].state_dict().items() if k != "no_obj_embed_spatial"}
    assert describe_sam2_state(state) == "a SAM 2 (not 2.1) hiera_tiny model"
    torch.save({"model": state}, tmp_path / "sam2.pt")
    with pytest.raises(PersamError) as exc:
        load_sam("sam2.1_hiera_tiny", tmp_path / "sam2.pt", device="cpu")
    assert "holds a SAM 2 (not 2.1) hiera_tiny model" in one_line(exc)


def test_sam_file_asked_as_sam2_is_named(small_checkpoint):
    with pytest.raises(PersamError) as exc:
        load_sam("sam2.1_hiera_tiny", small_checkpoint, device="cpu")
    assert "holds a small model" in one_line(exc)


def test_sam2_file_asked_as_sam_is_named(tiny):
    with pytest.raises(PersamError) as exc:
        load_sam("vit_b", tiny[1], device="cpu")
    assert "holds a sam2.1_hiera_tiny model" in one_line(exc)


def test_missing_package_names_the_extra(tiny, monkeypatch):
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)  # import fails as without the package
    with pytest.raises(PersamError) as exc:
        load_sam("sam2.1_hiera_tiny", tiny[1], device="cpu")
    assert "pip install -e '.[sam2]'" in one_line(exc)


@pytest.fixture
def one_object(tmp_path):
    """Two frames of one object as a frame folder, and the seed mask of the first."""
    clip = make_clip(seed=4, n_frames=2, size=(72, 96), n_objects=1, camera_motion=False)
    return clip, write_frame_folder(tmp_path / "frames", clip.frames), write_seed(tmp_path / "seed.png", clip.labels[0])


def sam2_args(tiny):
    return ["--model-type", "sam2.1_hiera_tiny", "--checkpoint", tiny[1], "--device", "cpu", "--quiet"]


def test_segment_runs_sam2(tiny, one_object, tmp_path, capsys):
    clip, frames, seed = one_object
    code, _, err = run_cli(["segment", frames, "--mask", seed, "--out", tmp_path / "masks", "--method", "persam",
                            *sam2_args(tiny)], capsys)
    assert code == 0, err
    assert read_label_png(tmp_path / "masks" / "00001.png").shape == clip.labels[0].shape


@pytest.mark.slow  # the photo path runs on SAM 2.1 in CI at input size 256 (tests/persam/test_sam2_persam.py)
def test_images_runs_sam2(tiny, one_object, tmp_path, capsys):
    clip, frames, seed = one_object
    Image.fromarray(clip.frames[1]).save(tmp_path / "photo.png")
    code, _, err = run_cli(["images", "--ref-image", frames / "00000.png", "--ref-mask", seed, tmp_path / "photo.png",
                            "--out", tmp_path / "labels", *sam2_args(tiny)], capsys)
    assert code == 0, err
    assert read_label_png(tmp_path / "labels" / "photo.png").shape == clip.labels[0].shape


def test_batch_runs_sam2(tiny, one_object, tmp_path, capsys):
    """A clip of a batch manifest goes to a worker process that loads SAM 2.1 from the spec."""
    clip, frames, seed = one_object
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"video,mask\n{frames},{seed}\n")
    code, _, err = run_cli(["batch", manifest, "--out", tmp_path / "results", "--method", "persam", *sam2_args(tiny)],
                           capsys)
    assert code == 0, err
    written = sorted((tmp_path / "results").rglob("00001.png"))
    assert len(written) == 1 and read_label_png(written[0]).shape == clip.labels[0].shape


def test_command_without_sam2_is_one_line(tiny, one_object, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "sam2.build_sam", None)
    _, frames, seed = one_object
    code, _, err = run_cli(["segment", frames, "--mask", seed, "--out", tmp_path / "masks", *sam2_args(tiny)], capsys)
    assert_one_line_error(code, err, "pip install -e '.[sam2]'")
