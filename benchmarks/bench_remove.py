"""Object removal against the true background: cv2.inpaint (Telea) per frame vs `export --kind remove`.

Synthetic clips (persam_video.demo_clip, without shadows) are rendered twice from one seed, with and without object 1,
so the background behind it is known; the objects move at ``--speeds`` (fractions of the short
side per frame) over a panning background. A real clip (``--real PATH``, e.g. OpenCV's
vtest.avi) gets a synthetic hole, an ellipse moving across it: the true background is then the
footage itself. Inside the hole: PSNR and SSIM against the true background, and flicker (mean
absolute difference of the filled pixels between consecutive frames after compensating the
scene's motion, measured by DIS flow on the true background; the true background's own value is
the floor). Wall seconds per frame, CPU seconds per frame of the removal (all its threads:
what it costs on 2 free cores, whatever else the machine runs) and the peak of memory allocated
while removing (tracemalloc) are measured on the synthetic clips. Prints a markdown table.

    python benchmarks/bench_remove.py [--seeds 0,1,2,3] [--frames 30] [--size 480x854]
                                      [--speeds 0.012,0.03] [--real PATH] [--real-frames 60]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from persam_video.demo_clip import Track, clip_frames, stack_clip  # noqa: E402
from persam_video.export.holes import grow  # noqa: E402
from persam_video.export.removal import REACH, Remover, inpaint_frame  # noqa: E402
from persam_video.io.frames import open_frames  # noqa: E402

DILATE = 4


def psnr(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    error = ((a[region].astype(np.float64) - b[region].astype(np.float64)) ** 2).mean()
    return float(10 * np.log10(255.0 ** 2 / max(error, 1e-10)))


def ssim(a: np.ndarray, b: np.ndarray, region: np.ndarray) -> float:
    """Mean SSIM (grey, Gaussian window of sigma 1.5) over the pixels of ``region``."""
    x = cv2.cvtColor(a, cv2.COLOR_RGB2GRAY).astype(np.float64)
    y = cv2.cvtColor(b, cv2.COLOR_RGB2GRAY).astype(np.float64)

    def blur(z: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(z, (11, 11), 1.5)

    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    value = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(value[region].mean())


def flicker(results: List[np.ndarray], truth: List[np.ndarray], holes: List[np.ndarray]) -> float:
    """Mean |result_t - result_{t-1} moved by the true scene's flow| over the hole of frame t."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    h, w = holes[0].shape
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    values = []
    for t in range(1, len(results)):
        if not holes[t].any():
            continue
        grey = [cv2.cvtColor(truth[i], cv2.COLOR_RGB2GRAY) for i in (t, t - 1)]
        flow = dis.calc(grey[0], grey[1], None)
        moved = cv2.remap(results[t - 1], xs + flow[..., 0], ys + flow[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
        values.append(np.abs(results[t].astype(np.float32) - moved.astype(np.float32))[holes[t]].mean())
    return float(np.mean(values))


def remove(frames: List[np.ndarray], holes: List[np.ndarray]) -> Tuple[List[np.ndarray], float, float]:
    """The cleaned frames, wall seconds and CPU seconds (all threads of the process) per frame."""
    remover = Remover(frames[0].shape[:2])
    out: List[np.ndarray] = []
    start, cpu = time.perf_counter(), time.process_time()
    for frame, hole in zip(frames, holes):
        out += remover.push(frame, hole)
    out += remover.finish()
    return out, (time.perf_counter() - start) / len(frames), (time.process_time() - cpu) / len(frames)


def peak_memory(frames: List[np.ndarray], holes: List[np.ndarray]) -> float:
    """MiB allocated at the peak of a removal run, beyond the clip already in memory."""
    tracemalloc.start()
    remover = Remover(frames[0].shape[:2])
    for frame, hole in zip(frames, holes):
        remover.push(frame, hole)  # results dropped at once, as a file writer would
    remover.finish()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def score(name: str, frames, holes, truth, timing: bool) -> Dict[str, object]:
    start = time.perf_counter()
    telea = [inpaint_frame(f, h) for f, h in zip(frames, holes)]
    telea_s = (time.perf_counter() - start) / len(frames)
    ours, ours_s, ours_cpu = remove(frames, holes)
    shown = [t for t, h in enumerate(holes) if h.any()]
    row: Dict[str, object] = {"clip": name, "hole": float(np.mean([h.mean() for h in holes]))}
    for label, results, seconds in (("a", telea, telea_s), ("b", ours, ours_s)):
        row[f"psnr_{label}"] = np.mean([psnr(results[t], truth[t], holes[t]) for t in shown])
        row[f"ssim_{label}"] = np.mean([ssim(results[t], truth[t], holes[t]) for t in shown])
        row[f"flicker_{label}"] = flicker(results, truth, holes)
        row[f"s_{label}"] = seconds
    row["flicker_true"] = flicker(truth, truth, holes)
    row["cpu_b"] = ours_cpu
    row["mib"] = peak_memory(frames, holes) if timing else float("nan")
    return row


def _no_shadow(rng: np.random.Generator, k: int, track: Track) -> Track:
    track.obj.shadow = False  # a shadow is background the mask misses: no method could remove it
    return track


def _render(seed: int, frames: int, size: Tuple[int, int], speed: float, hidden: Tuple[int, ...]):
    rng = np.random.default_rng(seed)
    rng.permutation(2)  # as demo_clip.make_clip draws it, so a seed gives the demo's clip
    return stack_clip(clip_frames(rng, frames, size, 2, speed=speed, adjust=_no_shadow, hidden=hidden))


def synthetic(seed: int, frames: int, size: Tuple[int, int], speed: float):
    """The clip (objects 1 and 2, no shadows), the hole of object 1 grown by DILATE, the clip without object 1."""
    clip = _render(seed, frames, size, speed, ())
    clean = _render(seed, frames, size, speed, (1,))
    holes = [grow(labels == 1, DILATE) for labels in clip.labels]
    return list(clip.frames), holes, list(clean.frames)


def real(path: str, frames: int):
    """The footage and an ellipse (a quarter of the height) crossing it left to right: a hole with known truth."""
    source = open_frames(path)
    pictures = [f.image for _, f in zip(range(frames), source.frames())]
    h, w = pictures[0].shape[:2]
    holes = []
    for t in range(len(pictures)):
        hole = np.zeros((h, w), np.uint8)
        cx = int(w * (0.15 + 0.7 * t / max(1, len(pictures) - 1)))
        cv2.ellipse(hole, (cx, int(h * 0.55)), (int(h * 0.08), int(h * 0.2)), 0, 0, 360, 1, -1)
        holes.append(hole > 0)
    return pictures, holes, pictures


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
                 platform.processor())
    return f"{model}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} (1 min), OpenCV {cv2.__version__}, " \
           f"{cv2.getNumThreads()} OpenCV threads"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--size", default="480x854", help="HxW of the synthetic clips")
    parser.add_argument("--speeds", default="0.012,0.03", help="object speeds (short side per frame)")
    parser.add_argument("--real", default=None, help="a real clip with a static camera, e.g. vtest.avi")
    parser.add_argument("--real-frames", type=int, default=60)
    args = parser.parse_args()
    size = tuple(int(v) for v in args.size.split("x"))
    rows = []
    for speed in (float(s) for s in args.speeds.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(score(f"synthetic seed {seed}, speed {speed:g}", *synthetic(seed, args.frames, size, speed),
                              timing=True))
            print(rows[-1], file=sys.stderr)
    if args.real:
        rows.append(score(f"{Path(args.real).name} (moving ellipse hole)", *real(args.real, args.real_frames),
                          timing=False))
    print(f"\n{machine()}; reach {REACH} frames each side, masks grown by {DILATE} px\n")
    print("| clip | hole % | PSNR a / b (dB) | gain | SSIM a / b | flicker a / b (truth) | s/frame a / b "
          "| CPU s/frame b | peak MiB b |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clip']} | {100 * r['hole']:.1f} | {r['psnr_a']:.2f} / {r['psnr_b']:.2f} | "
              f"{r['psnr_b'] - r['psnr_a']:+.2f} | {r['ssim_a']:.3f} / {r['ssim_b']:.3f} | "
              f"{r['flicker_a']:.2f} / {r['flicker_b']:.2f} ({r['flicker_true']:.2f}) | "
              f"{r['s_a']:.3f} / {r['s_b']:.3f} | {r['cpu_b']:.3f} | {r['mib']:.0f} |")


if __name__ == "__main__":
    main()
