"""The compiled image encoder: the ``--compile`` rule, the cache folder and its lock, the records
that say a run was compiled, and a compiled model's masks against the eager one's."""
from __future__ import annotations

import argparse
import os
import threading
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
from persam_video.resume_file import weights_digest
from persam_video.tracking.segmenter import VideoSegmenter

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_compiles_the_real_encoders_on_a_cpu_with_a_compiler(monkeypatch):
    monkeypatch.setattr(compiling, "have_compiler", lambda: True)
    for model_type in ("vit_t", "vit_b", "vit_l", "vit_h"):
        assert compiling.resolve_compile("auto", model_type, CPU)
        assert not compiling.resolve_compile("auto", model_type, CUDA)
    assert not compiling.resolve_compile("auto", "small", CPU)
    assert compiling.resolve_compile("on", "small", CPU)
    monkeypatch.setattr(compiling, "have_compiler", lambda: False)
    assert not compiling.resolve_compile("auto", "vit_b", CPU)
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


def test_done_markers_record_a_compiled_encoder(monkeypatch):
    monkeypatch.setattr(compiling, "have_compiler", lambda: True)
    options = TrackerOptions()
    assert run_settings(options, ModelSpec("vit_b", device="cpu", compile="auto"))["compiled_encoder"] is True
    assert "compiled_encoder" not in run_settings(options, ModelSpec("vit_b", device="cpu"))
    assert "compiled_encoder" not in run_settings(options, ModelSpec("small", device="cpu", compile="auto"))


def test_the_user_inductor_cache_wins_over_the_project_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, "")
    assert compiling.use_cache_folder(tmp_path / "a") == tmp_path / "a" / "inductor"
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, str(tmp_path / "mine"))
    assert compiling.use_cache_folder(tmp_path / "b") == tmp_path / "mine"
    assert not (tmp_path / "b").exists()


def track(model, clip) -> list:
    segmenter = VideoSegmenter(model, TrackerOptions(method="persam"))
    segmenter.seed_frame(clip.frames[0], clip.labels[0])
    return [segmenter.step(frame) for frame in clip.frames[1:]]


def mean_ious(runs_a: list, runs_b: list, ids=(1, 2)) -> list:
    scores = []
    for a, b in zip(runs_a, runs_b):
        for k in ids:
            union = np.logical_or(a == k, b == k).sum()
            scores.append(1.0 if union == 0 else np.logical_and(a == k, b == k).sum() / union)
    return scores


def test_the_compiled_class_runs_its_package_and_says_how_long_it_took(small_checkpoint, larger_clip, tmp_path,
                                                                       monkeypatch):
    # the package replaced by the eager forward: the dispatch, the timing and the records, without a compile
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, str(tmp_path / "inductor"))
    eager = load_sam("small", small_checkpoint, device="cpu")
    model = load_sam("small", small_checkpoint, device="cpu", compile="on")
    base = type(eager.image_encoder)
    calls = []

    def prepare(self, example):
        calls.append(tuple(example.shape))
        return (lambda x: base.forward(self, x)), True

    monkeypatch.setattr(compiling.CompiledForward, "_prepare", prepare)
    assert type(model.image_encoder).__name__ == "CompiledImageEncoderViT"
    assert model.numerics == "fp32, compiled encoder" and eager.numerics == "exact (fp32)"
    assert weights_digest(model) != weights_digest(eager)  # a resumed run cannot mix the two
    assert model.state_dict().keys() == eager.state_dict().keys()
    assert run_numerics(model, TrackerOptions()) == "fp32, compiled encoder, exact fit"
    assert mean_ious(track(model, larger_clip), track(eager, larger_clip)) == [1.0] * 8
    assert calls == [(1, 3, 256, 256)]  # prepared once
    assert "encoder compiled in" in run_numerics(model, TrackerOptions(method="persam"))
    assert type(eager.image_encoder) is base and weights_digest(eager) == weights_digest(
        load_sam("small", small_checkpoint, device="cpu"))


def test_package_names_follow_the_architecture_not_the_weights(small_checkpoint):
    one, two = (load_sam("small", small_checkpoint, device="cpu") for _ in range(2))
    with torch.no_grad():
        two.image_encoder.patch_embed.proj.weight.mul_(2)
    fused = load_sam("small", small_checkpoint, device="cpu", attention="fused")
    example = torch.zeros(1, 3, 256, 256)
    key = compiling.package_key(one.image_encoder, type(one.image_encoder), example)
    assert key == compiling.package_key(two.image_encoder, type(two.image_encoder), example)
    assert key != compiling.package_key(fused.image_encoder, type(fused.image_encoder), example)
    assert key != compiling.package_key(one.image_encoder, type(one.image_encoder), torch.zeros(1, 3, 128, 128))


@pytest.mark.slow
def test_compiled_model_gives_the_eager_masks(small_checkpoint, larger_clip, request, monkeypatch):
    # a real AOTInductor build (a minute or two on 2 cores), kept in pytest's cache: later runs load it
    cache = request.config.cache.mkdir("persam_video_cache")
    monkeypatch.setenv(CACHE_ENV, str(cache))
    monkeypatch.setenv(compiling.INDUCTOR_CACHE_ENV, "")
    eager = load_sam("small", small_checkpoint, device="cpu")
    compiled = load_sam("small", small_checkpoint, device="cpu", compile="on")
    image = torch.rand(1, 3, 256, 256) * 255
    with torch.no_grad():
        torch.testing.assert_close(compiled.image_encoder(compiled.preprocess(image)),
                                   eager.image_encoder(eager.preprocess(image)), rtol=1e-4, atol=1e-4)
    assert min(mean_ious(track(compiled, larger_clip), track(eager, larger_clip))) >= 0.99
    assert list((Path(cache) / "compiled").glob("encoder-*.pt2"))
    assert Path(os.environ[compiling.INDUCTOR_CACHE_ENV]) == Path(cache) / "compiled" / "inductor"
    again = load_sam("small", small_checkpoint, device="cpu", compile="on")
    with torch.no_grad():
        again.image_encoder(again.preprocess(image))
    assert not again.image_encoder.compile_built and "loaded" in compiling.compile_note(again)


def test_processes_sharing_the_cache_build_a_package_once(small_checkpoint, tmp_path, monkeypatch):
    # two models prepared at once (threads: flock locks conflict between open files as between processes);
    # the build and the loader are stand-ins, the lock and the cache check are the module's own
    builds = []

    def build(encoder, base, example, package):
        builds.append(package.name)
        torch.save({}, package.with_suffix(".extra"))
        package.write_bytes(b"package")

    class Loaded:
        def __init__(self, package):
            self.loader = self

        def get_constant_fqns(self):
            return []

        def load_constants(self, tensors):
            pass

    monkeypatch.setattr(compiling, "_build", build)
    monkeypatch.setattr(compiling, "_Runner", Loaded)
    models = [compiling.compile_encoder(load_sam("small", small_checkpoint, device="cpu"), tmp_path)
              for _ in range(2)]
    example = torch.zeros(1, 3, 256, 256)
    threads = [threading.Thread(target=m.image_encoder._prepare, args=(example,)) for m in models]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(builds) == 1 and (tmp_path / builds[0]).is_file()
