"""The tracker's options, defined once: each field carries its default, its help and its check.

The command line builds its flags from these fields (``persam_video.cli.common``), so a new
option is one field here. The defaults are the public PerSAM video recipe; every switch that is
not in that recipe is off by default. docs/method.md explains when each one helps.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Iterator, Optional, Sequence, Tuple

from .errors import PersamError

METHODS = ("persam", "persam-f")
ANCHORS = ("box-centre", "interior")
TARGET_MODES = ("mean-max", "mean")
FIT_MODES = ("exact", "fast")
PROPAGATIONS = ("none", "flow")
FAST_OPTIONS = {"fit_mode": "fast"}  # the tracker's part of ``--fast``


class OptionError(PersamError):
    """A tracker option out of range. ``str()`` names the option in words; the command line
    rewords it with the flag (``flag_message``)."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"the tracker option {name} {problem}")

    def flag_message(self) -> str:
        """The same problem worded for the command line: ``--margin must be ...``."""
        return f"--{self.name.replace('_', '-')} {self.problem}"


def option(default: Any, help: str, *, metavar: Optional[str] = None,
           choices: Optional[Sequence[str]] = None, type: Any = None) -> Any:
    """A dataclass field that also describes its command-line flag (help, metavar, choices, type)."""
    return field(default=default, metadata={"help": help, "metavar": metavar, "choices": choices, "type": type})


def option_fields(cls: type) -> Iterator[Tuple[str, Any, dict]]:
    """(name, default, metadata) of each field of an options dataclass built with :func:`option`."""
    for f in fields(cls):
        yield f.name, f.default, dict(f.metadata)


@dataclass
class TrackerOptions:
    """What the tracker computes; the defaults are the public video recipe."""

    method: str = option(
        "persam-f", "persam: training-free; persam-f: fits two scale weights per object on its prompted "
                    "frame(s)", choices=METHODS)
    topk: Optional[int] = option(
        None, "positive points from the confidence map per object (default: 2 for persam, 1 for persam-f)",
        metavar="K", type=int)
    margin: int = option(10, "pixels added around the previous mask's box for the box prompt", metavar="PX",
                         type=int)
    target_mode: str = option(
        "mean-max", "target embedding: mean/2+max/2 of the object's features (video recipe) or their mean "
                    "(image recipe)", choices=TARGET_MODES)
    negative_point: bool = option(False, "add the confidence map's lowest location as a negative point")
    guided_attention: bool = option(False, "target-guided attention in the decoder's first pass (image recipe; "
                                           "off for video)")
    semantic_prompt: bool = option(False, "target-semantic prompting in the decoder's first pass (image recipe; "
                                          "off for video)")
    keep_box_frames: int = option(
        3, "frames an object that vanished keeps its last box before the whole frame is searched for it again",
        metavar="N", type=int)
    redetect_ratio: float = option(
        0.8, "a vanished object is re-detected only where its confidence reaches R times its confidence on "
             "the seed frame", metavar="R", type=float)
    quality_gate: float = option(
        0.0, "presence check, not in the public recipe: keep a frame's mask only when SAM's predicted IoU "
             "for it reaches R times the one on the seed frame, else count the object as absent there "
             "(e.g. 0.8; 0: off)", metavar="R", type=float)
    box_growth: float = option(
        0.0, "box-prior growth limit, not in the public recipe: when a frame's mask would give an object a "
             "box of more than G times the area of its last one, the last box is kept for the next frame, so "
             "a mask that floods the background cannot widen the next prompt (e.g. 1.5; 0: off)",
        metavar="G", type=float)
    anchor: str = option(
        "box-centre", "the extra positive point given with the box prompt: the box centre (public recipe) or "
                      "'interior', the previous mask's most interior pixel, which stays on the object whatever "
                      "its shape (a ring's box centre is in its hole)", choices=ANCHORS)
    box_clip: bool = option(
        False, "not in the public recipe: cut each object's mask to its box prompt in every decoder pass, so "
               "that a mask spilling out of the box cannot widen the refinements' boxes or the next frame's")
    propagation: str = option(
        "none", "not in the public recipe: 'flow' carries the previous frame's label map onto the frame along "
                "dense optical flow and takes each object's box, anchor point and positive point from where its "
                "mask moved, with the other objects' carried masks as negative points ('none': the previous "
                "mask's box, the recipe)", choices=PROPAGATIONS)
    target_memory: int = option(
        0, "not in the public recipe: keep up to K more targets of each object, taken from frames where its "
           "mask was confident and of a steady size, and score each place by its best match among them and the "
           "seed's target (which is never dropped; 0: off)", metavar="K", type=int)
    leak_guard: float = option(
        0.0, "not in the public recipe, needs --propagation flow: a mask more than G times the area of the "
             "object's carried mask is cut back to that mask widened by 3 pixels, so a neighbour or the "
             "background cannot be painted in (1: every mask is kept within its carried one; 0: off)",
        metavar="G", type=float)
    fit_iterations: int = option(800, "PerSAM-F fitting iterations", metavar="N", type=int)
    fit_lr: float = option(4e-4, "PerSAM-F fitting learning rate (AdamW, cosine schedule)", metavar="LR",
                           type=float)
    fit_mode: str = option(
        "exact", "PerSAM-F fit: 'exact' takes the loss over every pixel (the public recipe); 'fast' over a "
                 "bounded lattice of pixels, each standing for its block: the same time at any frame size",
        choices=FIT_MODES)

    @classmethod
    def fast(cls, **settings: Any) -> "TrackerOptions":
        """The recipe with the fast PerSAM-F fit (what ``--fast`` picks), ``settings`` on top."""
        return cls(**{**FAST_OPTIONS, **settings})

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise OptionError("method", f"must be persam or persam-f, not {self.method!r}")
        if self.topk is None:
            self.topk = 2 if self.method == "persam" else 1
        if self.topk < 1:
            raise OptionError("topk", f"must be at least 1, not {self.topk}")
        if self.margin < 0:
            raise OptionError("margin", f"must be a number of pixels >= 0, not {self.margin}")
        if self.keep_box_frames < 0:
            raise OptionError("keep_box_frames", f"must be a number of frames >= 0, not {self.keep_box_frames}")
        if not 0.0 <= self.redetect_ratio <= 1.0:
            raise OptionError("redetect_ratio", f"must be a ratio in [0, 1], not {self.redetect_ratio}")
        if self.fit_iterations < 0:
            raise OptionError("fit_iterations", f"must be a number of steps >= 0, not {self.fit_iterations}")
        if not self.fit_lr > 0:
            raise OptionError("fit_lr", f"must be positive, not {self.fit_lr}")
        if not 0.0 <= self.quality_gate <= 1.0:
            raise OptionError("quality_gate", f"must be a ratio in [0, 1], not {self.quality_gate}")
        if self.box_growth != 0 and not self.box_growth >= 1.0:
            raise OptionError("box_growth", f"must be a factor >= 1 (or 0: off), not {self.box_growth}")
        if self.anchor not in ANCHORS:
            raise OptionError("anchor", f"must be box-centre or interior, not {self.anchor!r}")
        if self.fit_mode not in FIT_MODES:
            raise OptionError("fit_mode", f"must be exact or fast, not {self.fit_mode!r}")
        if self.propagation not in PROPAGATIONS:
            raise OptionError("propagation", f"must be none or flow, not {self.propagation!r}")
        if self.target_memory < 0:
            raise OptionError("target_memory", f"must be a number of targets >= 0, not {self.target_memory}")
        if self.leak_guard != 0 and not self.leak_guard >= 1.0:
            raise OptionError("leak_guard", f"must be a factor >= 1 (or 0: off), not {self.leak_guard}")
        if self.leak_guard and self.propagation != "flow":
            raise OptionError("leak_guard", "needs --propagation flow (it cuts masks back to the carried ones)")
        if self.target_mode not in TARGET_MODES:
            raise OptionError("target_mode", f"must be mean-max or mean, not {self.target_mode!r}")
