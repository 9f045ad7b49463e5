"""``--presence auto`` against the fixed ratio ``--presence 0.99`` and no check, on albums where the
object is often absent: the rate of absent photos called absent ("caught absent") and of present
photos kept ("kept present"), PerSAM with the bundled model.

Two sets. The public Personalize-SAM repository's example photos, crossed: each object's photo 00
and mask are its reference, its other photos are present ones and every other object's photos are
absent ones (point ``--examples`` at the fetched repository: its ``examples/`` folder, or its git
directory, read in memory; nothing of it is copied). And synthetic albums: each clip's first frame
is the reference, its other frames present, other clips' frames absent. The bundled model was
trained on synthetic shapes (weak on real photos): the figures say how the rule behaves with it.
Example: ``python benchmarks/bench_presence.py --examples /path/to/Personalize-SAM``.
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import torch
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.io.photos import read_photo
from persam_video.model.loading import load_sam
from persam_video.photos.personalizer import ImagePersonalizer, PhotoOptions, PhotoReference
from persam_video.photos.presence import decide_presence

Album = Tuple[PhotoReference, List[Tuple[np.ndarray, bool]]]  # a reference, then (photo, object there)


def example_files(where: Path) -> Dict[str, bytes]:
    """``examples/<name>`` file contents from a checkout or a bare/mirror git directory."""
    folder = where / "examples"
    if folder.is_dir():
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
    names = subprocess.run(["git", "--git-dir", str(where), "ls-tree", "--name-only", "HEAD", "examples/"],
                           check=True, capture_output=True, text=True).stdout.split()
    return {Path(n).name: subprocess.run(["git", "--git-dir", str(where), "show", f"HEAD:{n}"], check=True,
                                         capture_output=True).stdout for n in names}


def example_albums(where: Path) -> List[Album]:
    """Each example object's reference (photo 00) with an album of its own other photos (present)
    and every other object's photos (absent)."""
    files = example_files(where)
    photos: Dict[str, Dict[str, np.ndarray]] = defaultdict(dict)
    masks: Dict[str, bytes] = {}
    for name, data in files.items():
        obj, index = name.rsplit(".", 1)[0].rsplit("_", 1)
        if name.endswith(".jpg"):
            photos[obj][index] = read_photo(io.BytesIO(data), name)
        elif name.endswith(".png") and index == "00":
            masks[obj] = data
    albums = []
    for obj in sorted(masks):
        colours = np.asarray(Image.open(io.BytesIO(masks[obj])).convert("RGB"))
        mask = colours.any(axis=-1)
        red = colours[..., 0]
        reference = PhotoReference(photos[obj]["00"], mask, 1, red if bool((red[mask] > 0).all()) else None)
        album = [(image, other == obj) for other in sorted(photos) for index, image in sorted(photos[other].items())
                 if not (other == obj and index == "00")]
        albums.append((reference, album))
    return albums


def synthetic_albums(objects: int, photos: int, size: Tuple[int, int]) -> List[Album]:
    """Each clip's first object on frame 0 as the reference; its other frames present, the same
    frames of the next two clips absent (twice as many absent photos as present ones)."""
    clips = [make_clip(seed=700 + i, n_frames=photos + 1, size=size, n_objects=1) for i in range(objects)]
    albums = []
    for i, clip in enumerate(clips):
        present = [(clip.frames[t], True) for t in range(1, photos + 1)]
        absent = [(clips[(i + j) % objects].frames[t], False) for j in (1, 2) for t in range(1, photos + 1)]
        albums.append((PhotoReference(clip.frames[0], clip.labels[0] == 1, 1), present + absent))
    return albums


def rates(model: torch.nn.Module, albums: List[Album], ratio: float) -> Dict[str, Tuple[float, float]]:
    """(caught absent, kept present) for no check, ``ratio`` and auto, each album its own collection."""
    calls: Dict[str, List[Tuple[bool, bool]]] = defaultdict(list)  # rule -> (object there, found)
    for reference, album in albums:
        personalizer = ImagePersonalizer(model, [reference], PhotoOptions(presence="auto"))
        peak = float(personalizer.reference_peak[0])
        rows = []
        for index, (image, there) in enumerate(album):
            obj = personalizer.segment(image).objects[0]
            rows.append({"photo": str(index), "object": 1, "found": int(obj.found), "score": f"{obj.score:.4f}",
                         "similarity": f"{obj.similarity:.4f}", "area": int(obj.mask.sum())})
            calls["off"].append((there, obj.found))
            calls[f"{ratio}"].append((there, obj.found and obj.similarity >= ratio * peak))
        for row, (_, there) in zip(decide_presence(rows), album):
            calls["auto"].append((there, bool(row["found"])))
    return {rule: (float(np.mean([not f for t, f in pairs if not t])), float(np.mean([f for t, f in pairs if t])))
            for rule, pairs in calls.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=Path, default=None,
                        help="the fetched Personalize-SAM repository (a checkout, or its git directory)")
    parser.add_argument("--objects", type=int, default=8, help="synthetic albums (default: 8)")
    parser.add_argument("--photos", type=int, default=4, help="present photos per synthetic album (default: 4)")
    parser.add_argument("--size", default="240x320", help="synthetic photo size HxW (default: 240x320)")
    parser.add_argument("--ratio", type=float, default=0.99, help="the fixed ratio compared (default: 0.99)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_sam("small", device="cpu")
    sets = []
    if args.examples is not None:
        sets.append(("Personalize-SAM examples, crossed", example_albums(args.examples)))
    size = tuple(int(v) for v in args.size.split("x"))
    sets.append((f"synthetic, {args.objects} albums", synthetic_albums(args.objects, args.photos, size)))
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f}; bundled model (synthetic-trained), PerSAM\n")
    print("| set | albums | present / absent photos | presence | caught absent | kept present |")
    print("|---|---:|---:|---|---:|---:|")
    for name, albums in sets:
        present = sum(there for _, album in albums for _, there in album)
        absent = sum(not there for _, album in albums for _, there in album)
        for rule, (caught, kept) in rates(model, albums, args.ratio).items():
            print(f"| {name} | {len(albums)} | {present} / {absent} | {rule} | {caught:.0%} | {kept:.0%} |",
                  flush=True)


if __name__ == "__main__":
    main()
