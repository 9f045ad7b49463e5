"""``persam-video export``: overlays, mattes, cut-outs, object removal, background effects, annotations."""
from __future__ import annotations

import argparse
import sys

from ..errors import PersamError
from ..export import DEFAULT_DILATE, DEFAULT_FPS, KINDS, export
from ..export.background import DEFAULT_STRENGTH
from ..export.formats import FORMATS
from ..export.removal import REACH
from .common import add_command, add_quiet, add_video_argument, parse_ids

EPILOG = f"""examples:
  persam-video export clip.mp4 --masks masks/ --out overlay.mp4 --kind overlay
  persam-video export clip.mp4 --masks masks/ --out matte/ --kind matte --objects 1,3 --feather 3
  persam-video export clip.mp4 --masks masks/ --out clean.mp4 --kind remove --objects 2 --dilate 6
  persam-video export clip.mp4 --masks masks/ --out soft.mp4 --kind blur --strength 16
  persam-video export clip.mp4 --masks masks/ --out beach.mp4 --kind replace --background beach.jpg
  persam-video export clip.mp4 --masks masks/ --out person.mov --kind cutout --format prores
  persam-video export clip.mp4 --masks masks/ --out person.webm --kind cutout --format webm
  persam-video export clip.mp4 --masks masks/ --out key.mp4 --kind matte --format mp4
  persam-video export clip.mp4 --masks masks/ --out annotations/ --kind coco

kinds:
  overlay  every object tinted with its DAVIS palette colour at 50% plus a 2-pixel contour
  matte    255 inside the chosen objects, 0 elsewhere (a luma matte / track matte)
  cutout   the frame with the matte as its alpha channel
  remove   the objects removed: each masked pixel (after --dilate) filled with the
           background other frames show, carried along optical flow, nearest frames
           first ({REACH} on each side); what no frame shows is inpainted (OpenCV Telea)
  blur     the background blurred behind the objects (--strength)
  replace  the objects over --background (a picture, or a video that loops)
  keep     the objects over a solid green
  coco     <out>/coco.json (COCO instances, RLE per frame and object) and
           <out>/youtube_vis.json (one entry per object with an RLE per frame)

formats (--format; by default from --out: a folder is png, .mp4/.mkv is mp4, .mov is
mp4 for RGB kinds and prores for cutout, .webm is webm):
  png      a folder of PNGs named like the frames (RGB; RGBA for cutout; grey for matte)
  mp4      H.264 (yuv420p; an odd width or height gets one duplicated column or row)
  prores   ProRes 4444 with alpha in a .mov (cutout)
  webm     VP9 with alpha in a .webm (cutout)

The masks are those 'persam-video segment' writes: <masks>/<frame name>.png for every
frame of VIDEO. Files are written under temporary names and renamed when complete.
Frame folders have no frame rate: their videos default to {DEFAULT_FPS:g} frames/s.
"""


def _colour(text: str) -> tuple:
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) <= 255 for p in parts):
        raise PersamError(f"--colour takes R,G,B from 0 to 255, e.g. 0,255,0, not {text!r}")
    return tuple(int(p) for p in parts)


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``export`` subcommand."""
    parser = add_command(sub, "export", "export overlays, mattes, alpha video, object removal or annotations",
        "Turn a video and its label PNGs into files for video editors: a coloured overlay, mattes, "
        "cut-outs with alpha, the objects removed, the background blurred or replaced, or annotation "
        "files, streaming the frames.", EPILOG)
    add_video_argument(parser, "the video the masks belong to")
    parser.add_argument("--masks", required=True, metavar="DIR",
                        help="folder of label PNGs, one per frame, named like the frames (the --out "
                             "folder of 'persam-video segment')")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output: a video file (.mp4, .mov, .webm, .mkv) or a folder (created if missing)")
    parser.add_argument("--kind", required=True, choices=KINDS, help="what to make (see below)")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="file format (default: from --out, see below)")
    parser.add_argument("--objects", metavar="IDS",
                        help="only these object ids, e.g. 1,3 (default: every id in the masks; 255 is "
                             "void and never an object); each must appear in some mask")
    parser.add_argument("--feather", type=float, default=None, metavar="PX",
                        help="soften the mask's edges with a Gaussian blur of this radius in pixels "
                             "(default: 0 for matte/cutout, 2 for blur/replace/keep)")
    parser.add_argument("--dilate", type=int, default=None, metavar="PX",
                        help=f"grow the masks by this many pixels first (default: {DEFAULT_DILATE} for "
                             "remove, where an edge left behind shows; 0 otherwise)")
    parser.add_argument("--strength", type=float, default=DEFAULT_STRENGTH, metavar="S",
                        help=f"blur: the Gaussian's sigma in pixels at 1080 lines (default: {DEFAULT_STRENGTH:g})")
    parser.add_argument("--background", metavar="IMG_OR_VIDEO",
                        help="replace: the picture or video behind the objects (fitted to the frame)")
    parser.add_argument("--colour", default="0,255,0", metavar="R,G,B",
                        help="keep: the colour behind the objects (default: 0,255,0)")
    parser.add_argument("--fps", type=float, default=None, metavar="N",
                        help="frame rate of a video output (default: the source video's, "
                             f"{DEFAULT_FPS:g} for a frame folder)")
    add_quiet(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the ``export`` subcommand."""
    result = export(args.video, args.masks, args.out, kind=args.kind, objects=parse_ids(args.objects),
                    feather=args.feather, fps=args.fps, progress=not args.quiet, format=args.format,
                    dilate=args.dilate, strength=args.strength, background=args.background,
                    colour=_colour(args.colour))
    if not args.quiet:
        what = {"png": f"{result.frames} PNGs", "json": f"COCO and YouTube-VIS files of {result.frames} frames"}.get(
            result.format, f"a {result.frames}-frame {result.format} video at {result.fps:g} frames/s")
        print(f"wrote {args.kind}: {what} to {result.out}", file=sys.stderr)
    return 0
