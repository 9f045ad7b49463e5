"""Import ``segment_anything``'s modules without paying for torchvision.

``segment_anything/__init__.py`` imports its ``SamPredictor`` and automatic mask generator,
which import torchvision, whose own ``__init__`` imports ``torch._dynamo``: a large share of the
start-up (figures in benchmarks/README.md), paid by every ``import segment_anything.modeling``
because a package's ``__init__`` runs before any of its submodules. persam-video needs only the model classes
(``segment_anything.modeling``, ``segment_anything.build_sam``) and has its own predictor
(:mod:`persam_video.model.predictor`).

:func:`defer_package_init` registers the ``segment_anything`` package with its ``__init__`` not
run yet: its submodules import as usual, and the first use of a name of the package itself
(``from segment_anything import SamPredictor``, ``segment_anything.sam_model_registry``) runs the
real ``__init__`` then (PEP 562 module ``__getattr__``), so code that wants those names gets them.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading
from typing import Any

PACKAGE = "segment_anything"
EAGER_ENV = "PERSAM_VIDEO_EAGER_IMPORTS"  # set to 1: import segment_anything the ordinary way


def defer_package_init(package: str = PACKAGE) -> bool:
    """Register ``package`` (not imported yet) with its ``__init__`` deferred to the first use of
    one of its own names. Returns True when it did; False when the package is already imported,
    is not installed (its import fails later, as usual), or ``$PERSAM_VIDEO_EAGER_IMPORTS`` is 1."""
    if package in sys.modules or os.environ.get(EAGER_ENV, "") not in ("", "0"):
        return False
    spec = importlib.util.find_spec(package)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return False
    module = importlib.util.module_from_spec(spec)
    lock = threading.RLock()
    running = threading.local()

    def __getattr__(name: str) -> Any:  # noqa: N807 (PEP 562)
        if name.startswith("__") and name != "__all__":
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        with lock:  # a second thread waits here until the first has run __init__
            if getattr(running, "active", False):
                # __init__ is running in this thread and looks a name up (e.g. `from . import x`
                # checks the package first): not there yet, as in any package being initialised
                raise AttributeError(f"partially initialised module {package!r} has no attribute {name!r}")
            if module.__dict__.get("__getattr__") is __getattr__:
                running.active = True
                try:
                    spec.loader.exec_module(module)
                finally:
                    running.active = False
                if module.__dict__.get("__getattr__") is __getattr__:
                    del module.__dict__["__getattr__"]
        try:
            return module.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None

    __getattr__.deferred_init = True
    module.__getattr__ = __getattr__
    sys.modules[package] = module
    return True


def init_deferred(package: str = PACKAGE) -> bool:
    """Whether ``package`` is imported with its ``__init__`` still deferred (not run yet)."""
    module = sys.modules.get(package)
    hook = None if module is None else vars(module).get("__getattr__")
    return bool(getattr(hook, "deferred_init", False))
