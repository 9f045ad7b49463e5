"""The fast path of a loaded SAM: reduced precision for the image encoder and fused attention.

Applied once, at load time (:func:`apply_precision`, called by ``load_sam``), by building the
model's modules as the fast path's subclasses out of their own parts (:mod:`.rebuilding`), so
nothing downstream (predictor, tracker) needs to know:

- ``fp32``: the model is left exactly as segment_anything built it (results byte-identical);
- ``bf16`` / ``fp16``: the image encoder runs under ``torch.autocast`` and hands back float32
  embeddings; the prompt encoder, the mask decoder and everything after stay in float32
  (thresholds at 0 on the decoder's logits decide the masks);
- fused attention: every attention module of encoder and decoder computes with one
  ``scaled_dot_product_attention`` call (:mod:`persam_video.model.fast_attention`); equal to
  float rounding, so it is off on the fp32 path unless asked for;
- fast decoder: the mask decoder's forward reordered for less work
  (:mod:`persam_video.model.fast_decoder`); equal to float rounding, on with fused attention.

``auto`` picks bf16 on a CPU with native bf16 instructions (``avx512_bf16`` or ``amx_bf16`` in
the kernel's CPU flags, or ``$PERSAM_VIDEO_NATIVE_BF16`` set to 1 or 0 to say so), bf16 on a CUDA
device that supports it (fp16 on one that does not), and fp32 everywhere else: bf16 emulated
without those instructions is several times slower than fp32.

The default everywhere is the exact path; :data:`FAST_MODEL` is what ``--fast`` turns on (with
``compile`` auto: :mod:`persam_video.model.compiling`, applied by ``load_sam`` after this).
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Dict

import torch

from ..errors import PersamError
from .rebuilding import rebuilt_as

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
ATTENTION_MODES = ("auto", "fused", "plain")
DECODER_MODES = ("auto", "fast", "exact")
DTYPES: Dict[str, torch.dtype] = {"bf16": torch.bfloat16, "fp16": torch.float16}
_NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
NATIVE_BF16_ENV = "PERSAM_VIDEO_NATIVE_BF16"
# The fast path's model settings (with TrackerOptions' fast fit): measured to keep the masks.
FAST_MODEL: Dict[str, str] = {"precision": "auto", "attention": "fused", "decoder": "fast", "compile": "auto"}


@lru_cache(maxsize=None)
def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> frozenset:
    """The CPU's feature flags as the kernel reports them (empty where there is no such file)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_native_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16); ``$PERSAM_VIDEO_NATIVE_BF16``
    (1 or 0) overrides the flags, so tests can take either machine's path on any machine."""
    said = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if said in ("0", "1"):
        return said == "1"
    if said:
        raise PersamError(f"${NATIVE_BF16_ENV} must be 1 or 0, not {said!r}")
    return any(flag in cpu_flags(cpuinfo) for flag in _NATIVE_BF16_FLAGS)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` made concrete for ``device`` (see the module's docstring); others are checked."""
    if precision not in PRECISIONS:
        raise PersamError(f"unknown precision {precision!r}: use {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def resolve_attention(attention: str, precision: str) -> bool:
    """Whether attention is fused: ``auto`` fuses on the reduced-precision paths only."""
    if attention not in ATTENTION_MODES:
        raise PersamError(f"unknown attention mode {attention!r}: use {', '.join(ATTENTION_MODES)}")
    return attention == "fused" or (attention == "auto" and precision != "fp32")


def resolve_decoder(decoder: str, fused_attention: bool) -> bool:
    """Whether the mask decoder runs :mod:`persam_video.model.fast_decoder`'s forward: ``auto``
    follows attention (fast when attention is fused)."""
    if decoder not in DECODER_MODES:
        raise PersamError(f"unknown decoder mode {decoder!r}: use {', '.join(DECODER_MODES)}")
    return decoder == "fast" or (decoder == "auto" and fused_attention)


class AutocastForward:
    """Mixin: the module's forward under ``torch.autocast`` (dtype in ``autocast_dtype``),
    its output handed back as float32."""

    autocast_dtype: torch.dtype

    def forward(self, *args, **kwargs):  # noqa: D102
        device_type = next(self.parameters()).device.type
        with torch.autocast(device_type, dtype=self.autocast_dtype):
            out = super().forward(*args, **kwargs)
        return out.float()


@lru_cache(maxsize=None)
def _autocast_class(cls: type) -> type:
    return type(f"Autocast{cls.__name__}", (AutocastForward, cls), {"__module__": __name__})


def autocast_module(module: torch.nn.Module, dtype: torch.dtype) -> torch.nn.Module:
    """``module`` built to run under autocast to ``dtype`` (same parameters, same attributes such as
    an encoder's ``img_size``, same state_dict keys); the caller puts it in the module's place."""
    cls = type(module) if isinstance(module, AutocastForward) else _autocast_class(type(module))
    return rebuilt_as(module, cls, autocast_dtype=dtype)


def apply_precision(model: torch.nn.Module, precision: str = "fp32", attention: str = "auto",
                    decoder: str = "auto", compiled: bool = False, quantized: bool = False) -> str:
    """Put ``model`` (a loaded SAM, on its device) on the path that ``precision``, ``attention``
    and ``decoder`` ask for, its modules built anew where they change; returns the concrete
    precision. ``fp32`` with attention and decoder ``auto`` (or ``plain`` / ``exact``) changes nothing.
    ``compiled`` and ``quantized`` only say, in ``model.numerics``, that the caller compiles or
    quantises the encoder (:mod:`persam_video.model.compiling`, :mod:`persam_video.model.quantizing`)."""
    device = next(model.parameters()).device
    resolved = resolve_precision(precision, device)
    fused = resolve_attention(attention, resolved)
    if fused:
        from .fast_attention import fuse_attention
        fuse_attention(model)
    fast_decoder = resolve_decoder(decoder, fused)
    if fast_decoder:
        from .fast_decoder import speed_up_decoder
        speed_up_decoder(model)
    if resolved != "fp32":
        model.image_encoder = autocast_module(model.image_encoder, DTYPES[resolved])
    model.precision = resolved
    model.numerics = describe_numerics(resolved, fused, fast_decoder, compiled, quantized)
    return resolved


def describe_numerics(precision: str, fused_attention: bool, fast_decoder: bool, compiled: bool = False,
                      quantized: bool = False) -> str:
    """How a loaded model computes, in words for a run's summary: ``exact (fp32)`` or the fast parts."""
    if precision == "fp32" and not (fused_attention or fast_decoder or compiled or quantized):
        return "exact (fp32)"
    parts = ([precision] + ["int8 encoder linears"] * quantized + ["fused attention"] * fused_attention
             + ["fast decoder"] * fast_decoder + ["compiled encoder"] * compiled)
    return ", ".join(parts)
