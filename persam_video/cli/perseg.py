"""``persam-video perseg eval``: PerSeg's mIoU and mAcc of a results folder."""
from __future__ import annotations

import argparse
import sys
from typing import Optional

from ..errors import PersamError
from .common import (
    add_command,
    add_model_options,
    add_photo_options,
    add_quiet,
    check_threads,
    load_model,
    model_spec,
    name_list,
    photo_options,
)
from .images import add_album_options

RUN_EPILOG = """examples:
  persam-video perseg run --root PerSeg --out results/ --eval
  persam-video perseg run --root PerSeg --out results/ --method persam-f --model-type vit_b \\
      --checkpoint sam_vit_b_01ec64.pth
"""

EVAL_EPILOG = """examples:
  persam-video perseg eval --root PerSeg --results results/
  persam-video perseg eval --root PerSeg --results results/ --objects dog,cat_statue

The results hold one mask per photo, RESULTS/<object>/<name>.png, the reference photo's
included: masks and annotations are paired by sorted name, as eval_miou.py pairs them.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``perseg`` and its actions to the top-level subcommands."""
    perseg = add_command(subparsers, "perseg", "PerSeg photo benchmark tools",
                         "PerSeg photo benchmark tools (one reference photo per object, every other photo scored).")
    actions = perseg.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    ev = add_command(actions, "eval", "score a results folder: per-object IoU and accuracy, mIoU and mAcc",
                     "Score RESULTS/<object>/*.png against PerSeg's annotations with eval_miou.py's measures: "
                     "masks read as grey > 0, intersection and union summed over an object's photos (the "
                     "reference left out), IoU and accuracy per object, their means over objects.",
                     EVAL_EPILOG)
    ev.add_argument("--results", required=True, metavar="DIR", help="the results folder: RESULTS/<object>/*.png")
    add_dataset_options(ev, "score")
    ev.set_defaults(run=run_eval)

    run_cmd = add_command(actions, "run", "segment every object's photos from its reference photo",
                          "Segment every photo of each PerSeg object from its reference photo and mask (PerSAM or "
                          "PerSAM-F, the public image recipe) into OUT/<object>/<name>.png, the reference included, "
                          "as perseg eval expects. A rerun skips the objects already done with the same settings.",
                          RUN_EPILOG)
    run_cmd.add_argument("--out", required=True, metavar="DIR", help="results folder: OUT/<object>/<name>.png")
    add_dataset_options(run_cmd, "segment")
    run_cmd.add_argument("--eval", action="store_true", help="score the results afterwards (perseg eval)")
    add_album_options(run_cmd)
    add_quiet(run_cmd, "no progress bar")
    add_photo_options(run_cmd)
    add_model_options(run_cmd)
    run_cmd.set_defaults(run=run_run)


def add_dataset_options(parser: argparse.ArgumentParser, verb: str) -> None:
    """``--root``, ``--ref-idx`` and ``--objects``, shared by ``perseg run`` and ``perseg eval``."""
    parser.add_argument("--root", required=True, metavar="DIR", help="the PerSeg folder (Images/, Annotations/)")
    parser.add_argument("--ref-idx", default="00", metavar="NN",
                        help="the reference photo's name without extension (default: 00); eval leaves it out of "
                             "the score")
    parser.add_argument("--objects", type=name_list, default=None, metavar="A,B",
                        help=f"{verb} only these objects (default: every object folder of Annotations/)")


def run_run(args: argparse.Namespace) -> Optional[int]:
    """Run ``perseg run``."""
    from ..perseg.evaluate import evaluate, format_report
    from ..perseg.runner import run_perseg
    from ..runtime.locking import output_lock

    check_threads(args.threads)
    options = photo_options(args)
    if options.presence == "auto":
        raise PersamError("--presence auto is for images (an album where the object is sometimes absent); every "
                          "PerSeg photo shows its object")
    with output_lock(args.out):
        model = load_model(args, progress=not args.quiet)
        run_perseg(args.root, args.out, options, model_spec(args), model, args.ref_idx, args.objects,
                   progress=not args.quiet, log=lambda text: None if args.quiet else print(text, file=sys.stderr),
                   max_pixels=args.max_pixels, coco=args.coco)
    if args.eval:
        print(format_report(evaluate(args.root, args.out, args.ref_idx, args.objects)))
    return 0


def run_eval(args: argparse.Namespace) -> Optional[int]:
    """Run ``perseg eval``: print the table."""
    from ..perseg.evaluate import evaluate, format_report

    print(format_report(evaluate(args.root, args.results, args.ref_idx, args.objects)))
    return 0
