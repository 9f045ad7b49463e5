"""The PerSeg layout: ``Images/<object>/NN.jpg`` and ``Annotations/<object>/NN.png``, one folder per object."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence

from ..errors import PersamError
from ..io.files import PathLike


def png_files(folder: Path) -> List[Path]:
    """The PNG files of ``folder``, sorted by name: the masks eval_miou.py pairs (its temporaries left out)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix == ".png" and not p.name.startswith("."))


@dataclass(frozen=True)
class PersegLayout:
    """A PerSeg root: the objects (folders of ``Annotations/``) and each one's photos and masks."""

    root: Path

    def __init__(self, root: PathLike) -> None:
        object.__setattr__(self, "root", Path(root))
        for part in ("Images", "Annotations"):
            if not (self.root / part).is_dir():
                raise PersamError(f"{self.root} is not a PerSeg folder: it has no {part}/ folder")

    def objects(self, chosen: Optional[Sequence[str]] = None) -> List[str]:
        """Every object (sorted), or the ``chosen`` ones, each checked to exist."""
        present = sorted(p.name for p in (self.root / "Annotations").iterdir() if p.is_dir())
        if not present:
            raise PersamError(f"{self.root / 'Annotations'} holds no object folder")
        if chosen is None:
            return present
        unknown = [name for name in chosen if name not in present]
        if unknown:
            raise PersamError(f"no object {', '.join(unknown)} in {self.root / 'Annotations'}")
        return list(chosen)

    def masks(self, name: str) -> List[Path]:
        """The object's annotation PNGs, sorted by name."""
        return png_files(self.root / "Annotations" / name)
