"""``persam-video perseg eval``: PerSeg's mIoU and mAcc of a results folder."""
from __future__ import annotations

import argparse
from typing import Optional

from .common import add_command, name_list

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
    ev.add_argument("--root", required=True, metavar="DIR", help="the PerSeg folder (Images/, Annotations/)")
    ev.add_argument("--results", required=True, metavar="DIR", help="the results folder: RESULTS/<object>/*.png")
    ev.add_argument("--ref-idx", default="00", metavar="NN",
                    help="the reference photo's name without extension, left out of the score (default: 00)")
    ev.add_argument("--objects", type=name_list, default=None, metavar="A,B",
                    help="score only these objects (default: every object folder of Annotations/)")
    ev.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> Optional[int]:
    """Run ``perseg eval``: print the table."""
    from ..perseg.evaluate import evaluate, format_report

    print(format_report(evaluate(args.root, args.results, args.ref_idx, args.objects)))
    return 0
