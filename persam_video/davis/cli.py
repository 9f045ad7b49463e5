"""The ``persam-video davis`` command and its actions (``eval``; ``run`` lives in runner.py)."""
from __future__ import annotations

import argparse
from typing import Optional

from ..cli_options import name_list
from ..errors import PersamError
from . import runner


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``davis`` and its actions to the top-level subcommands."""
    davis = subparsers.add_parser(
        "davis", help="DAVIS 2017 benchmark tools",
        description="DAVIS 2017 semi-supervised benchmark tools.")
    davis_sub = davis.add_subparsers(dest="davis_command", metavar="ACTION")
    davis_sub.required = True
    add_eval_parser(davis_sub)
    runner.add_parser(davis_sub)


def add_eval_parser(davis_sub: argparse._SubParsersAction) -> None:
    """Add ``davis eval``."""
    parser = davis_sub.add_parser(
        "eval", help="score a results folder with the official J and F measures",
        description="Score segmentation results against a DAVIS 2017 subset with the official "
                    "semi-supervised measures (J region similarity, F contour accuracy; first "
                    "and last frames left out; every object weighted once). Writes "
                    "global_results-<subset>.csv and per-sequence_results-<subset>.csv into the "
                    "results folder and prints both tables.")
    parser.add_argument("--davis-root", required=True, metavar="ROOT",
                        help="DAVIS 2017 folder holding JPEGImages/480p, Annotations/480p "
                             "and ImageSets/2017")
    parser.add_argument("--subset", default="val", metavar="NAME",
                        help="subset to score, read from ImageSets/2017/NAME.txt (default: val)")
    parser.add_argument("--results", required=True, metavar="RESULTS",
                        help="results folder with RESULTS/<sequence>/<frame>.png label maps "
                             "(indexed or 8-bit grey PNGs, same object ids and file names as "
                             "the annotations); the CSV files are written here")
    parser.add_argument("--sequences", type=name_list, metavar="A,B,...",
                        help="comma-separated sequences of the subset to score "
                             "(default: every sequence of the subset)")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes scoring sequences in parallel "
                             "(default: one per available CPU)")
    parser.set_defaults(run=run_eval)


def run_eval(args: argparse.Namespace) -> Optional[int]:
    """Evaluate, write both CSV files and print both tables."""
    from .evaluate import evaluate, format_tables, write_csvs

    report = evaluate(args.davis_root, args.subset, args.results,
                      sequences=args.sequences, workers=args.workers)
    try:
        paths = write_csvs(report, args.results, args.subset)
    except OSError as exc:
        raise PersamError(f"cannot write the CSV files in {args.results}: {exc}") from None
    print(format_tables(report))
    print("\nwritten: " + ", ".join(str(p) for p in paths))
    return 0
