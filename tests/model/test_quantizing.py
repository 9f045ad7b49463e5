"""int8 quantisation of the image encoder: an explicit opt-in that replaces the encoder's Linear
layers only, says so in the numerics and the markers, and keeps the embedding close."""
from __future__ import annotations

import argparse

import pytest
import torch

from persam_video.batch.markers import run_settings
from persam_video.cli.common import add_model_options, model_spec
from persam_video.errors import PersamError
from persam_video.model.loading import ModelSpec, load_sam
from persam_video.model.quantizing import check_quantize
from persam_video.options import TrackerOptions
from persam_video.resume_file import weights_digest


def test_int8_is_opt_in_and_cpu_only():
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    assert model_spec(parser.parse_args(["--fast"])).quantize == "off"
    assert model_spec(parser.parse_args(["--quantize", "int8"])).quantize == "int8"
    assert check_quantize("int8", torch.device("cpu")) and not check_quantize("off", torch.device("cpu"))
    with pytest.raises(PersamError, match="CPU only"):
        check_quantize("int8", torch.device("cuda"))
    with pytest.raises(PersamError, match="unknown quantisation"):
        check_quantize("int4", torch.device("cpu"))
    options = TrackerOptions()
    assert run_settings(options, ModelSpec(device="cpu", quantize="int8"))["quantize"] == "int8"
    assert "quantize" not in run_settings(options, ModelSpec(device="cpu"))


def test_int8_replaces_the_encoders_linear_layers_only(small_checkpoint, small_model):
    model = load_sam("small", small_checkpoint, device="cpu", quantize="int8")
    assert model.numerics == "fp32, int8 encoder linears"
    assert not any(type(m) is torch.nn.Linear for m in model.image_encoder.modules())
    assert sum(type(m) is torch.nn.Linear for m in model.mask_decoder.modules()) == \
        sum(type(m) is torch.nn.Linear for m in small_model.mask_decoder.modules()) > 0
    assert weights_digest(model) != weights_digest(small_model)
    image = torch.rand(1, 3, 256, 256) * 255
    with torch.no_grad():
        want = small_model.image_encoder(small_model.preprocess(image))
        got = model.image_encoder(model.preprocess(image))
    assert ((got - want).norm() / want.norm()).item() < 0.1
