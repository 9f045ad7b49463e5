"""Load-time construction of persam-video's module classes from the modules segment_anything (or
MobileSAM, or sam2) built, so a loaded model holds the intended modules from the start.

A persam-video module class here is a subclass of an installed one that adds behaviour and no
parameters; :func:`rebuilt_as` makes a new instance of it out of a built module's own parameters,
buffers, submodules and settings (the weights are not copied), and :func:`replace_modules` puts
such new modules where the built ones were. Nothing is switched back afterwards: a model is
loaded once for the path it runs (``load_sam``).

A class here whose default call computes exactly as another class does says so in
``fingerprint_name`` (the name a resume file's fingerprint lists for the module,
:func:`persam_video.resume_file.weights_digest`), so building the model this way leaves the
progress files of earlier versions valid.
"""
from __future__ import annotations

from typing import Callable, Optional, TypeVar

import torch

M = TypeVar("M", bound=torch.nn.Module)


def rebuilt_as(module: torch.nn.Module, cls: type, **settings: object) -> torch.nn.Module:
    """A new ``cls`` instance made of ``module``'s parts (``cls`` a subclass of ``module``'s class
    adding no parameters, or a class it extends: the installed one, for a view of the module as
    built), with ``settings`` as its own attributes; ``module`` is to be dropped."""
    if not (issubclass(cls, type(module)) or issubclass(type(module), cls)):
        raise TypeError(f"{cls.__name__} and {type(module).__name__} are not one line of classes")
    new = cls.__new__(cls)
    new.__dict__.update(module.__dict__)
    for name, value in settings.items():
        setattr(new, name, value)
    return new


def replace_modules(root: torch.nn.Module, make: Callable[[torch.nn.Module], Optional[torch.nn.Module]]) -> int:
    """Replace every module under ``root`` (not ``root`` itself) for which ``make`` gives a new one
    by that one, looking no further inside a replaced module; returns how many were replaced."""
    count = 0
    for name, child in list(root.named_children()):
        new = make(child)
        if new is None:
            count += replace_modules(child, make)
        else:
            setattr(root, name, new)
            count += 1
    return count
