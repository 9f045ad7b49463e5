#!/usr/bin/env python
"""Write a DAVIS-2017-layout dataset of synthetic clips (see tools/synthetic.py).

Example::

    python tools/make_synthetic_davis.py --out /tmp/synth-davis --sequences 8 --frames 40
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from synthetic import write_davis_dataset  # noqa: E402  (tools/, this script's folder)


def parse_size(text: str) -> Tuple[int, int]:
    """'480x854' -> (480, 854): height x width."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 480x854, not {text!r}") from None
    if h < 16 or w < 16:
        raise argparse.ArgumentTypeError("size must be at least 16x16")
    return h, w


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="dataset root to write")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    parser.add_argument("--sequences", type=int, default=10, help="number of sequences (default 10)")
    parser.add_argument("--frames", type=int, default=50, help="frames per sequence (default 50)")
    parser.add_argument("--size", type=parse_size, default=(480, 854), help="frame size HxW (default 480x854)")
    parser.add_argument("--subset", default="val", help="ImageSets/2017/<subset>.txt name (default val)")
    parser.add_argument("--min-objects", type=int, default=1)
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--void-width", type=int, default=3,
                        help="void (255) band around boundaries in pixels, 0 for none (default 3)")
    parser.add_argument("--leave-prob", type=float, default=0.4,
                        help="probability that a sequence has an object leaving and re-entering (default 0.4)")
    args = parser.parse_args(argv)
    if not 1 <= args.min_objects <= args.max_objects:
        parser.error("need 1 <= --min-objects <= --max-objects")
    names = write_davis_dataset(args.out, seed=args.seed, n_sequences=args.sequences, n_frames=args.frames,
                                size=args.size, subset=args.subset, objects=(args.min_objects, args.max_objects),
                                void_width=args.void_width, leave_prob=args.leave_prob, progress=True)
    print(f"wrote {len(names)} sequences to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
