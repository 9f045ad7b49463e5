"""PerSAM-F's fit on photos: the lattice's logits are SAM's post-processing at its pixels, the fast
fit reaches the photo fit (library and command line) and stays close to the exact one, progress
is reported, and the summary says which fit ran."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import run_cli
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.io.masks import write_label_png
from persam_video.persam import fit, lattice
from persam_video.photos.fit_report import SLOW_FIT_SECONDS, fit_summary
from persam_video.photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference

BIG = (300, 420)  # 126000 pixels: more than a small lattice budget, so the fast fit samples


@pytest.mark.parametrize("size", [(300, 420), (257, 131), (1000, 37)])
def test_logits_at_the_lattice_are_sams_post_processing_there(small_model, size):
    torch.manual_seed(0)
    side = small_model.image_encoder.img_size
    scale = side / max(size)
    input_size = (int(size[0] * scale + 0.5), int(size[1] * scale + 0.5))
    low = torch.randn(2, 3, side // 4, side // 4) * 5
    grid = lattice.lattice(size, budget=900)
    assert grid.rows.numel() * grid.cols.numel() <= 900
    assert float(grid.weights().sum()) == size[0] * size[1]  # every pixel stands behind one lattice pixel
    full = small_model.postprocess_masks(low, input_size, size)
    expected = full[..., grid.rows, :][..., grid.cols]
    got = lattice.logits_at(small_model, low, input_size, size, grid.rows, grid.cols)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_lattice_stride_keeps_the_budget_at_any_size():
    for size in ((10, 10), (3024, 4032), (6000, 8000), (1, 100000)):
        stride = lattice.lattice_stride(size, lattice.LATTICE_PIXELS)
        kept = -(-size[0] // stride) * -(-size[1] // stride)
        assert kept <= lattice.LATTICE_PIXELS
        assert stride == 1 or -(-size[0] // (stride - 1)) * -(-size[1] // (stride - 1)) > lattice.LATTICE_PIXELS


@pytest.fixture(scope="module")
def big_photos():
    clip = make_clip(seed=31, n_frames=2, size=BIG, n_objects=1)
    return clip.frames, clip.labels


def personalizer(model, frames, labels, mode, monkeypatch, budget=4096, heard=None):
    monkeypatch.setattr(fit, "lattice", lambda size, budget=budget, device=None: lattice.lattice(size, budget, device))
    options = PhotoOptions(method="persam-f", fit_iterations=60, fit_mode=mode)
    on_progress = None if heard is None else (lambda k, f: heard.append((k, f)))
    return ImagePersonalizer(model, [PhotoReference(frames[0], labels[0] == 1, 1)], options, on_progress)


def test_fast_changes_the_photo_fit_and_keeps_its_masks(small_model, big_photos, monkeypatch):
    frames, labels = big_photos
    calls = []
    real = lattice.logits_at
    monkeypatch.setattr(fit, "logits_at", lambda *a: calls.append(1) or real(*a))
    exact = personalizer(small_model, frames, labels, "exact", monkeypatch)
    assert not calls  # the exact fit takes every pixel
    heard = []
    fast = personalizer(small_model, frames, labels, "fast", monkeypatch, heard=heard)
    assert calls  # the fast one only the lattice's
    assert not torch.equal(fast.weights, exact.weights)
    assert float((fast.weights - exact.weights).abs().max()) < 2e-3
    a, b = exact.segment(frames[1]).objects[0].mask, fast.segment(frames[1]).objects[0].mask
    assert (a | b).sum() == 0 or (a & b).sum() / (a | b).sum() >= 0.99
    fractions = [f for k, f in heard]
    assert {k for k, _ in heard} == {1} and fractions == sorted(fractions) and fractions[-1] == 1.0
    assert len(fractions) == 60  # every iteration of 60 (at most about a hundred calls)


def test_the_summary_says_which_fit_ran_and_what_fast_would_do(small_model, big_photos, monkeypatch):
    frames, labels = big_photos
    made = personalizer(small_model, frames, labels, "exact", monkeypatch)
    assert made.fit_seconds > 0
    made.fit_seconds = SLOW_FIT_SECONDS - 1  # a quick exact fit: no hint
    lines = fit_summary(made)
    assert len(lines) == 1 and "exact" in lines[0] and "60 iterations" in lines[0]
    made.fit_seconds = SLOW_FIT_SECONDS + 1
    lines = fit_summary(made)
    assert len(lines) == 2 and "--fast" in lines[1]
    made.options = PhotoOptions(method="persam-f", fit_mode="fast")
    assert len(fit_summary(made)) == 1
    made.options = PhotoOptions(method="persam")
    assert fit_summary(made) == []


@pytest.mark.parametrize("flags, mode", [([], "exact"), (["--fast"], "fast"), (["--fit-mode", "fast"], "fast")])
def test_images_fast_reaches_the_photo_fit(small_checkpoint, big_photos, tmp_path, capsys, monkeypatch, flags, mode):
    frames, labels = big_photos
    Image.fromarray(frames[0]).save(tmp_path / "ref.png")
    write_label_png(tmp_path / "ref_mask.png", labels[0])
    Image.fromarray(frames[1]).save(tmp_path / "photo.png")
    modes = []
    real = fit.fit_pixels
    monkeypatch.setattr(fit, "fit_pixels", lambda loss, *a: modes.append(loss.weight is not None) or real(loss, *a))
    code, _, err = run_cli(["images", "--ref-image", tmp_path / "ref.png", "--ref-mask", tmp_path / "ref_mask.png",
                            tmp_path / "photo.png", "--out", tmp_path / "out", "--method", "persam-f",
                            "--fit-iterations", "5", "--checkpoint", small_checkpoint, "--model-type", "small",
                            "--device", "cpu", *flags], capsys)
    assert code == 0, err
    assert modes == [mode == "fast"]  # a weighted (lattice) loss only with the fast fit
    assert f"PerSAM-F fit: {mode}, 5 iterations, 1 object(s)" in err
    assert (tmp_path / "out" / "photo.png").is_file()
    assert np.asarray(Image.open(tmp_path / "out" / "photo.png")).shape == BIG
