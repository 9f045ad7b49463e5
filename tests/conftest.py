"""Shared fixtures: seeded random-weight checkpoints saved to disk, synthetic clips and videos."""
from __future__ import annotations

import functools
import os
from dataclasses import replace
from pathlib import Path
from typing import Callable

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from persam_video.cli import main
from persam_video.demo_clip import make_clip
from persam_video.io.masks import write_label_png
from persam_video.model.fast_path import NATIVE_BF16_ENV
from persam_video.model.loading import load_sam
from persam_video.model.small import SMALL_CONFIG, build_small_sam
from persam_video.runtime.system import THREADS_ENV

# Every command in the tests runs on 2 threads, whatever the CPU count and the load: PerSAM-F's fit
# follows the thread count in its last bits, and the byte-for-byte comparisons must not depend on
# what else the machine runs (the automatic policy is tested on its own, in test_system).
os.environ[THREADS_ENV] = "2"

TEST_SMALL_SIZE = 256  # input size of the random small checkpoint the tests use

CLIP_SIZE = (96, 128)
REPO = Path(__file__).resolve().parent.parent


def load_script(relative: str):
    """A script of the repository (tools/ and benchmarks/ are not packages) imported as a module,
    e.g. ``load_script("benchmarks/bench_fit.py")``."""
    import importlib.util
    import sys

    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_tool(name: str):
    """A script of tools/ imported as a module, e.g. ``load_tool("loss_curve")``."""
    return load_script(f"tools/{name}.py")


def save_random_checkpoint(build: Callable[[], torch.nn.Module], path: Path, seed: int = 0) -> Path:
    """Build a model with seeded random (default-initialised) weights; save its state_dict like a real file."""
    torch.manual_seed(seed)
    torch.save(build().state_dict(), path)
    return path


BF16_MACHINES = pytest.mark.parametrize("machine_bf16", [False, True], ids=["cpu-without-bf16", "cpu-with-bf16"],
                                        indirect=True)


@pytest.fixture
def machine_bf16(request):
    """Pretend the CPU lacks or has native bf16 (``$PERSAM_VIDEO_NATIVE_BF16``, which worker processes
    inherit), so a test that compares two paths runs both machines' defaults on any machine. Use it
    through :data:`BF16_MACHINES`."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(NATIVE_BF16_ENV, "1" if request.param else "0")
        yield request.param


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory) -> Path:
    """A 'small' SAM checkpoint with seeded random weights, at input size 256 (the tests run it on
    many frames; the input size is read back from the file, see test_models)."""
    build = functools.partial(build_small_sam, replace(SMALL_CONFIG, img_size=TEST_SMALL_SIZE))
    return save_random_checkpoint(build, tmp_path_factory.mktemp("ckpt") / "small_random.pth")


@pytest.fixture(scope="session")
def small_model(small_checkpoint):
    """The random-weight small SAM, loaded through the user's path."""
    torch.manual_seed(0)
    return load_sam("small", small_checkpoint, device="cpu")


def relabel(labels: np.ndarray, mapping: dict) -> np.ndarray:
    """Map object ids (e.g. {1: 3, 2: 7}); void and background stay."""
    out = labels.copy()
    for old, new in mapping.items():
        out[labels == old] = new
    return out


@pytest.fixture(scope="session")
def clip():
    """A 12-frame synthetic clip with two moving textured objects (ids 1, 2)."""
    return make_clip(seed=3, n_frames=12, size=CLIP_SIZE, n_objects=2, camera_motion=False)


@pytest.fixture(scope="session")
def larger_clip():
    """5 frames of 240x427 for the fast path's mask agreement: on the small test clip one pixel of
    boundary is already 3 % of IoU (bf16 is emulated, slowly, on CPUs without native bf16)."""
    return make_clip(seed=3, n_frames=5, size=(240, 427), n_objects=2, camera_motion=False)


def write_mp4(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """Write frames as an H.264 mp4 (lossy; for pipeline tests)."""
    iio.imwrite(path, frames, extension=".mp4", fps=fps, macro_block_size=1)
    return path


def write_frame_folder(folder: Path, frames: np.ndarray) -> Path:
    """Write frames as 00000.png, 00001.png, ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, frame in enumerate(frames):
        iio.imwrite(folder / f"{i:05d}.png", frame)
    return folder


def write_seed(path: Path, labels: np.ndarray) -> Path:
    """Write a seed label map as an indexed DAVIS PNG."""
    write_label_png(path, labels)
    return path


def run_cli(args, capsys):
    """Run ``persam-video ARGS`` in-process; returns (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *needles):
    """A user error: exit 2, one line on stderr naming every needle, no traceback."""
    assert code == 2
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("persam-video: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="session")
def sam2_tiny_256():
    """SAM 2.1 hiera_tiny with seeded random weights at input size 256 (16 x 16 embedding grid), wrapped
    as persam-video wraps it: the image path at a sixteenth of the 1024 model's cost, for the PerSAM tests
    (the size is sam2's own config value, so it cannot come from a checkpoint file)."""
    from sam2.build_sam import build_sam2

    from persam_video.model.sam2_checkpoints import SAM2_SIZES
    from persam_video.model.sam2_model import Sam2Image

    torch.manual_seed(0)
    base = build_sam2(SAM2_SIZES["sam2.1_hiera_tiny"].config, None, device="cpu",
                      hydra_overrides_extra=["++model.image_size=256"])
    return Sam2Image(base, "sam2.1_hiera_tiny").requires_grad_(False).eval()
