"""The ``persam-video`` command: one module per subcommand, shared options in ``common``."""
from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from ..errors import PersamError
from ..runtime.memory import keep_freed_memory
from ..runtime.processes import Terminated, interruptible

ENVIRONMENT = """environment:
  PERSAM_VIDEO_CACHE        where checkpoints and compiled encoders are kept (~/.cache/persam-video)
  PERSAM_VIDEO_MIRROR       another host for the official checkpoints' download
  PERSAM_VIDEO_THREADS=N    torch's thread count, as --threads N
  PERSAM_VIDEO_NATIVE_BF16  1 or 0: say whether the CPU has native bf16 (precision auto)
  PERSAM_VIDEO_KEEP_MEMORY  0: give freed memory back to the system at once (default 1: keep it
                            for the next frame; faster, the process holds its peak memory)"""


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="persam-video",
        description="Segment chosen objects through a video from one annotated frame, "
                    "with PerSAM / PerSAM-F on Segment Anything.",
        epilog=ENVIRONMENT, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    from . import batch, davis, demo, export, images, perseg, segment
    for command in (segment, images, batch, davis, perseg, demo, export):
        command.add_parser(sub)
    from . import ui
    ui.add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point: run a subcommand; user errors become one line on stderr and exit status 2.

    Ctrl-C (SIGINT) and SIGTERM stop the command's workers, keep only complete files and exit
    130 / 143 (128 + the signal's number, as a shell reports a process killed by it) with one line.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        keep_freed_memory()
        with interruptible():
            return int(args.run(args) or 0)
    except PersamError as exc:
        print(f"persam-video: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("persam-video: interrupted (Ctrl-C); only complete files were kept", file=sys.stderr)
        return 130
    except Terminated:
        print("persam-video: terminated (SIGTERM); only complete files were kept", file=sys.stderr)
        return 143
    except BrokenPipeError:
        # the reader of our output went away (e.g. `| head`): stop quietly, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
