"""Threads on a quiet and on a busy machine: demo, segment and a 2-worker batch, as a user runs them.

Each command runs as its own process with the default thread policy (``auto``: the CPUs free of
other work), with ``--threads 1`` and with ``--threads N`` (N = the CPUs this process may use:
torch's own choice before the automatic policy), on a quiet machine and while ``--load`` busy
processes that this script starts spin on the CPUs. Settings are interleaved and repeated; the
table gives each one's median wall time, its ratio to ``--threads 1`` and to the best setting, and
the load average around the runs. Example: ``python benchmarks/bench_threads.py --repeats 3``.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Tuple

from persam_video.runtime.system import cpu_count


def spin() -> None:
    """A busy process: the load another user's job puts on the machine."""
    while True:
        pass


def prepare(folder: Path, frames: int) -> Tuple[Path, Path, Path]:
    """A demo clip with its first-frame mask, and a 2-clip manifest; returns (clip, mask, manifest)."""
    demo = folder / "prep"
    subprocess.run([sys.executable, "-m", "persam_video", "demo", "--out", str(demo), "--frames", str(frames),
                    "--quiet", "--method", "persam"], check=True, stdout=subprocess.DEVNULL)
    clip, mask = demo / "clip.mp4", demo / "ground_truth" / "00000.png"
    manifest = folder / "clips.csv"
    manifest.write_text("video,mask,name\n" + "".join(f"{clip},{mask},clip{i}\n" for i in range(2)))
    return clip, mask, manifest


def commands(folder: Path, frames: int, clip: Path, mask: Path, manifest: Path) -> Dict[str, List[str]]:
    """The three commands timed, without their thread flag."""
    cli = [sys.executable, "-m", "persam_video"]
    return {
        "demo": cli + ["demo", "--frames", str(frames), "--quiet", "--out", str(folder / "demo")],
        "segment": cli + ["segment", str(clip), "--mask", str(mask), "--quiet", "--restart", "--out",
                          str(folder / "segment")],
        "batch, 2 workers": cli + ["batch", str(manifest), "--workers", "2", "--quiet", "--out",
                                   str(folder / "batch")],
    }


def timed(command: List[str], folder: Path) -> float:
    """Wall seconds of one run (a clean output folder each time)."""
    subprocess.run(["rm", "-rf", str(folder / "demo"), str(folder / "segment"), str(folder / "batch")], check=True)
    began = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=8, help="frames of each clip (default: 8)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each setting (default: 3)")
    parser.add_argument("--load", type=int, default=2, help="busy processes for the loaded rows (default: 2)")
    parser.add_argument("--only", choices=["quiet", "loaded"], help="measure one condition only")
    args = parser.parse_args()
    cpus = cpu_count()
    settings = {"auto (default)": [], "--threads 1": ["--threads", "1"], f"--threads {cpus}": ["--threads", str(cpus)]}
    conditions = [c for c in ("quiet", "loaded") if args.only in (None, c)]
    results: Dict[Tuple[str, str, str], List[float]] = {}
    loads: Dict[str, List[float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_threads_") as tmp:
        folder = Path(tmp)
        clip, mask, manifest = prepare(folder, args.frames)
        runs = commands(folder, args.frames, clip, mask, manifest)
        for condition in conditions:
            spinners = [multiprocessing.Process(target=spin, daemon=True)
                        for _ in range(args.load if condition == "loaded" else 0)]
            for process in spinners:
                process.start()
            loads[condition] = [os.getloadavg()[0]]
            try:
                for repeat in range(args.repeats):
                    for name, command in runs.items():
                        labels = list(settings)  # a different setting first each time: no order bias
                        for label in labels[repeat % len(labels):] + labels[:repeat % len(labels)]:
                            flags = settings[label]
                            seconds = timed(command + flags, folder)
                            results.setdefault((condition, name, label), []).append(seconds)
                            print(f"  {condition:6s} {name:17s} {label:15s} {seconds:6.1f} s", file=sys.stderr)
            finally:
                loads[condition].append(os.getloadavg()[0])
                for process in spinners:
                    process.terminate()
                    process.join()
            time.sleep(5 if condition == "loaded" else 0)
    print(f"machine: {cpus} CPUs for this process, {os.cpu_count()} online; {args.frames}-frame clips, "
          f"bundled model, PerSAM-F (the default); loaded = {args.load} busy processes; "
          f"medians of {args.repeats} interleaved runs")
    for condition in conditions:
        print(f"\n{condition} (1-min load average {loads[condition][0]:.1f} before, {loads[condition][1]:.1f} after)")
        print("| command | setting | seconds (median) | / --threads 1 | / best |")
        print("|---|---|---:|---:|---:|")
        for name in runs:
            medians = {label: statistics.median(results[(condition, name, label)]) for label in settings}
            best = min(medians.values())
            for label, value in medians.items():
                print(f"| {name} | {label} | {value:.1f} | {value / medians['--threads 1']:.2f} | {value / best:.2f} |")


if __name__ == "__main__":
    main()
