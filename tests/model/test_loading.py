"""Checkpoint loading through the user's path: real architectures with seeded random weights."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import save_random_checkpoint

from persam_video.errors import PersamError
from persam_video.model import loading as models
from persam_video.model.loading import infer_model_type, load_sam, resolve_checkpoint
from persam_video.model.small import SMALL_CONFIG, build_small_sam


def same_weights(model, path) -> bool:
    state = torch.load(path, map_location="cpu", weights_only=True)
    return all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_small_checkpoint_loads_through_the_user_path(small_checkpoint):
    model = load_sam("small", small_checkpoint, device="cpu")
    assert not model.training
    assert same_weights(model, small_checkpoint)


@pytest.mark.parametrize("size", [192, 320])
def test_small_checkpoint_of_another_input_size_loads(tmp_path, size):
    """The small model's input size comes from the file (position embedding), not from a constant."""
    build = functools.partial(build_small_sam, replace(SMALL_CONFIG, img_size=size))
    path = save_random_checkpoint(build, tmp_path / f"small_{size}.pth", seed=2)
    model = load_sam("small", path, device="cpu")
    assert model.image_encoder.img_size == size and model.prompt_encoder.image_embedding_size == (size // 16,) * 2
    assert model.prompt_encoder.input_image_size == (size, size)
    assert same_weights(model, path)


def test_vit_b_random_checkpoint_loads(tmp_path):
    path = save_random_checkpoint(lambda: models.build_model("vit_b"), tmp_path / "sam_vit_b.pth", seed=1)
    model = load_sam("vit_b", path, device="cpu")
    assert model.image_encoder.img_size == 1024 and model.image_encoder.patch_embed.proj.out_channels == 768
    assert same_weights(model, path)


def test_vit_t_random_checkpoint_loads_through_mobile_sam(tmp_path):
    import mobile_sam  # noqa: F401 - part of the test extra: it must be installed
    path = save_random_checkpoint(lambda: models.build_model("vit_t"), tmp_path / "mobile_sam.pt", seed=2)
    model = load_sam("vit_t", path, device="cpu")
    assert same_weights(model, path)


def fake_state(width: int) -> dict:
    return {"image_encoder.patch_embed.proj.weight": torch.zeros(width, 3, 16, 16),
            "mask_decoder.iou_token.weight": torch.zeros(1, 256)}


@pytest.mark.parametrize("width, kind", [(1280, "vit_h"), (1024, "vit_l"), (768, "vit_b"), (192, "small"),
                                         (333, None)])
def test_infer_model_type(width, kind):
    assert infer_model_type(fake_state(width)) == kind


def test_infer_mobile_sam():
    assert infer_model_type({"image_encoder.patch_embed.seq.0.c.weight": torch.zeros(1)}) == "vit_t"


def test_wrong_type_names_both(small_checkpoint):
    with pytest.raises(PersamError) as info:
        load_sam("vit_h", small_checkpoint, device="cpu")
    assert "small" in str(info.value) and "vit_h" in str(info.value)


def test_vit_l_file_asked_as_vit_b(tmp_path):
    path = tmp_path / "l.pth"
    torch.save(fake_state(1024), path)
    with pytest.raises(PersamError, match="holds a vit_l model, but model type vit_b"):
        load_sam("vit_b", path, device="cpu")


def test_corrupt_and_foreign_checkpoints(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(PersamError, match="cannot read checkpoint"):
        load_sam("small", junk, device="cpu")
    foreign = tmp_path / "foreign.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(PersamError, match="not a checkpoint of any known SAM model type"):
        load_sam("small", foreign, device="cpu")


def test_wrapped_state_dict_is_accepted(tmp_path, small_checkpoint):
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"model": torch.load(small_checkpoint, weights_only=True)}, wrapped)
    assert same_weights(load_sam("small", wrapped, device="cpu"), small_checkpoint)


def test_cuda_without_cuda_is_a_clear_error(small_checkpoint, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert models.resolve_device("auto").type == "cpu"
    with pytest.raises(PersamError, match="CUDA is not available"):
        load_sam("small", small_checkpoint, device="cuda")


@pytest.fixture
def http_server(tmp_path):
    """A static file server on 127.0.0.1 serving tmp_path/served."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_checks_sha256_and_uses_the_cache(http_server, tmp_path, monkeypatch, small_checkpoint):
    served, url = http_server
    data = Path(small_checkpoint).read_bytes()
    (served / "sam_vit_b_01ec64.pth").write_bytes(data)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(models.MIRROR_ENV, url)
    monkeypatch.setitem(models.CHECKPOINTS, "vit_b", models.CheckpointInfo(
        "sam_vit_b_01ec64.pth", "https://unreachable.invalid/x", hashlib.sha256(data).hexdigest()))
    path = resolve_checkpoint("vit_b", progress=False)
    assert path == tmp_path / "cache" / "sam_vit_b_01ec64.pth" and path.read_bytes() == data
    (served / "sam_vit_b_01ec64.pth").unlink()  # the second call must not need the server
    assert resolve_checkpoint("vit_b", progress=False) == path


def test_download_with_a_wrong_digest_leaves_nothing(http_server, tmp_path, monkeypatch):
    served, url = http_server
    (served / "sam_vit_l_0b3195.pth").write_bytes(b"tampered" * 1000)
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(models.MIRROR_ENV, url)
    with pytest.raises(PersamError, match="sha256"):
        resolve_checkpoint("vit_l", progress=False)
    assert not any((tmp_path / "cache").iterdir())


def test_download_failure_is_a_clear_error(http_server, tmp_path, monkeypatch):
    _, url = http_server
    monkeypatch.setenv(models.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv(models.MIRROR_ENV, url)
    with pytest.raises(PersamError, match="cannot download"):
        resolve_checkpoint("vit_h", progress=False)
    assert not any((tmp_path / "cache").iterdir())


def test_unknown_model_type():
    with pytest.raises(PersamError, match="unknown model type"):
        resolve_checkpoint("vit_x")
