"""``persam-video davis``: ``run`` (segment a DAVIS 2017 subset, resumably) and ``eval`` (score it)."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from tqdm.auto import tqdm

from ..davis.runner import run_davis
from ..errors import PersamError
from ..runtime.locking import output_lock
from .batch import add_executor_options, executor
from .common import (
    add_command,
    add_method_options,
    add_model_options,
    add_quiet,
    add_read_ahead,
    check_read_ahead,
    check_threads,
    model_spec,
    name_list,
    tracker_options,
)

RUN_EPILOG = """examples:
  persam-video davis run --davis-root DAVIS --subset val --out results/ --method persam --eval
  persam-video davis run --davis-root DAVIS --sequences bike-packing,dogs-jump --out results/ --workers 2
  persam-video davis run --davis-root DAVIS --out results/ --model-type vit_b --checkpoint sam_vit_b_01ec64.pth

A rerun with the same --out skips the sequences that finished (RESULTS/<seq>/.done) and
redoes the others from their first frame.
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add ``davis`` and its actions to the top-level subcommands."""
    davis = add_command(subparsers, "davis", "DAVIS 2017 benchmark tools",
        "DAVIS 2017 semi-supervised benchmark tools.")
    davis_sub = davis.add_subparsers(dest="davis_command", metavar="ACTION")
    davis_sub.required = True
    _add_eval_parser(davis_sub)
    _add_run_parser(davis_sub)


def _add_dataset_options(parser: argparse.ArgumentParser, subset_help: str) -> None:
    parser.add_argument("--davis-root", required=True, metavar="ROOT",
                        help="DAVIS 2017 folder holding JPEGImages/480p, Annotations/480p and ImageSets/2017")
    parser.add_argument("--subset", default="val", metavar="NAME",
                        help=f"{subset_help}, read from ImageSets/2017/NAME.txt (default: val)")
    parser.add_argument("--sequences", type=name_list, metavar="A,B,...",
                        help="comma-separated sequences of the subset (default: all of them)")


def _add_run_parser(davis_sub: argparse._SubParsersAction) -> None:
    parser = add_command(davis_sub, "run", "segment every sequence of a DAVIS 2017 subset (resumable)",
        "Segment every sequence of a DAVIS 2017 subset from its first annotation and write "
        "RESULTS/<sequence>/<frame>.png. Finished sequences are marked with "
        "RESULTS/<sequence>/.done and skipped when the command is run again; unfinished "
        "ones are redone from scratch.", RUN_EPILOG)
    _add_dataset_options(parser, "sequences to run")
    parser.add_argument("--out", required=True, metavar="RESULTS",
                        help="results folder: RESULTS/<sequence>/<frame>.png (created if missing)")
    add_executor_options(parser, "sequences")
    parser.add_argument("--eval", action="store_true",
                        help="then score the results (like 'davis eval'), write both CSV files into "
                             "RESULTS and print the tables")
    add_read_ahead(parser)
    add_quiet(parser, "no progress bars and no per-sequence lines")
    add_method_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def _add_eval_parser(davis_sub: argparse._SubParsersAction) -> None:
    parser = add_command(davis_sub, "eval", "score a results folder with the official J and F measures",
        "Score segmentation results against a DAVIS 2017 subset with the official "
        "semi-supervised measures (J region similarity, F contour accuracy; first "
        "and last frames left out; every object weighted once). Writes "
        "global_results-<subset>.csv and per-sequence_results-<subset>.csv into the "
        "results folder and prints both tables.")
    _add_dataset_options(parser, "subset to score")
    parser.add_argument("--results", required=True, metavar="RESULTS",
                        help="results folder with RESULTS/<sequence>/<frame>.png label maps "
                             "(indexed or 8-bit grey PNGs, same object ids and file names as "
                             "the annotations); the CSV files are written here")
    parser.add_argument("--workers", type=int, metavar="N",
                        help="processes scoring sequences in parallel (default: one per available CPU)")
    parser.set_defaults(run=run_eval)


def run(args: argparse.Namespace) -> int:
    """Run ``davis run`` (and score the results with ``--eval``)."""
    chosen = executor(args)  # also checks --workers
    check_threads(args.threads)
    check_read_ahead(args.read_ahead)
    options = tracker_options(args)  # a bad method option fails here, before any model is loaded

    def log(text: str) -> None:
        if not args.quiet:
            tqdm.write(text, file=sys.stderr)

    def warn(text: str) -> None:  # printed even with --quiet: these results are not what was asked for
        tqdm.write(text, file=sys.stderr)

    with output_lock(args.out):  # one writer per results folder; a second run stops here, having written nothing
        done = run_davis(args.davis_root, args.subset, args.sequences, args.out, options, model_spec(args),
                         workers=args.workers, threads=args.threads, read_ahead=args.read_ahead,
                         progress=not args.quiet, log=log, warn=warn, executor=chosen)
        if not args.quiet:
            print(f"{len(done.segmented)} sequence(s) segmented, {len(done.skipped)} already done; "
                  f"results in {args.out}", file=sys.stderr)
        if done.failed:  # the others are done; a rerun retries these
            print(f"persam-video: {len(done.failed)} of {len(done.names)} sequence(s) failed"
                  f"{', not scored' if args.eval else ''}: "
                  + "; ".join(f"{o.clip} ({o.error})" for o in done.failed), file=sys.stderr)
            return 1
        if args.eval:
            report_scores(args.davis_root, args.subset, args.out, done.names, args.workers)
    return 0


def run_eval(args: argparse.Namespace) -> Optional[int]:
    """Run ``davis eval``."""
    report_scores(args.davis_root, args.subset, args.results, args.sequences, args.workers)
    return 0


def report_scores(davis_root: str, subset: str, results: str, sequences: Optional[List[str]],
                  workers: Optional[int]) -> None:
    """Evaluate ``results``, write both CSV files into it and print both tables."""
    from ..davis.evaluate import evaluate, format_tables, write_csvs

    if workers is not None and workers < 1:
        raise PersamError(f"--workers must be at least 1, not {workers}")
    report = evaluate(davis_root, subset, results, sequences=sequences, workers=workers)
    try:
        paths = write_csvs(report, results, subset)
    except OSError as exc:
        raise PersamError(f"cannot write the CSV files in {results}: {exc.strerror or exc}") from None
    print(format_tables(report))
    print("\nwritten: " + ", ".join(str(p) for p in paths))
