"""``persam-video images``: one or more reference photos, then every photo of a collection."""
from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from typing import Optional

from tqdm.auto import tqdm

from ..errors import PersamError
from ..io.photos import MAX_PIXELS, list_photos
from ..model.loading import sha256_of
from ..photos.collection import EXPORTS, photo_references, segment_collection
from ..photos.fit_report import FitBar, fit_summary
from ..photos.personalizer import ImagePersonalizer
from ..runtime.locking import output_lock
from .common import (
    add_command,
    add_model_options,
    add_photo_options,
    add_quiet,
    check_threads,
    load_model,
    model_spec,
    photo_options,
)

EPILOG = """examples:
  persam-video images --ref-image dog.jpg --ref-mask dog.png album/ --out masks/
  persam-video images --ref-image a.jpg --ref-mask a.png --ref-image b.jpg --ref-mask b.png photos.txt --out out/
  persam-video images --ref-image dog.jpg --ref-mask dog.png album/ --out out/ --method persam-f --export cutout
  persam-video images --ref-image dog.heic --ref-mask dog.png iphone-album/ --out out/ --presence auto --coco dog.json

Writes OUT/<photo name>.png (a label PNG at the photo's size, the mask's object ids) for every
photo and OUT/summary.csv (photo, object, found, score, similarity, area, seconds, error,
presence_threshold, skipped). A photo that cannot be read is reported there and the others go on
(exit 1); a folder's files that are not photos are listed there as skipped, with the reason.
Photos are read upright (EXIF orientation applied), as a viewer shows them; HEIC/HEIF need the
heif extra (pillow-heif), AVIF a Pillow built with it.
"""


def add_album_options(parser: argparse.ArgumentParser) -> None:
    """``--coco`` and ``--max-pixels``: what ``images`` and ``perseg run`` share about an album."""
    parser.add_argument("--coco", default=None, metavar="FILE",
                        help="also write the masks as COCO instance annotations (RLE, one category per object), "
                             "for CVAT, Label Studio or Roboflow")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS, metavar="N",
                        help="refuse a photo of more than N pixels, from its header before decoding it, instead of "
                             "running out of memory (default: %(default)s)")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``images`` to the top-level subcommands."""
    parser = add_command(subparsers, "images", "find the objects of reference photos in every photo of a collection",
                         "Personalise SAM with one or more reference photos and their masks (PerSAM, training-free, "
                         "or PerSAM-F, two weights fitted per object), then segment those objects in every photo: "
                         "each photo on its own, any size.", EPILOG)
    parser.add_argument("photos", nargs="+", metavar="PHOTOS",
                        help="photo files, folders (searched recursively, sorted) or list files (.txt, one path "
                             "per line)")
    parser.add_argument("--ref-image", action="append", required=True, metavar="IMG",
                        help="a reference photo (repeat with --ref-mask for several references)")
    parser.add_argument("--ref-mask", action="append", required=True, metavar="PNG",
                        help="the objects on the matching --ref-image: an indexed PNG (their ids) or a 0/255 mask "
                             "(object 1)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (created if missing)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="photos segmented at once, each worker a process with its own model (default: 1)")
    parser.add_argument("--restart", action="store_true",
                        help="redo every photo (default: a rerun with the same references and settings skips the "
                             "photos a killed run had done)")
    parser.add_argument("--export", choices=EXPORTS, default=None,
                        help="also write, per found object, OUT/<kind>/<photo>_<id>.png: an RGBA cut-out, a grey "
                             "matte, or the subject on white")
    add_album_options(parser)
    add_quiet(parser, "no progress bar")
    add_photo_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> Optional[int]:
    """Run ``images``."""
    check_threads(args.threads)
    if args.workers < 1:
        raise PersamError(f"--workers must be at least 1, not {args.workers}")
    if len(args.ref_image) != len(args.ref_mask):
        raise PersamError(f"{len(args.ref_image)} --ref-image but {len(args.ref_mask)} --ref-mask: give them in pairs")
    options = photo_options(args)
    references = [ref for image, mask in zip(args.ref_image, args.ref_mask)
                  for ref in photo_references(image, mask)]
    if args.max_pixels < 1:
        raise PersamError(f"--max-pixels must be at least 1, not {args.max_pixels}")
    album = list_photos(args.photos)
    photos = album.photos
    with output_lock(args.out):
        model = load_model(args, progress=not args.quiet)
        bar = FitBar(options, enabled=not args.quiet)
        try:
            personalizer = ImagePersonalizer(model, references, options, on_progress=bar)
        finally:
            bar.close()
        for line in [] if args.quiet else fit_summary(personalizer):
            print(line, file=sys.stderr)
        settings = {**asdict(options), "model_type": args.model_type,
                    "weights_sha256": model_spec(args).weights_sha256(), "numerics": getattr(model, "numerics", ""),
                    "references": [[sha256_of(image)[:16], sha256_of(mask)[:16]]
                                   for image, mask in zip(args.ref_image, args.ref_mask)]}
        done = segment_collection(personalizer, photos, args.out, export=args.export, progress=not args.quiet,
                                  log=lambda text: tqdm.write(text, file=sys.stderr), settings=settings,
                                  restart=args.restart, workers=args.workers, model=model_spec(args),
                                  skipped=album.skipped, max_pixels=args.max_pixels, coco=args.coco)
    if not args.quiet:
        found = sum(1 for row in done.rows if row.get("found") == 1)
        skipped = f", {len(album.skipped)} file(s) not photos skipped" if album.skipped else ""
        print(f"{len(photos) - len(done.failed)} photo(s) segmented, {found} object(s) found{skipped}; masks and "
              f"{done.summary.name} in {args.out}", file=sys.stderr)
    if done.failed:
        print(f"persam-video: {len(done.failed)} photo(s) could not be read: {'; '.join(done.failed)}",
              file=sys.stderr)
        return 1
    return 0
