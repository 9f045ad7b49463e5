"""The image encoder compiled ahead of time with inductor, the compiled package cached on disk.

:func:`compile_encoder` builds the encoder as a subclass (:mod:`.rebuilding`) whose ``forward`` runs a
package built by AOTInductor (``torch.export`` of the installed forward, then
``aoti_compile_and_package``). Parameters, attributes and state_dict keys stay as they were;
the resume fingerprint, which lists module classes, tells a compiled model from an eager one.

On the first call the package is loaded from ``<cache>/compiled`` (``$PERSAM_VIDEO_CACHE``,
default ``~/.cache/persam-video``), or built there first: only a machine's first run pays the
compile, later runs (and the other batch workers, which wait on a lock while one builds) load a
shared library. The package holds the code, not the weights: the model's own tensors are handed
to it at load time, so one package serves every checkpoint of an architecture. Its name is a
digest of what the code depends on (torch version, CPU capability, module classes, tensor names,
shapes and dtypes, input shape). The kernels take the thread count at run time.

``auto`` (what ``--fast`` picks) compiles on a CPU, where a C++ compiler is installed, the models
whose first run's build pays back within a 10-second clip (:data:`AUTO_MODELS`: all but the
bundled small model; measurements in benchmarks/README.md).
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import torch

from ..errors import PersamError, error_line
from ..io.files import atomic_write
from .rebuilding import rebuilt_as

COMPILE_MODES = ("auto", "on", "off")
AUTO_MODELS = ("vit_t", "vit_b", "vit_l", "vit_h")  # compiled by ``auto`` (benchmarks/README.md has why)
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


def have_compiler() -> bool:
    """Whether a C++ compiler is on the PATH (inductor needs one to build)."""
    return any(shutil.which(name) for name in (os.environ.get("CXX", ""), "c++", "g++", "clang++") if name)


def resolve_compile(mode: str, model_type: str, device: torch.device) -> bool:
    """Whether the encoder is compiled: ``on``/``off`` as said; ``auto`` on a CPU for
    :data:`AUTO_MODELS` when a C++ compiler is installed, never on other devices (not measured)."""
    if mode not in COMPILE_MODES:
        raise PersamError(f"unknown compile mode {mode!r}: use {', '.join(COMPILE_MODES)}")
    if mode != "auto":
        return mode == "on"
    return device.type == "cpu" and model_type in AUTO_MODELS and have_compiler()


def package_key(encoder: torch.nn.Module, base: type, example: torch.Tensor) -> str:
    """The digest naming an encoder's package (see the module's docstring)."""
    tensors = [(name, list(t.shape), str(t.dtype)) for name, t in _tensors(encoder).items()]
    text = json.dumps([torch.__version__, torch.backends.cpu.get_cpu_capability(), base.__qualname__,
                       [type(m).__qualname__ for m in encoder.modules()], str(getattr(encoder, "autocast_dtype", "")),
                       tensors, list(example.shape), str(example.dtype)])
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _tensors(module: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """Every parameter and buffer of ``module`` by name (non-persistent buffers included)."""
    return {**dict(module.named_parameters()), **dict(module.named_buffers())}


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if needed), held for the block; others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(encoder: torch.nn.Module, base: type, example: torch.Tensor, package: Path) -> None:
    """Export the encoder's installed forward and compile it into ``package`` (written whole or
    not at all); tensors the package needs beyond the module's own go beside it."""
    with torch.inference_mode(False), torch.no_grad():  # export refuses inference tensors
        program = torch.export.export(rebuilt_as(encoder, base), (example.clone(),))
    own = _tensors(encoder)
    extra = {name: t for name, t in {**program.state_dict, **program.constants}.items()
             if name not in own and isinstance(t, torch.Tensor)}
    atomic_write(package.with_suffix(".extra"), lambda tmp: torch.save(extra, tmp))
    import torch._inductor as inductor

    atomic_write(package, lambda tmp: inductor.aoti_compile_and_package(
        program, package_path=tmp,
        inductor_configs={"aot_inductor.package_constants_in_so": False, "cpp.dynamic_threads": True}))


class CompiledForward:
    """Mixin: the module's ``forward`` run by a compiled package, prepared on the first call."""

    compile_folder: Path
    runner: Optional[Any] = None
    runner_shape: Optional[torch.Size] = None
    compile_s: Optional[float] = None
    compile_built: bool = False
    compile_waited: float = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if self.runner is None:
            began = time.perf_counter()
            self.runner, self.compile_built = self._prepare(x)
            self.runner_shape, self.compile_s = x.shape, time.perf_counter() - began
        if x.shape != self.runner_shape or x.device.type != "cpu":
            return type(self).__mro__[2].forward(self, x)  # (Compiled<cls>, CompiledForward, cls, ...)
        return self.runner(x)

    def _prepare(self, example: torch.Tensor):
        base = type(self).__mro__[2]
        key = package_key(self, base, example)
        package = Path(self.compile_folder) / f"encoder-{key}.pt2"
        began = time.perf_counter()
        with _locked(package.with_suffix(".lock")):
            self.compile_waited = time.perf_counter() - began  # another process building it
            built = not package.is_file()
            if built:
                try:
                    _build(self, base, example, package)
                except Exception as exc:
                    raise PersamError(f"compiling the image encoder failed ({error_line(exc)}); run with "
                                      "--compile off") from None
        runner = _Runner(package)
        extra = torch.load(str(package.with_suffix(".extra")), weights_only=True)
        available = {**_tensors(self), **extra}
        runner.load_constants({name: available[name] for name in runner.loader.get_constant_fqns()})
        return runner, built


class _Runner:
    """A package loaded by torch's C++ loader directly: ``torch._inductor.aoti_load_package`` does
    the same but imports inductor first, seconds of every start-up; that is the fallback."""

    def __init__(self, package: Path) -> None:
        make = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
        self.direct = make is not None
        if self.direct:
            self.loader = make(str(package), "model", False, 1, -1)
        else:  # pragma: no cover - other torch builds
            import torch._inductor as inductor

            self.loader = inductor.aoti_load_package(str(package))

    def load_constants(self, tensors: Dict[str, torch.Tensor]) -> None:
        """Hand the package the model's own tensors (used in place, not copied)."""
        if self.direct:
            self.loader.load_constants(tensors, False, True, True, False)
        else:  # pragma: no cover
            self.loader.load_constants(tensors, check_full_update=True, user_managed=True)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.loader.boxed_run([x])[0] if self.direct else self.loader(x)


def _compiled_class(cls: type) -> type:
    found = _CLASSES.get(cls)
    if found is None:
        found = _CLASSES[cls] = type(f"Compiled{cls.__name__}", (CompiledForward, cls), {"__module__": __name__})
    return found


_CLASSES: Dict[type, type] = {}


def use_cache_folder(folder: Path) -> Path:
    """Point inductor's own on-disk caches (used while building) into ``folder`` unless
    ``$TORCHINDUCTOR_CACHE_DIR`` is set already; returns the folder in use."""
    if not os.environ.get(INDUCTOR_CACHE_ENV):
        os.environ[INDUCTOR_CACHE_ENV] = str(Path(folder) / "inductor")
    used = Path(os.environ[INDUCTOR_CACHE_ENV])
    used.mkdir(parents=True, exist_ok=True)
    return used


def compile_encoder(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """Build ``model.image_encoder`` as its compiled class (see the module's docstring; made of the
    encoder's own parts, :mod:`.rebuilding`), its package kept in ``folder``; the build or load
    happens on the first call."""
    encoder = model.image_encoder
    if not isinstance(encoder, CompiledForward):
        use_cache_folder(folder)
        model.image_encoder = rebuilt_as(encoder, _compiled_class(type(encoder)), compile_folder=Path(folder))
    return model


def compile_note(model: torch.nn.Module) -> str:
    """Words for a run's summary: how long compiling (or loading the compiled encoder) took."""
    encoder = getattr(model, "image_encoder", None)
    if not isinstance(encoder, CompiledForward) or encoder.compile_s is None:
        return ""
    if encoder.compile_built:
        return f"encoder compiled in {encoder.compile_s:.1f}s, cached for later runs"
    waited = f", {encoder.compile_waited:.1f}s of it waiting for another process's build" \
        if encoder.compile_waited >= 0.5 else ""
    return f"compiled encoder loaded in {encoder.compile_s:.1f}s{waited}"
