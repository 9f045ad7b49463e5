"""``persam-video segment``: one video and prompts in, one indexed PNG per frame out."""
from __future__ import annotations

import argparse
import sys

from ..errors import PersamError
from ..io.frames import open_frames
from ..pipeline import segment_video
from ..resume_file import ResumeMismatch
from ..runtime.locking import output_lock
from ..tracking.object_state import load_state
from .common import (
    add_command,
    add_method_options,
    add_model_options,
    add_quiet,
    add_read_ahead,
    add_video_argument,
    add_write_behind,
    check_read_ahead,
    check_threads,
    load_model,
    parse_ids,
    tracker_options,
)
from .prompt_flags import add_prompt_options, build_prompts

EPILOG = """examples:
  persam-video segment clip.mp4 --point 320,240 --out masks/               # one click: object 1
  persam-video segment clip.mp4 --point 320,240 --point 100,80:2 --neg-point 330,200 --frame 10 --out masks/
  persam-video segment clip.mp4 --box 40,60,200,220 --out masks/
  persam-video segment clip.mp4 --mask first.png --out masks/ --forward-only
  persam-video segment clip.mp4 --prompts prompts.json --out masks/        # many frames, corrections
  persam-video segment clip.mp4 --ref-image cup.jpg --ref-mask cup.png --out masks/
  persam-video segment clip.mp4 --mask first.png --out masks/ --model-type vit_b --checkpoint sam_vit_b_01ec64.pth

A run killed part-way continues where it stopped when run again with the same arguments.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``segment`` subcommand."""
    parser = add_command(sub, "segment", "segment objects through a video from clicks, boxes, masks or references",
        "Track objects through a video from prompts on any frames (clicks, boxes, masks; a prompts file for "
        "many) or reference images, forward from the earliest prompted frame and back to the first frame, and "
        "write one indexed PNG per frame (DAVIS palette, the prompts' object ids).", EPILOG)
    add_video_argument(parser)
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder for <frame name>.png (created if missing)")
    add_prompt_options(parser)
    parser.add_argument("--objects", metavar="IDS", help="track only these ids, e.g. 1,3 (default: all)")
    parser.add_argument("--forward-only", action="store_true",
                        help="segment only from the earliest prompted frame on, not the frames before it")
    parser.add_argument("--restart", action="store_true",
                        help="start over even if the output folder holds a run (killed or finished) of other "
                             "inputs; without it such a run is continued or, if it differs, refused")
    parser.add_argument("--save-state", metavar="FILE", help="save the fitted per-object state here")
    parser.add_argument("--load-state", metavar="FILE",
                        help="reuse a saved state (targets, PerSAM-F weights) instead of computing it")
    add_read_ahead(parser)
    add_write_behind(parser)
    add_quiet(parser)
    add_method_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``segment`` subcommand."""
    objects = parse_ids(args.objects)
    options = tracker_options(args)
    check_threads(args.threads)
    check_read_ahead(args.read_ahead)
    state = load_state(args.load_state) if args.load_state else None
    source = open_frames(args.video, read_ahead=args.read_ahead)  # opened once: the prompts' checks and the run
    prompts = build_prompts(args, source, objects)
    direction = "forward" if args.forward_only or args.start is not None else "both"
    with output_lock(args.out):  # one writer per folder; a second run stops here, having written nothing
        model = load_model(args, progress=not args.quiet)
        try:
            summary = segment_video(source, args.out, prompts, options, model, direction=direction,
                                    restart=args.restart, read_ahead=args.read_ahead, progress=not args.quiet,
                                    state=state, state_out=args.save_state,
                                    write_behind=args.write_behind)
        except ResumeMismatch as exc:
            raise PersamError(exc.describe("add --restart to start over")) from None
    if args.quiet:
        return 0
    if summary.frames == 0 and summary.resumed:
        print(f"nothing to do: {args.out} holds this run, complete ({summary.resumed} masks); --restart runs it "
              "again", file=sys.stderr)
    else:
        print(f"wrote {summary.frames} masks to {args.out}: {summary.line()}", file=sys.stderr)
    return 0
