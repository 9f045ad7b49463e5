"""A batch manifest: the clips to segment, read from a CSV or JSON file (``docs/batch.md``).

CSV: a header row naming the columns, then one clip per row::

    video,mask,prompts,name,start,objects
    clips/a.mp4,masks/a.png,,,0,
    clips/b/,,prompts/b.json,bee,,
    clips/c.mp4,masks/c.png,,,12,"1,3"

JSON: ``{"version": 1, "clips": [{"video": ..., "mask": ..., "prompts": ..., "name": ...,
"start": 0, "objects": [1, 3]}, ...]}`` (a bare list of clips is accepted too).

``video`` is required; ``mask`` (the mask of frame ``start``) and ``prompts`` (a prompts file,
``docs/prompts.md``) are exclusive, and a clip may have neither when the batch gives a reference
for all clips. Paths are relative to the manifest's folder. ``name`` (default: the video's file
or folder name without its extension) names the clip's output folder and must be unique. A
malformed manifest is a one-line PersamError naming the row or entry and the field; a clip whose
files are missing or corrupt is not a manifest error: it fails on its own when it runs.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

from ..errors import PersamError
from ..io.files import PathLike

FIELDS = ("video", "mask", "prompts", "name", "start", "objects")
MANIFEST_VERSION = 1


@dataclass(frozen=True)
class ClipTask:
    """One clip to segment into ``out``: everything a worker needs, as plain values.

    ``mask`` seeds the objects on frame ``start`` (restricted to ``objects`` if given);
    ``prompts`` is a prompts file (clicks, boxes, masks on any frames)."""

    name: str
    video: str
    out: str
    mask: Optional[str] = None
    prompts: Optional[str] = None
    start: int = 0
    objects: Optional[Tuple[int, ...]] = None

    def inputs(self) -> Dict[str, object]:
        """The clip's own inputs, recorded in its resume marker (a changed manifest entry is noticed)."""
        return {"video": self.video, "mask": self.mask, "prompts": self.prompts, "start": self.start,
                "objects": None if self.objects is None else list(self.objects)}


def load_manifest(path: PathLike, out_dir: PathLike) -> List[ClipTask]:
    """The clips of a CSV or JSON manifest (by its extension: ``.json`` is JSON, anything else CSV),
    each writing to ``out_dir/<name>/``."""
    path = Path(path)
    if not path.is_file():
        raise PersamError(f"manifest not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersamError(f"cannot read the manifest {path}: {getattr(exc, 'strerror', None) or exc}") from None
    entries = _json_entries(path, text) if path.suffix.lower() == ".json" else _csv_entries(path, text)
    tasks: List[ClipTask] = []
    seen: Dict[str, str] = {}
    for where, entry in entries:
        task = _clip(path, Path(out_dir), where, entry)
        if task.name in seen:
            raise PersamError(f"{path}: {where}: name {task.name!r} is also the name of {seen[task.name]}; "
                              "give each clip its own 'name'")
        seen[task.name] = where
        tasks.append(task)
    if not tasks:
        raise PersamError(f"{path}: the manifest lists no clip")
    return tasks


def _csv_entries(path: Path, text: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in (reader.fieldnames or [])]
    if "video" not in header:
        raise PersamError(f"{path}: the first row must name the columns, with at least 'video' "
                          f"(columns: {', '.join(FIELDS)})")
    unknown = [h for h in header if h not in FIELDS]
    if unknown:
        raise PersamError(f"{path}: unknown column(s) {', '.join(map(repr, unknown))} (columns: {', '.join(FIELDS)})")
    reader.fieldnames = header
    for row in reader:
        if None in row:
            raise PersamError(f"{path}: row {reader.line_num}: more values than columns")
        values = {k: v.strip() for k, v in row.items() if v is not None and v.strip()}
        if values:  # blank lines are skipped
            yield f"row {reader.line_num}", values


def _json_entries(path: Path, text: str) -> Iterator[Tuple[str, Dict[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PersamError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if isinstance(data, dict):
        if data.get("version", MANIFEST_VERSION) != MANIFEST_VERSION:
            raise PersamError(f"{path}: manifest version {data.get('version')!r} is not supported "
                              f"(this version reads {MANIFEST_VERSION})")
        extra = sorted(set(data) - {"version", "clips"})
        if extra:
            raise PersamError(f"{path}: unknown key(s) {', '.join(map(repr, extra))} (keys: 'version', 'clips')")
        data = data.get("clips")
    if not isinstance(data, list):
        raise PersamError(f"{path}: expected {{\"version\": 1, \"clips\": [...]}} or a list of clips")
    for index, entry in enumerate(data):
        where = f"clip {index}"
        if not isinstance(entry, dict):
            raise PersamError(f"{path}: {where}: expected an object with 'video', not {type(entry).__name__}")
        unknown = [k for k in entry if k not in FIELDS]
        if unknown:
            raise PersamError(f"{path}: {where}: unknown field(s) {', '.join(map(repr, unknown))} "
                              f"(fields: {', '.join(FIELDS)})")
        yield where, {k: v for k, v in entry.items() if v is not None and v != ""}


def _clip(manifest: Path, out_dir: Path, where: str, entry: Dict[str, Any]) -> ClipTask:
    """One checked ClipTask from a row's or entry's values."""
    def bad(field: str, problem: str) -> PersamError:
        return PersamError(f"{manifest}: {where}: '{field}' {problem}")

    def file(field: str) -> Optional[str]:
        value = entry.get(field)
        if value is None:
            return None
        if not isinstance(value, str):
            raise bad(field, f"must be a path, not {value!r}")
        return str(manifest.parent.absolute() / Path(value).expanduser())

    if "video" not in entry:
        raise bad("video", "is missing")
    video = file("video")
    mask, prompts = file("mask"), file("prompts")
    if mask and prompts:
        raise bad("prompts", "and 'mask' cannot both be given: put the mask in the prompts file")
    name = entry.get("name", Path(str(video).rstrip("/\\")).stem)
    if not isinstance(name, str) or not re.fullmatch(r"[^/\\\x00]+", name) or name in (".", "..") \
            or name.startswith("."):
        raise bad("name", f"must be a plain folder name (no '/', not starting with '.'), not {name!r}")
    start = _integer(entry.get("start", 0), lambda problem: bad("start", problem))
    if start < 0:
        raise bad("start", f"must be 0 or more, not {start}")
    objects = _ids(entry.get("objects"), lambda problem: bad("objects", problem))
    if objects is not None and prompts:
        raise bad("objects", "goes with 'mask' only (a prompts file names its objects itself)")
    return ClipTask(name=name, video=str(video), out=str(out_dir.absolute() / name), mask=mask, prompts=prompts,
                    start=start, objects=objects)


def _integer(value: Any, bad) -> int:
    if isinstance(value, bool):
        raise bad(f"must be a whole number, not {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    raise bad(f"must be a whole number, not {value!r}")


def _ids(value: Any, bad) -> Optional[Tuple[int, ...]]:
    """``"1,3"`` / ``"1 3"`` / ``[1, 3]`` -> (1, 3); ids between 1 and 254."""
    if value is None:
        return None
    parts = re.split(r"[,;\s]+", value.strip()) if isinstance(value, str) else value
    if not isinstance(parts, list) or not parts:
        raise bad(f"must be ids like 1,3 or [1, 3], not {value!r}")
    ids = tuple(_integer(part, bad) for part in parts)
    if any(not 0 < k < 255 for k in ids):
        raise bad(f"ids must be between 1 and 254, not {value!r}")
    return ids
