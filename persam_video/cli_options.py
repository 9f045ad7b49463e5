"""Command-line options shared by ``segment``, ``davis run`` and ``demo``: model and method."""
from __future__ import annotations

import argparse
from typing import List, Optional

import torch

from .errors import PersamError
from .models import DEFAULT_MODEL_TYPE, MODEL_TYPES, load_sam
from .tracker import ANCHORS, METHODS, TrackerOptions


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model-type, --checkpoint, --device."""
    group = parser.add_argument_group("model")
    group.add_argument("--model-type", default=DEFAULT_MODEL_TYPE, choices=MODEL_TYPES,
                       help="SAM architecture. 'small' is the model bundled with persam-video (no download); "
                            "vit_h/vit_l/vit_b are Meta's SAM, vit_t is MobileSAM (needs the [mobile] extra). "
                            "Default: %(default)s")
    group.add_argument("--checkpoint", metavar="FILE",
                       help="checkpoint file for --model-type; without it the bundled weights (small) or "
                            "$PERSAM_VIDEO_CACHE (default ~/.cache/persam-video) is used, downloading the "
                            "official file there if missing ($PERSAM_VIDEO_MIRROR replaces the download host)")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: %(default)s)")
    group.add_argument("--threads", type=int, default=None, metavar="N",
                       help="CPU threads for torch (default: torch's own choice)")


def add_method_options(parser: argparse.ArgumentParser) -> None:
    """--method and the PerSAM switches."""
    group = parser.add_argument_group("method")
    group.add_argument("--method", default="persam-f", choices=METHODS,
                       help="persam: training-free; persam-f: fits two scale weights per object on the "
                            "seed frame (default: %(default)s)")
    group.add_argument("--topk", type=int, default=None, metavar="K",
                       help="positive points from the confidence map per object (default: 2 for persam, "
                            "1 for persam-f)")
    group.add_argument("--margin", type=int, default=10, metavar="PX",
                       help="pixels added around the previous mask's box for the box prompt (default: 10)")
    group.add_argument("--target-mode", default="mean-max", choices=("mean-max", "mean"),
                       help="target embedding: mean/2+max/2 of the object's features (video recipe) or "
                            "their mean (image recipe) (default: %(default)s)")
    group.add_argument("--negative-point", action="store_true",
                       help="add the confidence map's lowest location as a negative point")
    group.add_argument("--guided-attention", action="store_true",
                       help="target-guided attention in the decoder's first pass (image recipe; off for video)")
    group.add_argument("--semantic-prompt", action="store_true",
                       help="target-semantic prompting in the decoder's first pass (image recipe; off for video)")
    group.add_argument("--keep-box-frames", type=int, default=3, metavar="N",
                       help="frames an object that vanished keeps its last box before the whole frame is "
                            "searched for it again (default: 3)")
    group.add_argument("--redetect-ratio", type=float, default=0.8, metavar="R",
                       help="a vanished object is re-detected only where its confidence reaches R times "
                            "its confidence on the seed frame (default: 0.8)")
    group.add_argument("--quality-gate", type=float, default=0.0, metavar="R",
                       help="presence check, not in the public recipe: keep a frame's mask only when SAM's "
                            "predicted IoU for it reaches R times the one on the seed frame, else count the "
                            "object as absent there (e.g. 0.8; default 0: off)")
    group.add_argument("--box-growth", type=float, default=0.0, metavar="G",
                       help="box-prior growth limit, not in the public recipe: when a frame's mask would "
                            "give an object a box of more than G times the area of its last one, the last "
                            "box is kept for the next frame, so a mask that floods the background cannot "
                            "widen the next prompt (e.g. 1.5; default 0: off)")
    group.add_argument("--anchor", default="box-centre", choices=ANCHORS,
                       help="the extra positive point given with the box prompt: the box centre (public "
                            "recipe) or 'interior', the previous mask's most interior pixel, which stays on "
                            "the object whatever its shape (a ring's box centre is in its hole) "
                            "(default: %(default)s)")
    group.add_argument("--box-clip", action="store_true",
                       help="not in the public recipe: cut each object's mask to its box prompt in every "
                            "decoder pass, so that a mask spilling out of the box cannot widen the refinements' "
                            "boxes or the next frame's")
    group.add_argument("--fit-iterations", type=int, default=800, metavar="N",
                       help="PerSAM-F fitting iterations (default: 800)")


def parse_ids(text: Optional[str]) -> Optional[List[int]]:
    """'1,3' -> [1, 3]; a clear error for anything else."""
    if text is None:
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise PersamError(f"--objects takes comma-separated ids like 1,3, not {text!r}") from None
    if not ids or any(not 0 < k < 255 for k in ids):
        raise PersamError(f"--objects ids must be between 1 and 254, got {text!r}")
    return ids


def name_list(text: str) -> List[str]:
    """argparse type for ``a,b`` -> ``['a', 'b']`` (repeats dropped), refusing an empty list."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if not names:
        raise argparse.ArgumentTypeError("expected comma-separated names")
    return names


def tracker_options(args: argparse.Namespace) -> TrackerOptions:
    """TrackerOptions from parsed method options."""
    return TrackerOptions(method=args.method, topk=args.topk, margin=args.margin, target_mode=args.target_mode,
                          negative_point=args.negative_point, guided_attention=args.guided_attention,
                          semantic_prompt=args.semantic_prompt, keep_box_frames=args.keep_box_frames,
                          redetect_ratio=args.redetect_ratio, quality_gate=args.quality_gate,
                          box_growth=args.box_growth, anchor=args.anchor, box_clip=args.box_clip,
                          fit_iterations=args.fit_iterations)


def check_threads(threads: Optional[int]) -> None:
    """A one-line error for a ``--threads`` below 1 (torch would raise a RuntimeError). Commands
    call it before they write anything, so ``model_from_args`` does not check again."""
    if threads is not None and threads < 1:
        raise PersamError(f"--threads must be at least 1, not {threads}")


def check_read_ahead(read_ahead: int) -> None:
    """A one-line error for a negative ``--read-ahead`` (segment and davis run)."""
    if read_ahead < 0:
        raise PersamError(f"--read-ahead must be 0 or more, not {read_ahead}")


def model_from_args(args: argparse.Namespace, progress: bool = True) -> torch.nn.Module:
    """Load the model the options name (setting the thread count first)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return load_sam(args.model_type, args.checkpoint, device=args.device, progress=progress)
