"""``persam-video export``: overlays, mattes and cut-outs for video editors."""
from __future__ import annotations

import argparse
import sys

from ..export import DEFAULT_FPS, KINDS, export
from .common import add_command, add_quiet, add_video_argument, parse_ids

EPILOG = f"""examples:
  persam-video export clip.mp4 --masks masks/ --out overlay.mp4 --kind overlay
  persam-video export clip.mp4 --masks masks/ --out overlay/ --kind overlay       (PNG per frame)
  persam-video export clip.mp4 --masks masks/ --out matte/ --kind matte --objects 1,3 --feather 3
  persam-video export frames/ --masks masks/ --out cutout/ --kind cutout

kinds:
  overlay  every object tinted with its DAVIS palette colour at 50% plus a 2-pixel
           contour; an H.264 video (yuv420p, plays everywhere; an odd width or height
           gets one duplicated column or row) when --out ends in .mp4/.mov/.m4v/.mkv,
           otherwise a folder of RGB PNGs named like the frames
  matte    a folder of grey 8-bit PNGs: 255 inside the chosen objects, 0 elsewhere
           (a luma matte / track matte for any editor)
  cutout   a folder of RGBA PNGs: the frame with the matte as its alpha channel

The masks are those 'persam-video segment' writes: <masks>/<frame name>.png for every
frame of VIDEO (00000.png, 00001.png, ... for video files; the frame file names for a
folder of frames). Files are written under temporary names and renamed when complete.
Frame folders have no frame rate: their videos default to {DEFAULT_FPS:g} frames/s.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``export`` subcommand."""
    parser = add_command(sub, "export", "export an overlay video, mattes or cut-outs from a video and its masks",
        "Turn a video and its label PNGs into files for video editors: a coloured overlay "
        "(video or PNGs), grey mattes or RGBA cut-outs, one frame at a time.", EPILOG)
    add_video_argument(parser, "the video the masks belong to")
    parser.add_argument("--masks", required=True, metavar="DIR",
                        help="folder of label PNGs, one per frame, named like the frames (the --out "
                             "folder of 'persam-video segment')")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output: a video file (.mp4, .mov, .m4v, .mkv; overlay only) or a folder "
                             "(created if missing) for <frame name>.png")
    parser.add_argument("--kind", required=True, choices=KINDS,
                        help="overlay: colour + contour per object; matte: grey PNGs, 255 on the "
                             "objects; cutout: RGBA PNGs, alpha = matte")
    parser.add_argument("--objects", metavar="IDS",
                        help="only these object ids, e.g. 1,3 (default: every id in the masks; 255 is "
                             "void and never an object)")
    parser.add_argument("--feather", type=float, default=0.0, metavar="PX",
                        help="matte/cutout: soften the edges with a Gaussian blur of this radius in "
                             "pixels (default: 0, hard 0/255 edges)")
    parser.add_argument("--fps", type=float, default=None, metavar="N",
                        help="frame rate of an overlay video (default: the source video's, "
                             f"{DEFAULT_FPS:g} for a frame folder)")
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``export`` subcommand."""
    result = export(args.video, args.masks, args.out, kind=args.kind, objects=parse_ids(args.objects),
                    feather=args.feather, fps=args.fps, progress=not args.quiet)
    if result.never_seen:
        print(f"persam-video: warning: object id(s) {','.join(map(str, result.never_seen))} appear in no mask "
              f"of {args.masks}", file=sys.stderr)
    if not args.quiet:
        what = f"a {result.frames}-frame video at {result.fps:g} frames/s" if result.is_video \
            else f"{result.frames} PNGs"
        print(f"wrote {args.kind}: {what} to {result.out}", file=sys.stderr)
    return 0
