#!/usr/bin/env python
"""Run the commands whose outputs must not change across a refactor, then compare two such trees.

    python tools/output_tree.py run OUT            # demo, davis run --eval, segment (clicks, both
                                                   # ways), batch with references, images (two
                                                   # workers), perseg run --eval: bundled model
    python tools/output_tree.py compare OLD NEW    # every file byte for byte; exit 1 on a difference

Run ``run`` from a checkout of the commit before and of the commit after (``git worktree add``),
then ``compare``. Timings are the only parts compared as other than bytes: the ``seconds``,
``encoder``, ``decoder`` and ``fit`` of ``.done`` markers and the ``seconds`` column of
``summary.csv`` (its ``seconds`` column) are dropped before comparing, and so is the video fingerprint of ``segment``'s
progress file (it holds the clip's modification time, new in every run), and the ``seconds`` of
each photo in ``images``' progress record; the tree's own folder is written ``<root>`` in JSON and
CSV files, so two trees made in different folders compare; everything else (PNGs, videos, CSVs,
the rest of each marker and progress file) must be identical.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

TIMINGS = ("seconds", "encoder", "decoder", "fit")


def cli(*args: object) -> None:
    """``persam-video ARGS`` in a fresh interpreter, from the current folder's package."""
    subprocess.run([sys.executable, "-m", "persam_video", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run(out: Path) -> None:
    """Every command of the check into ``out`` (which must not exist)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from synthetic import write_davis_dataset

    out.mkdir(parents=True)
    demo = out / "demo"
    cli("demo", "--out", demo, "--frames", 10, "--quiet")
    clip, seed = demo / "clip.mp4", demo / "ground_truth" / "00005.png"
    cli("segment", clip, "--point", "150,110", "--point", "160,120", "--frame", 5, "--out", out / "clicks",
        "--quiet", "--method", "persam")
    write_davis_dataset(out / "davis_data", seed=7, n_sequences=2, n_frames=6, size=(96, 160), objects=(1, 2))
    cli("davis", "run", "--davis-root", out / "davis_data", "--subset", "val", "--out", out / "davis",
        "--eval", "--quiet", "--fit-iterations", 50)
    manifest = out / "clips.csv"
    manifest.write_text(f"video,name\n{clip},a\n{clip},b\n")
    cli("batch", manifest, "--out", out / "batch", "--ref-image", frame_png(clip, 5, out / "ref.png"),
        "--ref-mask", seed, "--quiet", "--method", "persam")
    photos(out, clip, seed)


def photos(out: Path, clip: Path, seed: Path) -> None:
    """``images`` on an album of the demo clip's frames (two workers, an export, COCO), and
    ``perseg run --eval`` on a PerSeg folder made of them (photo 00 the reference)."""
    import shutil

    album = out / "album"
    album.mkdir()
    for index in (1, 3, 7):
        frame_png(clip, index, album / f"p{index}.png")
    cli("images", "--ref-image", out / "ref.png", "--ref-mask", seed, album, "--out", out / "images", "--workers", 2,
        "--export", "white", "--coco", out / "images.json", "--quiet")
    for obj, start in (("one", 0), ("two", 4)):
        (out / "perseg_data" / "Images" / obj).mkdir(parents=True)
        (out / "perseg_data" / "Annotations" / obj).mkdir(parents=True)
        for t in range(3):
            frame_png(clip, start + t, out / "perseg_data" / "Images" / obj / f"{t:02d}.png")
            shutil.copy(out / "demo" / "ground_truth" / f"{start + t:05d}.png",
                        out / "perseg_data" / "Annotations" / obj / f"{t:02d}.png")
    cli("perseg", "run", "--root", out / "perseg_data", "--out", out / "perseg", "--eval", "--coco",
        out / "perseg.json", "--quiet")


def frame_png(clip: Path, index: int, dest: Path) -> Path:
    """Frame ``index`` of ``clip`` as a PNG (the batch's reference image)."""
    import imageio.v3 as iio

    iio.imwrite(dest, list(iio.imiter(clip))[index])
    return dest


def digest(path: Path, root: Path) -> str:
    """sha256 of a file's bytes, timings dropped from markers and summaries, and the tree's own
    folder written as ``<root>`` in text files (two trees made in different folders compare equal)."""
    data = path.read_bytes()
    if path.suffix in (".json", ".csv", ".done") or path.name == ".done":
        data = data.replace(str(root.resolve()).encode(), b"<root>")
    if path.name == ".done":
        record = json.loads(data)
        data = json.dumps({k: v for k, v in record.items() if k not in TIMINGS}, sort_keys=True).encode()
    elif path.name == ".persam-resume.pt":
        import torch

        record = torch.load(str(path), map_location="cpu", weights_only=True)
        record["fingerprint"].pop("video", None)
        buffer = io.BytesIO()
        torch.save(record, buffer)
        data = buffer.getvalue()
    elif path.name == ".persam-images.json":  # images' progress record: each photo's row has its seconds
        record = json.loads(data)
        for rows in record.get("done", {}).values():
            for row in rows:
                row.pop("seconds", None)
        data = json.dumps(record, sort_keys=True).encode()
    elif path.name == "summary.csv":  # its line ends are kept in the digest (csv reads both alike)
        text = data.decode()
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        ends = "crlf" if "\r\n" in text else "lf"
        data = json.dumps([ends] + [{k: v for k, v in row.items() if k != "seconds"} for row in rows]).encode()
    return hashlib.sha256(data).hexdigest()


def tree(root: Path) -> Dict[str, str]:
    """Relative path -> digest of every file under ``root``."""
    return {p.relative_to(root).as_posix(): digest(p, root) for p in sorted(root.rglob("*")) if p.is_file()}


def compare(old: Path, new: Path) -> int:
    a, b = tree(old), tree(new)
    problems: List[str] = [f"only in {old}: {k}" for k in sorted(set(a) - set(b))]
    problems += [f"only in {new}: {k}" for k in sorted(set(b) - set(a))]
    problems += [f"differs: {k}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    print("\n".join(problems) if problems else f"identical: {len(a)} files")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run").add_argument("out", type=Path)
    both = sub.add_parser("compare")
    both.add_argument("old", type=Path)
    both.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
