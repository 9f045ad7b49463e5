"""torch.compile of the image encoder: the ``--compile`` rule, the cache folder, the records that
say a run was compiled, and a compiled model's masks against the eager one's."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from persam_video.batch.markers import run_settings
from persam_video.cli.common import add_model_options, model_spec
from persam_video.errors import PersamError
from persam_video.model import compiling
from persam_video.model.loading import CACHE_ENV, ModelSpec, load_sam
from persam_video.options import TrackerOptions
from persam_video.pipeline import run_numerics
from persam_video.progress import weights_digest
from persam_video.tracking.segmenter import VideoSegmenter

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_compiles_the_large_encoders_on_a_cpu_only():
    for model_type in ("vit_b", "vit_l", "vit_h"):
        assert compiling.resolve_compile("auto", model_type, CPU)
        assert not compiling.resolve_compile("auto", model_type, CUDA)
    for model_type in ("small", "vit_t"):
        assert not compiling.resolve_compile("auto", model_type, CPU)
        assert compiling.resolve_compile("on", model_type, CPU)
    assert not compiling.resolve_compile("off", "vit_b", CPU)
    with pytest.raises(PersamError, match="unknown compile mode"):
        compiling.resolve_compile("yes", "vit_b", CPU)


def parse(*argv: str) -> ModelSpec:
    parser = argparse.ArgumentParser()
    add_model_options(parser)
    return model_spec(parser.parse_args(list(argv)))


def test_fast_turns_compile_to_auto_and_a_given_flag_wins():
    assert parse().compile == "off"
    assert parse("--fast").compile == "auto"
    assert parse("--fast", "--compile", "off").compile == "off"
    assert ModelSpec.fast().compile == "auto" and ModelSpec().compile == "off"


def test_done_markers_record_a_compiled_encoder():
    options = TrackerOptions()
    assert run_settings(options, ModelSpec("vit_b", device="cpu", compile="auto"))["compiled_encoder"] is True
    assert "compiled_encoder" not in run_settings(options, ModelSpec("vit_b", device="cpu"))
    assert "compiled_encoder" not in run_settings(options, ModelSpec("small", device="cpu", compile="auto"))


def test_the_user_inductor_cache_wins_over_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, "")
    assert compiling.use_cache_folder(tmp_path / "a") == tmp_path / "a"
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, str(tmp_path / "mine"))
    assert compiling.use_cache_folder(tmp_path / "b") == tmp_path / "mine"
    assert not (tmp_path / "b").exists()


def test_compiled_model_gives_the_eager_masks(small_checkpoint, larger_clip, request, monkeypatch):
    # the project's cache folder in pytest's cache: the first run compiles (about half a minute on
    # 2 cores), later runs load the kernels
    cache = request.config.cache.mkdir("persam_video_cache")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, "")
    eager = load_sam("small", small_checkpoint, device="cpu")
    compiled = load_sam("small", small_checkpoint, device="cpu", compile="on")
    assert type(compiled.image_encoder).__name__ == "CompiledImageEncoderViT"
    assert compiled.numerics == "fp32, compiled encoder" and eager.numerics == "exact (fp32)"
    assert weights_digest(compiled) != weights_digest(eager)  # a resumed run cannot mix the two
    assert compiled.state_dict().keys() == eager.state_dict().keys()

    options = TrackerOptions(method="persam")
    runs = []
    for model in (eager, compiled):
        segmenter = VideoSegmenter(model, options)
        segmenter.seed_frame(larger_clip.frames[0], larger_clip.labels[0])
        runs.append([segmenter.step(frame) for frame in larger_clip.frames[1:]])
    scores = []
    for a, b in zip(*runs):
        for k in (1, 2):
            union = np.logical_or(a == k, b == k).sum()
            scores.append(1.0 if union == 0 else np.logical_and(a == k, b == k).sum() / union)
    assert min(scores) >= 0.99

    used = Path(os.environ[compiling.INDUCTOR_CACHE_ENV])
    assert used == Path(cache) / "compiled" and any(used.rglob("*"))
    assert compiled.image_encoder.compile_seconds() is not None
    assert "encoder compile" in run_numerics(compiled, options)
    compiling.uncompile_encoder(compiled)
    assert type(compiled.image_encoder) is type(eager.image_encoder)
    assert weights_digest(compiled) == weights_digest(eager)
