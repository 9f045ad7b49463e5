"""Where things live in a DAVIS 2017 dataset folder.

A DAVIS root holds ``JPEGImages/480p/<seq>/*.jpg``, ``Annotations/480p/<seq>/*.png``
(indexed PNGs: 0 = background, 1..N = objects, 255 = void) and
``ImageSets/2017/<subset>.txt`` (one sequence name per line). Files are taken in
sorted file-name order.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import PersamError, choose
from ..io.files import PathLike

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


class DavisLayout:
    """The paths of one DAVIS 2017 dataset at one resolution (``480p`` by default)."""

    def __init__(self, root: PathLike, resolution: str = "480p") -> None:
        self.root = Path(root)
        self.resolution = resolution
        if not self.root.is_dir():
            raise PersamError(f"DAVIS root not found: {self.root}")

    def subset_file(self, subset: str) -> Path:
        """The list of sequences of a subset: ``ImageSets/2017/<subset>.txt``."""
        return self.root / "ImageSets" / "2017" / f"{subset}.txt"

    def sequences(self, subset: str) -> List[str]:
        """The sequence names of a subset in file order, without blanks or repeats."""
        path = self.subset_file(subset)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.txt"))
            hint = f" (subsets there: {', '.join(known)})" if known else ""
            raise PersamError(f"subset file not found: {path}{hint}")
        names = [line.strip() for line in path.read_text().splitlines()]
        return list(dict.fromkeys(name for name in names if name))

    def choose(self, subset: str, sequences: Optional[Sequence[str]] = None) -> List[str]:
        """The subset's sequences in file order, or the requested ones (all must be in the subset)."""
        names = self.sequences(subset)
        if not names:
            raise PersamError(f"subset file lists no sequence: {self.subset_file(subset)}")
        return choose(names, sequences, lambda unknown: f"sequence(s) {','.join(unknown)} not in subset {subset} "
                                                        f"({self.subset_file(subset)})")

    def frame_dir(self, sequence: str) -> Path:
        """The folder of a sequence's video frames."""
        return self.root / "JPEGImages" / self.resolution / sequence

    def annotation_dir(self, sequence: str) -> Path:
        """The folder of a sequence's ground-truth label PNGs."""
        return self.root / "Annotations" / self.resolution / sequence

    def frame_paths(self, sequence: str) -> List[Path]:
        """The frames of a sequence (``.jpg`` or ``.png``), sorted by file name."""
        return _sorted_files(self.frame_dir(sequence), FRAME_SUFFIXES, "frames")

    def annotation_paths(self, sequence: str) -> List[Path]:
        """The ground-truth label PNGs of a sequence, sorted by file name."""
        return _sorted_files(self.annotation_dir(sequence), (".png",), "annotations")

    def first_annotation(self, sequence: str) -> Path:
        """The first ground-truth PNG of a sequence: the seed of semi-supervised runs."""
        return self.annotation_paths(sequence)[0]


def _sorted_files(folder: Path, suffixes: tuple, what: str) -> List[Path]:
    """The files of ``folder`` with one of ``suffixes`` (any case), sorted; error when none."""
    if not folder.is_dir():
        raise PersamError(f"{what} folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise PersamError(f"no {what} ({'/'.join(suffixes)}) in {folder}")
    return files
