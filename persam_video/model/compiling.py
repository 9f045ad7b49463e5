"""torch.compile of a loaded SAM's image encoder, its compiled kernels cached on disk across runs.

:func:`compile_encoder` changes the encoder's class to a subclass whose ``forward`` runs the
installed one through ``torch.compile`` (inductor, static shapes: the encoder always sees one
padded square image), so parameters, attributes and state_dict keys stay as they were and the
resume fingerprint, which lists module classes, tells a compiled model from an eager one.

Compiling happens on the first call. Inductor keeps what it built under
``<cache>/compiled`` (``$PERSAM_VIDEO_CACHE``, default ``~/.cache/persam-video``; a
``$TORCHINDUCTOR_CACHE_DIR`` set by the user wins), so a later run, or another batch worker,
loads the kernels instead of building them again; it still traces the model (seconds).

``auto`` (what ``--fast`` picks) compiles on a CPU for the models whose encoder pass is long
enough that the one-off cost pays within a short clip (:data:`AUTO_MODELS`; measurements in
benchmarks/README.md).
"""
from __future__ import annotations

import os
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import torch

from ..errors import PersamError

COMPILE_MODES = ("auto", "on", "off")
AUTO_MODELS = ("vit_b", "vit_l", "vit_h")  # compiled by ``auto`` even when nothing is cached yet
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def resolve_compile(mode: str, model_type: str, device: torch.device) -> bool:
    """Whether the encoder is compiled: ``on``/``off`` as said; ``auto`` on a CPU for
    :data:`AUTO_MODELS`, never on other devices (not measured there)."""
    if mode not in COMPILE_MODES:
        raise PersamError(f"unknown compile mode {mode!r}: use {', '.join(COMPILE_MODES)}")
    if mode != "auto":
        return mode == "on"
    return device.type == "cpu" and model_type in AUTO_MODELS


class CompiledForward:
    """Mixin: the module's installed ``forward`` run through ``torch.compile``; the first call
    (the compile, or the cache's load, and one pass) and the second (one pass) are timed."""

    compiled_call: Optional[Callable] = None
    first_call_s: Optional[float] = None
    second_call_s: Optional[float] = None

    def forward(self, *args, **kwargs):  # noqa: D102
        if self.first_call_s is not None and self.second_call_s is not None:
            return self.compiled_call(*args, **kwargs)
        began = time.perf_counter()
        out = self.compiled_call(*args, **kwargs)
        took = time.perf_counter() - began
        if self.first_call_s is None:
            self.first_call_s = took
        else:
            self.second_call_s = took
        return out

    def compile_seconds(self) -> Optional[float]:
        """Seconds the compile (or the cache's load) took: the first call less a later one's
        time; None before the second call."""
        if self.first_call_s is None or self.second_call_s is None:
            return None
        return max(self.first_call_s - self.second_call_s, 0.0)


@lru_cache(maxsize=None)
def _compiled_class(cls: type) -> type:
    return type(f"Compiled{cls.__name__}", (CompiledForward, cls), {"__module__": __name__})


def use_cache_folder(folder: Path) -> Path:
    """Point inductor's on-disk caches at ``folder`` unless ``$TORCHINDUCTOR_CACHE_DIR`` is set
    already; returns the folder in use."""
    if not os.environ.get(INDUCTOR_CACHE_ENV):
        os.environ[INDUCTOR_CACHE_ENV] = str(folder)
    used = Path(os.environ[INDUCTOR_CACHE_ENV])
    used.mkdir(parents=True, exist_ok=True)
    return used


def compile_encoder(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """Compile ``model.image_encoder`` in place (see the module's docstring), its kernels cached in
    ``folder``."""
    encoder = model.image_encoder
    if isinstance(encoder, CompiledForward):
        return model
    use_cache_folder(folder)
    base = type(encoder)
    installed = base.forward

    def run(*args, **kwargs):
        return installed(encoder, *args, **kwargs)

    encoder.__class__ = _compiled_class(base)
    encoder.compiled_call = torch.compile(run, dynamic=False)
    return model


def uncompile_encoder(model: torch.nn.Module) -> torch.nn.Module:
    """Undo :func:`compile_encoder` (the eager forward again)."""
    encoder = model.image_encoder
    if isinstance(encoder, CompiledForward):
        encoder.__class__ = type(encoder).__mro__[2]  # (Compiled<cls>, CompiledForward, cls, ...)
        for name in ("compiled_call", "first_call_s", "second_call_s"):
            encoder.__dict__.pop(name, None)
    return model


def compile_note(model: torch.nn.Module) -> str:
    """Words for a run's summary: how long the encoder's compile took, or '' when not compiled."""
    encoder = getattr(model, "image_encoder", None)
    if not isinstance(encoder, CompiledForward) or encoder.first_call_s is None:
        return ""
    seconds = encoder.compile_seconds()
    if seconds is None:
        return f"compile + first encoder pass {encoder.first_call_s:.1f}s"
    return f"encoder compile {seconds:.1f}s"
