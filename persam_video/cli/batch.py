"""``persam-video batch``: every clip of a manifest, one output folder each, on local processes or Ray.

Also the executor flags ``davis run`` shares (``--executor``, ``--address``, ``--gpus-per-worker``,
``--retries``).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Tuple

from tqdm.auto import tqdm

from ..batch import EXECUTORS, Executor, make_executor, run_batch
from ..batch.executors import DEFAULT_RETRIES
from ..batch.ray_executor import INSTALL_HINT, import_ray
from ..errors import PersamError
from ..runtime.locking import output_lock
from .common import (
    add_command,
    add_method_options,
    add_model_options,
    add_quiet,
    add_read_ahead,
    check_read_ahead,
    check_threads,
    model_spec,
    tracker_options,
)

EPILOG = """examples:
  persam-video batch clips.csv --out results/ --workers 2
  persam-video batch clips.json --out results/ --ref-image cup.jpg --ref-mask cup.png
  persam-video batch clips.csv --out /shared/results --executor ray --address auto --workers 8 --gpus-per-worker 1

The manifest (CSV with a header row, or JSON) lists clips: video, and a mask (of frame 'start')
or a prompts file, or nothing when --ref-image/--ref-mask give one reference for all
(docs/batch.md). Each clip is written to OUT/<name>/, marked done with OUT/<name>/.done, and
skipped when the command is run again. OUT/summary.csv says what happened to every clip, as
clips finish. Exit status: 0 every clip done, 1 some clip failed (the others are done), 2 bad input.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``batch`` subcommand."""
    parser = add_command(sub, "batch", "segment every clip of a manifest (resumable; local processes or Ray)",
        "Segment every clip listed in a manifest into OUT/<clip>/<frame>.png, with a summary "
        "CSV written as clips finish. A clip that fails is reported and does not stop the others.", EPILOG)
    parser.add_argument("manifest", metavar="MANIFEST",
                        help="a CSV (header: video,mask,prompts,name,start,objects) or JSON file listing the clips; "
                             "paths are relative to its folder")
    parser.add_argument("--out", required=True, metavar="OUT",
                        help="output folder: OUT/<clip>/<frame>.png and OUT/summary.csv (created if missing)")
    parser.add_argument("--ref-image", action="append", default=[], metavar="IMG",
                        help="a reference image for every clip (repeatable, each with a --ref-mask)")
    parser.add_argument("--ref-mask", action="append", default=[], metavar="PNG",
                        help="the objects on the matching --ref-image (ids from the mask)")
    add_executor_options(parser, "clips")
    add_read_ahead(parser)
    add_quiet(parser, "no progress bars and no per-clip lines")
    add_method_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def add_executor_options(parser: argparse.ArgumentParser, units: str) -> None:
    """``--workers``, ``--executor``, ``--address``, ``--gpus-per-worker``, ``--retries`` (what
    :func:`executor` reads); ``units`` names what the workers run ("clips", "sequences")."""
    group = parser.add_argument_group("executor")
    group.add_argument("--workers", type=int, default=1, metavar="N",
                       help=f"{units} segmented in parallel, each worker loading the model once and using "
                            "max(1, CPUs // N) torch threads unless --threads is given (default: 1)")
    group.add_argument("--executor", choices=EXECUTORS, default="local",
                       help="local: processes of this machine; ray: workers on a Ray cluster (needs the [ray] "
                            "extra) (default: local)")
    group.add_argument("--address", metavar="ADDR",
                       help="with --executor ray: the cluster to join, 'auto' or ray://HOST:PORT (default: start a "
                            "local Ray); every path must be visible on every node")
    group.add_argument("--gpus-per-worker", type=float, default=0.0, metavar="G",
                       help="with --executor ray: GPUs each worker reserves (default: 0)")
    group.add_argument("--retries", type=int, default=DEFAULT_RETRIES, metavar="N",
                       help="times a clip is run again after its worker process died (default: %(default)s)")


def executor(args: argparse.Namespace) -> Executor:
    """The executor the flags ask for; errors worded with the flags."""
    if args.workers < 1:
        raise PersamError(f"--workers must be at least 1, not {args.workers}")
    if args.retries < 0:
        raise PersamError(f"--retries must be 0 or more, not {args.retries}")
    if args.gpus_per_worker < 0:
        raise PersamError(f"--gpus-per-worker must be 0 or more, not {args.gpus_per_worker}")
    if args.executor != "ray" and (args.address or args.gpus_per_worker):
        raise PersamError("--address and --gpus-per-worker go with --executor ray")
    if args.executor == "ray":
        try:
            import_ray()
        except PersamError:  # worded with the flag
            raise PersamError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return make_executor(args.executor, args.workers, args.retries, address=args.address,
                         gpus_per_worker=args.gpus_per_worker, progress=not args.quiet)


def references(args: argparse.Namespace) -> List[Tuple[str, str]]:
    """(image, mask) pairs from ``--ref-image`` / ``--ref-mask``, given in pairs."""
    if len(args.ref_image) != len(args.ref_mask):
        raise PersamError(f"--ref-image and --ref-mask go in pairs: got {len(args.ref_image)} image(s) "
                          f"and {len(args.ref_mask)} mask(s)")
    return list(zip(args.ref_image, args.ref_mask))


def run(args: argparse.Namespace) -> int:
    """Run ``batch``: 0 when every clip is done, 1 when some failed."""
    check_threads(args.threads)
    check_read_ahead(args.read_ahead)
    options = tracker_options(args)
    refs = references(args)
    chosen = executor(args)

    def log(text: str) -> None:
        if not args.quiet:
            tqdm.write(text, file=sys.stderr)

    def warn(text: str) -> None:  # printed even with --quiet
        tqdm.write(text, file=sys.stderr)

    with output_lock(args.out):
        result = run_batch(args.manifest, args.out, options, model_spec(args), chosen, references=refs,
                           threads=args.threads, read_ahead=args.read_ahead, progress=not args.quiet, log=log,
                           warn=warn)
    failed = result.with_status("failed")
    if not args.quiet:
        print(f"{len(result.with_status('done'))} clip(s) segmented, {len(result.with_status('skipped'))} already "
              f"done, {len(failed)} failed; summary in {result.summary}", file=sys.stderr)
    if failed:
        print(f"persam-video: {len(failed)} of {len(result.outcomes)} clip(s) failed: "
              + "; ".join(f"{o.clip} ({o.error})" for o in failed), file=sys.stderr)
        return 1
    return 0
