"""Options shared by the commands, generated from the options dataclasses, and their checks.

The tracker's flags (``--method``, ``--margin``, ...) and the model's (``--model-type``, ...) are
built from the fields of :class:`~persam_video.options.TrackerOptions` and
:class:`~persam_video.model.loading.ModelSpec`: help, default, choices and type are written once, there.
Library errors never name flags; this layer words them for the command line.
"""
from __future__ import annotations

import argparse
from dataclasses import fields
from typing import Any, List, Optional

from ..errors import PersamError
from ..model.fast_path import FAST_MODEL
from ..model.loading import ModelSpec
from ..options import FAST_OPTIONS, OptionError, TrackerOptions, option_fields
from ..runtime.system import set_threads

FAST = {**FAST_MODEL, **FAST_OPTIONS}  # the settings --fast changes; a flag given explicitly wins


def flag_name(name: str) -> str:
    """``fit_iterations`` -> ``--fit-iterations``."""
    return "--" + name.replace("_", "-")


def add_dataclass_options(parser: argparse.ArgumentParser, cls: type, title: str) -> argparse._ArgumentGroup:
    """One flag per field of ``cls`` (a dataclass built with :func:`persam_video.options.option`), in a
    group titled ``title``, which is returned."""
    group = parser.add_argument_group(title)
    for name, default, meta in option_fields(cls):
        help_text = meta["help"]
        if isinstance(default, bool):
            group.add_argument(flag_name(name), action="store_true", help=help_text)
            continue
        if name in FAST:
            help_text += f" (default: {default}; {FAST[name]} with --fast)"
            default = None  # unset: filled in by _from_args, so that --fast can tell a given flag
        elif default is not None and "(default" not in help_text:
            help_text += " (default: %(default)s)"
        kwargs: dict = {"default": default, "help": help_text}
        for key in ("metavar", "choices", "type"):
            if meta.get(key) is not None:
                kwargs[key] = meta[key]
        group.add_argument(flag_name(name), **kwargs)
    return group


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """The tracker's flags, one per :class:`TrackerOptions` field."""
    add_dataclass_options(parser, TrackerOptions, "method")


def add_photo_options(parser: argparse.ArgumentParser) -> None:
    """The photo recipe's flags, one per :class:`~persam_video.photos.personalizer.PhotoOptions` field."""
    from ..photos.personalizer import PhotoOptions

    add_dataclass_options(parser, PhotoOptions, "method")


def photo_options(args: argparse.Namespace) -> Any:
    """PhotoOptions from parsed flags."""
    from ..photos.personalizer import PhotoOptions

    return _from_args(PhotoOptions, args)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """The model's flags (one per :class:`ModelSpec` field) and ``--threads``."""
    group = add_dataclass_options(parser, ModelSpec, "model")
    group.add_argument("--fast", action="store_true",
                        help="the fast path: precision auto (bf16 where the CPU or GPU has it), fused attention, "
                             "the fast decoder, the compiled encoder for vit_t and vit_b/l/h on a CPU (compile "
                             "auto), the fast PerSAM-F fit; masks equal the exact default's to float rounding "
                             "(IoU >= 0.99 measured), not to the bit. Flags given explicitly win")
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads for torch (default: the CPUs this process may use, fewer while other "
                            "programs keep them busy, re-checked every half second)")


def _from_args(cls: type, args: argparse.Namespace) -> Any:
    values = {}
    for f in fields(cls):
        value = getattr(args, f.name, None)
        if value is None and f.name in FAST:
            value = FAST[f.name] if getattr(args, "fast", False) else f.default
        values[f.name] = value
    return cls(**values)


def tracker_options(args: argparse.Namespace) -> TrackerOptions:
    """TrackerOptions from parsed flags; an out-of-range value is worded with its flag."""
    try:
        return _from_args(TrackerOptions, args)
    except OptionError as exc:
        raise PersamError(exc.flag_message()) from None


def model_spec(args: argparse.Namespace) -> ModelSpec:
    """ModelSpec from parsed flags."""
    return _from_args(ModelSpec, args)


def check_threads(threads: Optional[int]) -> None:
    """A one-line error for a ``--threads`` below 1 (torch would raise a RuntimeError)."""
    if threads is not None and threads < 1:
        raise PersamError(f"--threads must be at least 1, not {threads}")


def check_read_ahead(read_ahead: int) -> None:
    """A one-line error for a negative ``--read-ahead``."""
    if read_ahead < 0:
        raise PersamError(f"--read-ahead must be 0 or more, not {read_ahead}")


def add_read_ahead(parser: argparse.ArgumentParser) -> None:
    """``--read-ahead N``: frames decoded ahead on a background thread."""
    parser.add_argument("--read-ahead", type=int, default=4, metavar="N",
                        help="frames decoded ahead on a background thread (default: 4)")


def add_write_behind(parser: argparse.ArgumentParser) -> None:
    """``--no-write-behind``: write each PNG before tracking the next frame instead of on a thread."""
    parser.add_argument("--no-write-behind", dest="write_behind", action="store_false",
                        help="write each frame's PNG before tracking the next one (default: written on a "
                             "background thread while the next frame is tracked, at most 2 frames behind; "
                             "the same files either way)")


def load_model(args: argparse.Namespace, progress: bool = True):
    """Set the thread policy (``--threads`` or the automatic one), then load the model the flags name."""
    set_threads(args.threads)
    return model_spec(args).load(progress=progress)


def parse_ids(text: Optional[str], flag: str = "--objects") -> Optional[List[int]]:
    """'1,3' -> [1, 3]; a clear error for anything else."""
    if text is None:
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PersamError(f"{flag} takes comma-separated ids like 1,3, not {text!r}") from None
    if not ids or any(not 0 < k < 255 for k in ids):
        raise PersamError(f"{flag} ids must be between 1 and 254, got {text!r}")
    return ids


def name_list(text: str) -> List[str]:
    """argparse type for ``a,b`` -> ``['a', 'b']`` (repeats dropped), refusing an empty list."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def add_command(sub: argparse._SubParsersAction, name: str, summary: str, description: str,
                epilog: Optional[str] = None) -> argparse.ArgumentParser:
    """A subcommand's parser: one-line ``summary`` for the command list, ``description`` and examples
    (``epilog``, kept as written) for its ``--help``."""
    return sub.add_parser(name, help=summary, description=description, epilog=epilog,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def add_video_argument(parser: argparse.ArgumentParser, role: str = "the video") -> None:
    """The positional VIDEO argument: a video file or a folder of frames."""
    parser.add_argument("video", help=f"{role}: a video file (mp4, avi, mkv, mov, webm, gif, ...) or a folder "
                                      "of JPEG/PNG frames sorted by name (the DAVIS layout)")


def add_quiet(parser: argparse.ArgumentParser, what: str = "no progress bar and no summary") -> None:
    """``--quiet``."""
    parser.add_argument("--quiet", action="store_true", help=what)
