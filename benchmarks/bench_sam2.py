"""Per-frame time of SAM2.1-tiny's video predictor against PerSAM on several models (default:
MobileSAM's vit_t, SAM's vit_b and SAM 2.1's hiera_tiny), on the same 3-object 480x854 synthetic clip.

The clip is ``make_clip`` written as JPEG frames (``bench_pipeline.write_clip``): SAM2's
predictor reads that folder; PerSAM gets the same JPEGs decoded in memory. Both are seeded on
frame 0 with each object's mask (SAM2 through ``add_new_mask``, PerSAM through
``VideoSegmenter.init``), then track frames 1..N-1. The two run interleaved, frame by frame
(SAM2's ``propagate_in_video`` is a generator), so load from other processes hits both alike.

Per tracked frame: the wall time of the frame, and of it the image encoder (SAM2: the
predictor's ``forward_image``; PerSAM: the tracker's own encoder timing); the rest is SAM2's
memory attention, mask decoding and memory encoding per object, or PerSAM's prompting and
decoding. SAM2 resizes and normalises every frame to 1024x1024 when it loads the folder (in
``init_state``, not counted per frame); PerSAM's resizing is inside its encoder time. The seed
frame is reported apart (SAM2: image encoder, mask prompts and the memory of frame 0). The
ratio is given on the mean times and as the median of the frame-by-frame ratios (the latter
shrugs off a load spike that hit one frame).

    python benchmarks/bench_sam2.py [--frames 8] [--threads 2] [--persam-settings exact,fused,bf16+compile]
                                    [--persam-models vit_t,vit_b,sam2.1_hiera_tiny] [--compile-cache DIR]
                                    [--device cpu|cuda] [--no-video-predictor]

Every PerSAM model runs every setting (a row each). The ``this / vit_b`` and ``this / vit_t``
columns compare a row's mean time per frame with the same setting's vit_b and vit_t rows (issue
39's goals for hiera_tiny: at most 0.3x vit_b and 2x vit_t on the exact path; at least 8x faster
than SAM2.1-tiny's video predictor, the ``SAM2 / this`` columns).

Each PerSAM setting is named as in bench_precision (``precision/attention[/decoder]`` or exact,
fused, bf16, with ``+compile`` or ``+int8``): ``exact`` (``fp32/plain``) is the default output
(segment_anything's modules as built), ``fused`` the fused attention and fast decoder,
``bf16+compile`` what ``--fast --compile on`` runs on a CPU with native bf16 (emulated bf16 is
slower). A compiled setting builds (or, from ``--compile-cache``, loads) its encoder on the seed
frame, which is reported apart.

Both models get seeded random weights (real architecture and cost, meaningless masks):
SAM2.1-tiny is built from the package's own ``configs/sam2.1/sam2.1_hiera_t.yaml`` on the CPU
with ``ckpt_path=None``, and runs as the package runs it there (float32). ``sam2`` is an
optional dependency (the ``[sam2]`` extra, which the PerSAM hiera rows also need); without it the
script says how to install it and exits with status 2.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")  # SAM2's progress bars; tqdm reads it when it is imported

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import SIZE, load_model, write_clip
from bench_precision import make_model

from persam_video.errors import PersamError
from persam_video.io.masks import object_ids, read_label_png
from persam_video.options import TrackerOptions
from persam_video.runtime.memory import keep_freed_memory
from persam_video.tracking.segmenter import VideoSegmenter

SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
VIDEO_PREDICTOR = "SAM2.1-tiny video predictor"
INSTALL_HINT = ("bench_sam2: the 'sam2' package is not importable; install the extra: "
                "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 (or pip install -e '.[sam2]')")


def import_sam2():
    """``sam2.build_sam.build_sam2_video_predictor``, or exit with status 2 and one line."""
    try:
        from sam2.build_sam import build_sam2_video_predictor
    except ImportError as exc:  # sam2, or one of its dependencies (hydra-core, iopath), missing
        print(f"{INSTALL_HINT} ({type(exc).__name__}: {exc})", file=sys.stderr)
        sys.exit(2)
    # Without the optional CUDA extension the predictor skips filling small holes (a post-processing
    # step on the low-res masks) and warns on every frame; the cost it would add is not counted.
    warnings.filterwarnings("ignore", message=".*Skipping the post-processing step.*")
    warnings.filterwarnings("ignore", message=".*cannot import name '_C'.*")
    return build_sam2_video_predictor


class Sam2Track:
    """SAM2.1-tiny's video predictor on a JPEG folder, one frame per :meth:`step`, timed."""

    def __init__(self, build, frames: Path, seed: np.ndarray, device: str = "cpu"):
        torch.manual_seed(0)
        self.predictor = build(SAM2_CONFIG, ckpt_path=None, device=device)
        self.encoder = 0.0
        forward_image = self.predictor.forward_image

        def timed_forward_image(img_batch):
            t0 = time.perf_counter()
            try:
                return forward_image(img_batch)
            finally:
                self.encoder += time.perf_counter() - t0

        self.predictor.forward_image = timed_forward_image
        with torch.inference_mode():
            t0 = time.perf_counter()
            self.state = self.predictor.init_state(str(frames))
            self.loading = time.perf_counter() - t0 - self.encoder  # JPEG reading, resizing, normalising
            t0 = time.perf_counter()
            encoder0 = self.encoder
            for k in object_ids(seed):
                self.predictor.add_new_mask(self.state, frame_idx=0, obj_id=k, mask=torch.from_numpy(seed == k))
            self.frames = self.predictor.propagate_in_video(self.state)
            next(self.frames)  # frame 0: the memory of the prompted masks
            self.seed_seconds = time.perf_counter() - t0 + encoder0

    def step(self) -> dict[str, float]:
        """Track the next frame; its wall seconds and encoder seconds."""
        encoder0 = self.encoder
        t0 = time.perf_counter()
        with torch.inference_mode():
            next(self.frames)
        return {"total": time.perf_counter() - t0, "encoder": self.encoder - encoder0}


class PersamTrack:
    """PerSAM (``VideoSegmenter``) on in-memory frames, one frame per :meth:`step`, timed."""

    def __init__(self, model: torch.nn.Module, frames: list[np.ndarray], seed: np.ndarray):
        self.segmenter = VideoSegmenter(model, TrackerOptions(method="persam"))
        self.frames = iter(frames[1:])
        t0 = time.perf_counter()
        self.segmenter.seed_frame(frames[0], seed)
        self.seed_seconds = time.perf_counter() - t0

    def step(self) -> dict[str, float]:
        """Track the next frame; its wall seconds and encoder seconds."""
        frame = next(self.frames)
        encoder0 = self.segmenter.timings.encoder
        t0 = time.perf_counter()
        self.segmenter.step(frame)
        return {"total": time.perf_counter() - t0, "encoder": self.segmenter.timings.encoder - encoder0}


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return ", ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames of the clip, the seed frame included "
                                                              "(default: %(default)s)")
    parser.add_argument("--objects", type=int, default=3, help="objects in the clip (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for both (default: %(default)s)")
    parser.add_argument("--persam-settings", default="exact,fused",
                        help="vit_t PerSAM settings, each a row: exact, fused, bf16 or precision/attention[/decoder] "
                             "as --precision, --attention and --decoder take them, with +compile or +int8 added "
                             "(default: %(default)s)")
    parser.add_argument("--persam-models", default="vit_t,vit_b,sam2.1_hiera_tiny",
                        help="PerSAM model types, each run with every setting (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--no-video-predictor", action="store_true",
                        help="leave SAM2.1-tiny's video predictor out (its ratio columns then read -)")
    parser.add_argument("--compile-cache", metavar="DIR", default=None,
                        help="where compiled encoders are kept (default: a new empty folder: cold builds)")
    args = parser.parse_args()
    kept = keep_freed_memory()  # for both models, as the command does ($PERSAM_VIDEO_KEEP_MEMORY=0: without)
    if args.frames < 2 or args.objects < 1 or args.threads < 1:
        parser.error("--frames must be at least 2, --objects and --threads at least 1")
    settings = args.persam_settings.split(",")
    build = import_sam2()
    torch.set_num_threads(args.threads)

    bases = {}
    for model_type in args.persam_models.split(","):
        try:
            bases[model_type] = load_model(model_type)[0].to(args.device)
        except PersamError as exc:
            parser.error(f"--persam-models: {model_type!r}: {exc}")
    persam_models = {}
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="bench_sam2_") as tmp:
        cache = Path(args.compile_cache) if args.compile_cache else Path(tmp) / "compiled"
        for model_type, base in bases.items():
            for name in settings:
                try:
                    persam_models[f"{model_type} {name}"] = make_model(base, name, cache)
                except (PersamError, ValueError) as exc:
                    parser.error(f"--persam-settings: {name!r}: {exc}")
        frames_dir = write_clip(Path(tmp), args.frames, args.objects, seed=20 + args.objects)
        seed = read_label_png(Path(tmp) / "seed.png")
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(frames_dir.glob("*.jpg"))]
        trackers = {} if args.no_video_predictor else {
            VIDEO_PREDICTOR: Sam2Track(build, frames_dir, seed, args.device)}
        for name, model in persam_models.items():
            trackers[f"PerSAM {name}"] = PersamTrack(model, frames, seed)
        times: dict[str, list[dict[str, float]]] = {name: [] for name in trackers}
        for i in range(1, args.frames):
            for name, tracker in trackers.items():
                times[name].append(tracker.step())
            print(f"frame {i}: " + "; ".join(f"{n} {t[-1]['total']:.2f} s" for n, t in times.items()),
                  file=sys.stderr, flush=True)
    load_after = load_average()

    import sam2
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, python {platform.python_version()}, "
          f"sam2 {getattr(sam2, '__version__', None) or _dist_version('sam2')}")
    print(f"clip {SIZE[0]}x{SIZE[1]}, {args.objects} objects seeded by their masks on frame 0, {args.frames} frames "
          f"({args.frames - 1} tracked), random weights, run interleaved frame by frame; "
          f"freed memory kept for reuse: {'yes' if kept else 'no'}; "
          f"load average before {load_before}, after {load_after}")
    if VIDEO_PREDICTOR in trackers:
        print(f"SAM2 read and resized the {args.frames} JPEG frames in {trackers[VIDEO_PREDICTOR].loading:.1f} s "
              f"(init_state, not counted below)")
    print(f"device: {args.device}\n")
    tail = min(2, args.frames - 1)
    print("| model | seed frame s | encoder s/frame | rest s/frame (memory + decoding) | s/frame (mean) | "
          f"first tracked frame s | last {tail} frames s | SAM2 / this (mean s/frame) | "
          "SAM2 / this (median per frame) | this / vit_b | this / vit_t |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    means = {name: statistics.mean(t["total"] for t in rows) for name, rows in times.items()}
    sam2_rows = times.get(VIDEO_PREDICTOR)
    for name, tracker in trackers.items():
        rows = times[name]
        mean = means[name]
        enc = statistics.mean(t["encoder"] for t in rows)
        last = ", ".join(f"{t['total']:.2f}" for t in rows[-tail:])
        versus_sam2 = "- | -" if sam2_rows is None else (
            f"{means[VIDEO_PREDICTOR] / mean:.1f}x | "
            f"{statistics.median(a['total'] / b['total'] for a, b in zip(sam2_rows, rows)):.1f}x")
        setting = name.split(" ")[-1]
        versus = [f"{mean / means[other]:.2f}x" if other in means else "-"
                  for other in (f"PerSAM vit_b {setting}", f"PerSAM vit_t {setting}")]
        print(f"| {name} | {tracker.seed_seconds:.2f} | {enc:.2f} | {mean - enc:.2f} | {mean:.2f} | "
              f"{rows[0]['total']:.2f} | {last} | {versus_sam2} | {' | '.join(versus)} |")
    print("\nper tracked frame, s: " + "; ".join(
        f"{name}: " + " ".join(f"{t['total']:.2f}" for t in rows) for name, rows in times.items()))


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    main()
