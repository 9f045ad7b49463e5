"""What a run has done, on disk: the one reader and writer of resume markers and progress records.

``<folder>/.done``, written after a clip's last frame, is shared by ``davis run``, ``batch`` and
``perseg run``: a clip (DAVIS sequence, PerSeg object) counts as done only when its marker exists
and reads as a JSON object; a rerun skips it (saying which settings differ, if any) and clears and
redoes every clip without one. ``images`` keeps one progress record for its whole collection
(``.persam-images.json``: the settings and the photos done) through the same two functions.
``segment``'s own resume file holds tensors, not JSON: ``persam_video/resume_file.py``.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Dict, List, Optional

from ..errors import PersamError
from ..io.files import atomic_write
from ..model.loading import ModelSpec
from ..options import TrackerOptions

MARKER = ".done"


def run_settings(options: TrackerOptions, model: ModelSpec) -> Dict[str, object]:
    """What decides a sequence's masks: the method options, the model type, the weights (their
    sha256, so a retrained checkpoint at the same path counts as different) and the numerics
    (precision, attention, decoder and compile as resolved on this machine: ``auto`` may mean bf16 on another)."""
    from ..model.compiling import resolve_compile
    from ..model.fast_decoder import FAST_DECODER_VERSION
    from ..model.fast_path import resolve_attention, resolve_decoder, resolve_precision
    from ..model.loading import resolve_device

    settings: Dict[str, object] = asdict(options)
    settings["model_type"] = model.model_type
    settings["weights_sha256"] = model.weights_sha256()
    try:
        precision = resolve_precision(model.precision, resolve_device(model.device))
        settings["precision"] = precision
        settings["fused_attention"] = resolve_attention(model.attention, precision)
        if resolve_decoder(model.decoder, settings["fused_attention"]):
            # its version (absent when exact: markers written before it existed still match); the first
            # fast decoder's markers say True: its sums were ordered otherwise, so they do not match
            settings["fast_decoder"] = FAST_DECODER_VERSION
        if resolve_compile(model.compile, model.model_type, resolve_device(model.device)):
            settings["compiled_encoder"] = True  # (absent when eager, likewise)
        if model.quantize != "off":
            settings["quantize"] = model.quantize  # (absent when off, likewise)
    except PersamError:  # no such device here: loading the model reports it
        settings["precision"] = settings["fused_attention"] = None
    return settings


def changed_settings(before: Optional[dict], now: Dict[str, object]) -> List[str]:
    """``key=old`` for each setting that differs from the marker's (all of them if it has none)."""
    if not isinstance(before, dict):
        return ["unknown (marker from an older version)"]
    return [f"{key}={before.get(key)!r}" for key in now if before.get(key) != now[key]]


def read_record(path: Path) -> Optional[dict]:
    """A JSON object written by :func:`write_record`, or None (missing, unreadable, or not an object:
    nothing counts as done)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def write_record(path: Path, record: dict, compact: bool = False) -> None:
    """Write ``record`` as JSON atomically: indented with sorted keys (a marker), or on one line
    (``compact``: the photo progress record, rewritten after every photo)."""
    text = json.dumps(record) if compact else json.dumps(record, indent=1, sort_keys=True) + "\n"
    atomic_write(Path(path), lambda tmp: Path(tmp).write_text(text))


def read_marker(folder: Path) -> Optional[dict]:
    """The marker of a finished clip, or None (missing or unreadable: not done)."""
    return read_record(Path(folder) / MARKER)


def write_marker(folder: Path, record: dict) -> None:
    """Write the marker atomically, after the clip's last frame."""
    write_record(Path(folder) / MARKER, record)


def clear_partial(folder: Path) -> None:
    """Delete what an unfinished run left in ``folder`` (label PNGs, temporary files, a bad marker)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.iterdir():
        if path.is_file() and (path.suffix.lower() == ".png" or ".tmp" in path.name or path.name == MARKER):
            try:
                path.unlink()
            except OSError as exc:
                raise PersamError(f"cannot clear the unfinished results in {folder}: "
                                  f"{exc.strerror or exc}") from None
