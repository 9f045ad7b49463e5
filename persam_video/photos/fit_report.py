"""What the command line shows of PerSAM-F's fit: a bar of its iterations per object, and one
summary line (which fit ran, how long it took; after a slow exact fit, what ``--fast`` would do)."""
from __future__ import annotations

from typing import Dict, List, Optional

from tqdm.auto import tqdm

from ..persam.lattice import LATTICE_PIXELS
from .personalizer import ImagePersonalizer, PhotoOptions

SLOW_FIT_SECONDS = 20.0  # an exact fit longer than this gets a line about --fast


class FitBar:
    """An ``on_progress`` for :class:`ImagePersonalizer`: a tqdm bar of iterations per object."""

    def __init__(self, options: PhotoOptions, enabled: bool = True) -> None:
        self.iterations = options.fit_iterations
        self.mode = options.fit_mode
        self.enabled = enabled and options.method == "persam-f"
        self.bars: Dict[int, tqdm] = {}

    def __call__(self, obj_id: int, fraction: float) -> None:
        if not self.enabled:
            return
        bar = self.bars.get(obj_id)
        if bar is None:
            bar = self.bars[obj_id] = tqdm(total=self.iterations, unit="it", leave=False, dynamic_ncols=True,
                                           desc=f"fitting object {obj_id} ({self.mode})")
        bar.update(round(fraction * self.iterations) - bar.n)
        if fraction >= 1:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def fit_summary(personalizer: ImagePersonalizer) -> List[str]:
    """The fit's summary lines: none for PerSAM; which fit ran and its time; a hint after a slow exact fit."""
    options = personalizer.options
    if options.method != "persam-f":
        return []
    n = len(personalizer.ids)
    seconds: Optional[float] = getattr(personalizer, "fit_seconds", None)
    took = "" if seconds is None else f" in {seconds:.1f} s ({seconds / max(n, 1):.1f} s per object)"
    lines = [f"PerSAM-F fit: {options.fit_mode}, {options.fit_iterations} iterations, {n} object(s){took}"]
    if options.fit_mode == "exact" and seconds is not None and seconds > SLOW_FIT_SECONDS:
        lines.append(f"--fast (or --fit-mode fast) would fit on at most {LATTICE_PIXELS} pixels per photo, each "
                     "standing for its block: the same time at any photo size, masks within IoU 0.9999 of "
                     "this fit's on the benchmark photos (benchmarks/README.md)")
    return lines
