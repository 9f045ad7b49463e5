"""``persam-video segment``: one video in, one indexed PNG per frame out."""
from __future__ import annotations

import argparse
import sys

from ..pipeline import prepare_job, run_job
from ..tracker import VideoSegmenter, load_state, save_state
from .common import (add_command, add_method_options, add_model_options, add_quiet, add_read_ahead, add_video_argument,
                     check_read_ahead, check_threads, load_model, parse_ids, tracker_options)

EPILOG = """examples:
  persam-video segment clip.mp4 --mask first.png --out masks/
  persam-video segment frames/ --mask 00000.png --out masks/ --objects 1,3 --method persam
  persam-video segment clip.mp4 --mask first.png --out masks/ --model-type vit_b --checkpoint sam_vit_b_01ec64.pth
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``segment`` subcommand."""
    parser = add_command(sub, "segment", "segment objects through a video from one annotated frame",
        "Track the objects of one annotated frame through a video and write one indexed PNG "
        "per frame (DAVIS palette, the mask's own object ids).", EPILOG)
    add_video_argument(parser)
    parser.add_argument("--mask", required=True, metavar="PNG",
                        help="the start frame's mask: an indexed PNG (DAVIS palette) or an 8-bit/binary PNG; "
                             "every non-zero id except 255 (void) is an object")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder for <frame name>.png (created if missing)")
    parser.add_argument("--objects", metavar="IDS", help="track only these ids, e.g. 1,3 (default: all)")
    parser.add_argument("--start", type=int, default=0, metavar="N",
                        help="the frame the mask belongs to; earlier frames are not processed (default: 0)")
    parser.add_argument("--save-state", metavar="FILE", help="save the fitted per-object state here")
    parser.add_argument("--load-state", metavar="FILE",
                        help="reuse a saved state (targets, PerSAM-F weights) instead of computing it")
    add_read_ahead(parser)
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
    job = prepare_job(args.video, args.mask, args.out, objects=objects, start=args.start,
                      read_ahead=args.read_ahead)
    segmenter = VideoSegmenter(load_model(args, progress=not args.quiet), options)
    summary = run_job(job, segmenter, state=state, progress=not args.quiet)
    if args.save_state:
        save_state(segmenter, args.save_state)
    if not args.quiet:
        print(f"wrote {summary.frames} masks to {args.out}: {summary.line()}", file=sys.stderr)
    return 0
