"""``segment``'s prompt flags: clicks, boxes, a mask, a prompts file and reference images, as one PromptSet."""
from __future__ import annotations

import argparse
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PersamError, choose
from ..io.frames import FrameSource
from ..io.masks import read_seed
from ..io.prompts import Prompt, PromptSet, Reference, check_prompt_set, load_prompts, references_from_files

NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"


def add_prompt_options(parser: argparse.ArgumentParser) -> None:
    """``--point``, ``--neg-point``, ``--box``, ``--frame``, ``--mask``, ``--prompts``,
    ``--ref-image``/``--ref-mask``."""
    group = parser.add_argument_group("prompts (at least one; several may be combined)")
    group.add_argument("--point", action="append", default=[], metavar="X,Y[:ID]",
                       help="a click on the object (pixels, on --frame); :ID names the object (default 1); repeatable")
    group.add_argument("--neg-point", action="append", default=[], metavar="X,Y[:ID]",
                       help="a click on what is not the object; repeatable")
    group.add_argument("--box", action="append", default=[], metavar="X0,Y0,X1,Y1[:ID]",
                       help="a box around the object (pixels, on --frame); repeatable, one per object")
    group.add_argument("--mask", metavar="PNG",
                       help="a mask of --frame: an indexed PNG (DAVIS palette) or an 8-bit/binary PNG; every "
                            "non-zero id except 255 (void) is an object")
    group.add_argument("--frame", type=int, default=None, metavar="N",
                       help="the frame that --point, --neg-point, --box and --mask are on (default: 0)")
    group.add_argument("--start", type=int, default=None, metavar="N",
                       help="the former spelling of --frame N --forward-only: the mask's frame, nothing before it "
                            "is segmented")
    group.add_argument("--prompts", metavar="FILE.json",
                       help="prompts on many frames (clicks, boxes, masks; corrections are prompts on later "
                            "frames) and references, as in docs/prompts.md")
    group.add_argument("--ref-image", action="append", default=[], metavar="IMG",
                       help="an image from outside the video showing objects; pair each with a --ref-mask")
    group.add_argument("--ref-mask", action="append", default=[], metavar="PNG",
                       help="the objects on the matching --ref-image (their ids as in --mask)")


def _coordinates(flag: str, text: str, count: int) -> Tuple[List[float], int]:
    """``X,Y[:ID]`` (``count`` numbers) -> (numbers, id)."""
    pattern = rf"\s*({NUMBER}(?:\s*,\s*{NUMBER}){{{count - 1}}})\s*(?::\s*(\d+))?\s*"
    match = re.fullmatch(pattern, text)
    if not match:
        form = "X,Y" if count == 2 else "X0,Y0,X1,Y1"
        raise PersamError(f"{flag} takes {form} or {form}:ID (pixels, an object id), not {text!r}")
    obj_id = int(match.group(2)) if match.group(2) else 1
    if not 1 <= obj_id <= 254:
        raise PersamError(f"{flag} {text}: the object id must be from 1 to 254 (0 is background, 255 void)")
    return [float(v) for v in match.group(1).split(",")], obj_id


def frame_of(args: argparse.Namespace) -> int:
    """The frame of the command-line prompts: --frame, or --start, or 0."""
    if args.frame is not None and args.start is not None and args.frame != args.start:
        raise PersamError("--start is the former spelling of --frame N --forward-only: give one of them")
    frame = args.frame if args.frame is not None else args.start if args.start is not None else 0
    if frame < 0:
        raise PersamError(f"--frame must be 0 or more, not {frame}")
    return frame


def click_prompts(args: argparse.Namespace, frame: int) -> List[Prompt]:
    """One prompt per object from --point, --neg-point and --box."""
    points: Dict[int, List[Tuple[List[float], int]]] = {}
    boxes: Dict[int, np.ndarray] = {}
    for flag, texts, label in (("--point", args.point, 1), ("--neg-point", args.neg_point, 0)):
        for text in texts:
            xy, obj_id = _coordinates(flag, text, 2)
            points.setdefault(obj_id, []).append((xy, label))
    for text in args.box:
        box, obj_id = _coordinates("--box", text, 4)
        if obj_id in boxes:
            raise PersamError(f"--box: object {obj_id} has two boxes; give one box per object")
        boxes[obj_id] = np.array(box, np.float32)
    prompts = []
    for obj_id in sorted(set(points) | set(boxes)):
        clicks = points.get(obj_id, [])
        prompts.append(Prompt(frame, obj_id,
                              np.array([xy for xy, _ in clicks], np.float32).reshape(-1, 2) if clicks else None,
                              np.array([lab for _, lab in clicks], np.int64) if clicks else None, boxes.get(obj_id)))
    return prompts


def reference_list(args: argparse.Namespace) -> List[Reference]:
    """One reference per object id of each --ref-mask, on its --ref-image."""
    if len(args.ref_image) != len(args.ref_mask):
        raise PersamError(f"give one --ref-mask per --ref-image (got {len(args.ref_image)} image(s) and "
                          f"{len(args.ref_mask)} mask(s))")
    return [reference for image_path, mask_path in zip(args.ref_image, args.ref_mask)
            for reference in references_from_files(image_path, mask_path, "--ref-mask", "--ref-image")]


def build_prompts(args: argparse.Namespace, source: FrameSource, objects: Optional[Sequence[int]]) -> PromptSet:
    """Every prompt flag as one checked PromptSet for ``source`` (only ``objects`` when given)."""
    frame = frame_of(args)
    if frame >= len(source):
        raise PersamError(f"--frame {frame} is past the end of the video, which has {len(source)} frames "
                          f"(0..{len(source) - 1})")
    prompt_set = load_prompts(args.prompts) if args.prompts else PromptSet()
    if args.mask:
        seed, ids = read_seed(args.mask, source.size, None)
        prompt_set.prompts.extend(Prompt(frame, k, mask=seed == k) for k in ids)
    prompt_set.prompts.extend(click_prompts(args, frame))
    prompt_set.references.extend(reference_list(args))
    if not prompt_set.prompts and not prompt_set.references:
        raise PersamError("nothing to segment: give --point, --box, --mask, --prompts or --ref-image/--ref-mask")
    if objects is not None:
        present = prompt_set.object_ids()
        wanted = set(choose(present, objects, lambda missing: f"object id(s) {','.join(map(str, missing))} not in "
                                                              f"the prompts; they hold {','.join(map(str, present))}"))
        prompt_set = PromptSet([p for p in prompt_set.prompts if p.obj_id in wanted],
                               [r for r in prompt_set.references if r.obj_id in wanted])
    check_prompt_set(prompt_set, source.size, len(source))
    return prompt_set

