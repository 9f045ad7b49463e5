"""``persam-video demo``: a synthetic clip segmented end to end, scored against its ground truth."""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence, Tuple

import numpy as np

from ..davis.metrics import f_measure, j_measure, summarise
from ..demo_clip import make_clip
from ..errors import PersamError
from ..export import export, write_video
from ..io.files import ensure_writable_dir
from ..io.masks import object_ids, read_label_png, write_label_png
from ..io.prompts import mask_prompts
from ..pipeline import segment_video
from .common import (
    add_command,
    add_method_options,
    add_model_options,
    add_quiet,
    check_threads,
    load_model,
    tracker_options,
)

DEMO_SEED = 2024
DEMO_SIZE = (240, 426)  # (height, width): 16:9, even sizes so the input H.264 keeps every pixel
DEMO_OBJECTS = 3
DEMO_FPS = 24.0
MIN_FRAMES, MAX_FRAMES = 3, 1000

EPILOG = """examples:
  persam-video demo
  persam-video demo --out /tmp/demo --frames 20 --method persam
  persam-video demo --model-type vit_b --checkpoint sam_vit_b_01ec64.pth --device cuda

Writes into DIR: clip.mp4 (the synthetic video), ground_truth/ (its exact label maps;
00000.png seeds the tracker), masks/ (the predicted label maps) and overlay.mp4, then
prints J (region similarity), F (contour accuracy) and J&F per object and their mean,
leaving out the first and last frame as the DAVIS benchmark does.
"""


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register the ``demo`` subcommand."""
    parser = add_command(sub, "demo", "segment a synthetic clip end to end and score it (no data needed)",
        "Make a short synthetic clip of moving textured objects with exact ground truth, "
        "segment it from its first frame with PerSAM-F and the bundled 'small' model "
        "(or the model options), write the masks and an overlay video and print J, F "
        "and J&F against the ground truth.", EPILOG)
    parser.add_argument("--out", default="persam-video-demo", metavar="DIR",
                        help="output folder (created if missing; default: %(default)s)")
    parser.add_argument("--frames", type=int, default=40, metavar="N",
                        help=f"length of the clip, {MIN_FRAMES} to {MAX_FRAMES} frames (default: %(default)s)")
    add_quiet(parser, "no progress bars")
    add_method_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


@dataclass
class Score:
    """Mean J and F of one object over the scored frames."""

    obj_id: int
    j: float
    f: float

    @property
    def jf(self) -> float:
        """(J + F) / 2."""
        return (self.j + self.f) / 2


def score_masks(masks: Sequence[np.ndarray], truth: Sequence[np.ndarray], ids: Sequence[int]) -> List[Score]:
    """J and F per object of predicted label maps against ground truth, DAVIS style.

    The first and last frame are left out (the first is the given seed); each object's
    score is the mean of its per-frame values.
    """
    if len(masks) != len(truth) or len(truth) < MIN_FRAMES:
        raise PersamError(f"need {MIN_FRAMES} or more frames of masks and ground truth to score, "
                          f"got {len(masks)} and {len(truth)}")
    pred = np.stack(masks[1:-1])
    gt = np.stack(truth[1:-1])
    scores = []
    for k in ids:
        res, ref = pred == k, gt == k
        scores.append(Score(int(k), summarise(j_measure(res, ref))[0], summarise(f_measure(res, ref))[0]))
    return scores


def format_scores(scores: Sequence[Score]) -> str:
    """A small table: one row per object and the mean over objects."""
    lines = [f"{'object':>8}  {'J':>6}  {'F':>6}  {'J&F':>6}"]
    for s in scores:
        lines.append(f"{s.obj_id:>8}  {s.j:6.3f}  {s.f:6.3f}  {s.jf:6.3f}")
    j = float(np.mean([s.j for s in scores]))
    f = float(np.mean([s.f for s in scores]))
    lines.append(f"{'mean':>8}  {j:6.3f}  {f:6.3f}  {(j + f) / 2:6.3f}")
    lines.append(f"J&F mean: {(j + f) / 2:.3f} (J {j:.3f}, F {f:.3f})")
    return "\n".join(lines)


def write_clip(out: Path, frames: np.ndarray, labels: np.ndarray) -> Tuple[Path, Path]:
    """Write the clip as an mp4 and its ground truth as indexed PNGs; return both paths."""
    video = out / "clip.mp4"
    truth = out / "ground_truth"
    truth.mkdir(parents=True, exist_ok=True)
    write_video(video, iter(frames), fps=DEMO_FPS, quality=10)
    for i, lab in enumerate(labels):
        write_label_png(truth / f"{i:05d}.png", lab)
    return video, truth


def run(args: argparse.Namespace) -> int:
    """Run the ``demo`` subcommand."""
    if not MIN_FRAMES <= args.frames <= MAX_FRAMES:
        raise PersamError(f"--frames must be between {MIN_FRAMES} and {MAX_FRAMES}, not {args.frames}")
    options = tracker_options(args)  # a bad method option fails before anything is loaded or written
    check_threads(args.threads)
    out = Path(args.out)
    ensure_writable_dir(out)
    progress = not args.quiet
    # the model first: missing bundled weights fail before anything is written
    model = load_model(args, progress=progress)

    clip = make_clip(seed=DEMO_SEED, n_frames=args.frames, size=DEMO_SIZE, n_objects=DEMO_OBJECTS)
    try:
        video, truth_dir = write_clip(out, clip.frames, clip.labels)
    except OSError as exc:
        raise PersamError(f"cannot write the demo clip into {out}: {exc.strerror or exc}") from None
    ids = object_ids(clip.labels[0])
    del clip  # the ground truth is read back from disk below

    masks_dir = out / "masks"
    summary = segment_video(video, masks_dir, mask_prompts(truth_dir / "00000.png"), options, model,
                            direction="forward", resume=False, progress=progress, desc=f"segmenting ({args.method})")
    overlay = out / "overlay.mp4"
    export(video, masks_dir, overlay, kind="overlay", fps=DEMO_FPS, progress=progress)

    names = sorted(path.stem for path in truth_dir.glob("*.png"))  # the video's frame names
    predicted = [read_label_png(masks_dir / f"{n}.png") for n in names]
    truth = [read_label_png(truth_dir / f"{n}.png") for n in names]
    scores = score_masks(predicted, truth, ids)

    print(f"demo: {len(names)} frames {DEMO_SIZE[1]}x{DEMO_SIZE[0]}, objects {','.join(map(str, ids))}, "
          f"{args.method}, model {args.model_type}; {summary.line()}")
    print(f"scored on frames 1..{len(names) - 2} (first and last left out, as in DAVIS):")
    print(format_scores(scores))
    print("written:")
    for label, path in (("clip", video), ("ground truth", truth_dir), ("masks", masks_dir), ("overlay", overlay)):
        print(f"  {label + ':':14}{path}")
    sys.stdout.flush()
    return 0
