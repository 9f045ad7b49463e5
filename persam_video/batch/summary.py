"""What happened to each clip of a run, and the summary CSV that says it as clips finish."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from ..io.files import write_csv

COLUMNS = ("clip", "status", "frames", "objects", "seconds", "attempts", "error")
DONE, SKIPPED, FAILED, PENDING = "done", "skipped", "failed", "pending"


@dataclass
class Outcome:
    """One clip's result: ``status`` is done, skipped (done by an earlier run), failed or pending.

    ``attempts`` counts the tries (above 1 when a worker process died under it); ``error`` is the
    one-line reason of a failure; ``line`` the human summary of a clip segmented now."""

    clip: str
    status: str
    frames: int = 0
    objects: Tuple[int, ...] = field(default_factory=tuple)
    seconds: float = 0.0
    attempts: int = 0
    error: str = ""
    line: str = ""

    def row(self) -> List[str]:
        """The summary CSV's row."""
        return [self.clip, self.status, str(self.frames), " ".join(map(str, self.objects)), f"{self.seconds:.2f}",
                str(self.attempts), self.error]


class SummaryFile:
    """``summary.csv``: one row per clip in manifest order, rewritten atomically after every clip,
    so that it is complete and current at any moment (clips not finished yet read ``pending``)."""

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        self.path = Path(path)
        self.rows: Dict[str, Outcome] = {name: Outcome(name, PENDING) for name in names}

    def record(self, outcome: Outcome) -> None:
        """Take one clip's outcome and rewrite the file."""
        self.rows[outcome.clip] = outcome
        self.write()

    def write(self) -> None:
        """Write every row (atomically)."""
        write_csv(self.path, COLUMNS, (dict(zip(COLUMNS, outcome.row())) for outcome in self.rows.values()))

    def failed(self) -> List[Outcome]:
        """The clips that failed, in manifest order."""
        return [o for o in self.rows.values() if o.status == FAILED]
