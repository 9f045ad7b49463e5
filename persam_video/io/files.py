"""Writing files safely: atomic writes with the user's usual mode, their leftovers, writable folders."""
from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Callable, Iterable, List, Mapping, Sequence, Union

from ..errors import PersamError, error_line

PathLike = Union[str, os.PathLike]


def process_umask() -> int:
    """The process's umask, read without changing it where the kernel reports it (Linux), so that
    threads writing at the same time never see a wrong one."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split(":", 1)[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temporary_beside(path: PathLike) -> str:
    """A new empty file next to ``path`` (``.<stem>.*.tmp<suffix>``) with the mode ``open()`` would
    give ``path`` under the umask: mkstemp's private 0600 would survive the rename otherwise."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix="." + path.stem + ".", suffix=".tmp" + path.suffix, dir=str(path.parent))
    try:
        os.fchmod(fd, 0o666 & ~process_umask())
    finally:
        os.close(fd)
    return tmp


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``: the temporary file is in the
    destination folder, so a reader sees the old file or the complete new one, never half of it."""
    tmp = temporary_beside(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_csv(path: PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, object]],
              line_end: str = "\n") -> None:
    """A summary CSV (UTF-8), atomically: a header of ``columns``, then one line per row (a missing
    field is empty); the one writer of ``batch``'s and ``images``' summaries."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(columns), lineterminator=line_end)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text.getvalue(), encoding="utf-8"))


def leftover_temporaries(folder: PathLike) -> List[Path]:
    """The temporary files of :func:`atomic_write` in ``folder`` (``.<name>.*.tmp*``), which only a
    write that was killed part-way leaves behind; empty when ``folder`` does not exist."""
    folder = Path(folder)
    return sorted(folder.glob(".*.tmp*")) if folder.is_dir() else []


def remove_temporaries(folder: PathLike) -> None:
    """Delete what killed writes left in ``folder``; the caller owns the folder (its lock, its clip), so
    no other writer has them open. One that vanished meanwhile is fine; one that stays is an error."""
    for path in leftover_temporaries(folder):
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise PersamError(f"cannot remove the temporary file {path}: {error_line(exc)}") from None


def ensure_writable_dir(folder: PathLike) -> Path:
    """Create ``folder`` if needed and prove it can be written; a one-line PersamError if not."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise PersamError(f"cannot write to output folder {folder}: {exc.strerror or exc}") from None
    return folder
