"""Prompts as plain data: clicks, boxes and masks on frames of a clip, and reference images.

No model here: :class:`Prompt`, :class:`Reference` and :class:`PromptSet` hold numpy arrays,
:func:`check_prompt` / :func:`check_reference` check them against a video, and
:func:`load_prompts` / :func:`save_prompts` read and write the JSON schema of
``docs/prompts.md`` (version 1)::

    {"version": 1,
     "prompts": [{"frame": 0, "object": 1, "points": [[x, y], ...], "labels": [1, 0],
                  "box": [x0, y0, x1, y1], "mask": "masks/f0_o1.png"}],
     "references": [{"object": 2, "image": "ref.jpg", "mask": "ref.png"}]}

Paths are relative to the JSON file's folder.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import PersamError, check_size, error_line, wxh
from .files import PathLike, atomic_write
from .masks import object_ids, read_label_png, select_objects, write_label_png
from .photos import read_photo

SCHEMA_VERSION = 1


@dataclass
class Prompt:
    """What the user said about one object on one frame: clicks and/or a box, or a mask.

    ``points`` (P, 2) float x, y pixels with ``labels`` (P,) 1 positive / 0 negative; ``box``
    (4,) x0, y0, x1, y1 pixels; ``mask`` (H, W) bool. A mask excludes points and box."""

    frame: int
    obj_id: int
    points: Optional[np.ndarray] = None
    labels: Optional[np.ndarray] = None
    box: Optional[np.ndarray] = None
    mask: Optional[np.ndarray] = None

    def describe(self) -> str:
        """``object 1 on frame 0`` (for messages)."""
        return f"object {self.obj_id} on frame {self.frame}"


@dataclass
class Reference:
    """An object shown on an image from outside the clip: ``image`` (H, W, 3) uint8 and ``mask`` (H, W) bool."""

    obj_id: int
    image: np.ndarray
    mask: np.ndarray


@dataclass
class PromptSet:
    """Every prompt and reference of a run."""

    prompts: List[Prompt] = field(default_factory=list)
    references: List[Reference] = field(default_factory=list)

    def object_ids(self) -> List[int]:
        """The ids prompted or referenced, ascending."""
        return sorted({p.obj_id for p in self.prompts} | {r.obj_id for r in self.references})


# ----------------------------------------------------------------------------- checks
def check_object_id(obj_id: Any, what: str = "object id") -> int:
    """An object id must be an integer from 1 to 254 (0 is background, 255 void)."""
    if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or not 1 <= int(obj_id) <= 254:
        raise PersamError(f"{what} must be an integer from 1 to 254 (0 is background, 255 void), not {obj_id!r}")
    return int(obj_id)


def as_points(points: Any, labels: Any = None) -> Tuple[np.ndarray, np.ndarray]:
    """Points as (P, 2) float32 and labels as (P,) int64 (all 1 when ``labels`` is None)."""
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 2) if np.size(points) else np.zeros((0, 2), np.float32)
    labs = np.ones(len(pts), np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labs) != len(pts):
        raise PersamError(f"{len(pts)} point(s) but {len(labs)} label(s)")
    if not np.isin(labs, (0, 1)).all():
        raise PersamError(f"point labels must be 1 (positive) or 0 (negative), not {sorted(set(labs.tolist()))}")
    return pts, labs


def check_prompt(prompt: Prompt, frame_size: Optional[Tuple[int, int]] = None,
                 n_frames: Optional[int] = None) -> None:
    """Raise a one-line PersamError for a prompt that cannot be used on a video of ``n_frames``
    frames of ``frame_size`` (height, width): ids, frame, points, box and mask are checked."""
    check_object_id(prompt.obj_id)
    where = prompt.describe()
    if n_frames is not None and not 0 <= prompt.frame < n_frames:
        raise PersamError(f"the prompt frame {prompt.frame} is outside the video, which has {n_frames} frames "
                          f"(0..{n_frames - 1})")
    if prompt.frame < 0:
        raise PersamError(f"the prompt frame must be 0 or more, not {prompt.frame}")
    if prompt.mask is not None:
        if prompt.points is not None or prompt.box is not None:
            raise PersamError(f"{where}: a mask prompt cannot also have points or a box")
        if frame_size is not None:
            check_size(f"the mask of {where}", prompt.mask.shape, frame_size, "the frames are")
        if not prompt.mask.any():
            raise PersamError(f"the mask of {where} is empty")
        return
    if prompt.points is None and prompt.box is None:
        raise PersamError(f"{where}: a prompt needs points, a box or a mask")
    h, w = frame_size if frame_size is not None else (None, None)
    if prompt.points is not None:
        points, labels = as_points(prompt.points, prompt.labels)
        if prompt.box is None and not (labels == 1).any():
            raise PersamError(f"{where} has only negative points: give at least one positive point or a box")
        for x, y in points:
            if not (np.isfinite(x) and np.isfinite(y) and x >= 0 and y >= 0) or \
                    (w is not None and not (x < w and y < h)):
                size = f" {w}x{h}" if w is not None else ""
                raise PersamError(f"the point ({x:g}, {y:g}) of {where} is outside the{size} frame")
    if prompt.box is not None:
        box = np.asarray(prompt.box, dtype=np.float32).reshape(-1)
        if box.size != 4 or not np.isfinite(box).all():
            raise PersamError(f"the box of {where} must be 4 numbers x0, y0, x1, y1")
        x0, y0, x1, y1 = box.tolist()
        if x1 <= x0 or y1 <= y0:
            raise PersamError(f"the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) of {where} needs x1 > x0 and y1 > y0")
        if min(x0, y0) < 0 or (w is not None and (x1 > w or y1 > h)):
            size = f" {w}x{h}" if w is not None else ""
            raise PersamError(f"the box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) of {where} is outside the{size} frame")


def check_reference(reference: Reference) -> None:
    """A reference needs an RGB image and a non-empty mask of the same size."""
    check_object_id(reference.obj_id)
    image, mask = reference.image, reference.mask
    if image.ndim != 3 or image.shape[2] != 3:
        raise PersamError(f"the reference image of object {reference.obj_id} must be RGB (H, W, 3)")
    check_size(f"the reference mask of object {reference.obj_id}", mask.shape, image.shape, "its image is")
    if not mask.any():
        raise PersamError(f"the reference mask of object {reference.obj_id} is empty")


def check_prompt_set(prompt_set: PromptSet, frame_size: Optional[Tuple[int, int]] = None,
                     n_frames: Optional[int] = None) -> None:
    """Check every prompt and reference, and that no object has both a mask and clicks/a box on one frame."""
    if not prompt_set.prompts and not prompt_set.references:
        raise PersamError("no prompt: give at least one point, box, mask or reference")
    kinds: Dict[Tuple[int, int], set] = {}
    for prompt in prompt_set.prompts:
        check_prompt(prompt, frame_size, n_frames)
        kinds.setdefault((prompt.frame, prompt.obj_id), set()).add("mask" if prompt.mask is not None else "clicks")
    for (frame, obj_id), seen in sorted(kinds.items()):
        if seen == {"mask", "clicks"}:
            raise PersamError(f"object {obj_id} on frame {frame} has both a mask and points/a box: "
                              "give one or the other")
    for reference in prompt_set.references:
        check_reference(reference)


# ------------------------------------------------------------------------- JSON files
def object_mask(labels: np.ndarray, obj_id: int) -> np.ndarray:
    """The pixels of ``obj_id`` in a label map; a mask holding only id 1 (e.g. black and white) is
    taken whole whatever ``obj_id`` is."""
    if obj_id not in object_ids(labels) and object_ids(labels) == [1]:
        return labels == 1
    return labels == obj_id


class _Entry:
    """Reads the fields of one JSON entry, naming the entry and the field in every error."""

    def __init__(self, path: Path, kind: str, index: int, data: Any):
        self.where = f"prompts file {path}: {kind}[{index}]"
        if not isinstance(data, dict):
            raise PersamError(f"{self.where}: each entry must be an object {{...}}")
        self.data = data
        self.folder = path.parent

    def error(self, name: str, problem: str) -> PersamError:
        return PersamError(f"{self.where}, field '{name}': {problem}")

    def integer(self, name: str, required: bool = True) -> Optional[int]:
        value = self.data.get(name)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be an integer, not {value!r}")
        return value

    def numbers(self, name: str, shape: Tuple[int, ...]) -> Optional[np.ndarray]:
        value = self.data.get(name)
        if value is None:
            return None
        try:
            array = np.asarray(value, dtype=np.float64)
            ok = array.ndim == len(shape) and all(s in (-1, n) for s, n in zip(shape, array.shape))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            expected = {(4,): "[x0, y0, x1, y1]", (-1, 2): "a list of [x, y] pairs", (-1,): "a list of 0/1"}[shape]
            raise self.error(name, f"must be {expected}, not {json.dumps(value)[:60]}")
        return array

    def file(self, name: str, required: bool = False) -> Optional[Path]:
        value = self.data.get(name)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value:
            raise self.error(name, "must be a file path (relative to the prompts file)")
        path = self.folder / value
        if not path.is_file():
            raise self.error(name, f"file not found: {path}")
        return path

    def mask(self, name: str, obj_id: int, required: bool = False) -> Optional[np.ndarray]:
        path = self.file(name, required)
        if path is None:
            return None
        try:
            mask = object_mask(read_label_png(path), obj_id)
        except PersamError as exc:
            raise self.error(name, str(exc)) from None
        if not mask.any():
            raise self.error(name, f"{path} has no pixel of object {obj_id}")
        return mask

    def unknown(self, allowed: Sequence[str]) -> None:
        extra = sorted(set(self.data) - set(allowed))
        if extra:
            raise PersamError(f"{self.where}: unknown field '{extra[0]}' (allowed: {', '.join(allowed)})")


def _prompt_from(entry: _Entry) -> Prompt:
    entry.unknown(("frame", "object", "points", "labels", "box", "mask"))
    frame = entry.integer("frame")
    if frame < 0:
        raise entry.error("frame", f"must be 0 or more, not {frame}")
    obj_id = entry.integer("object")
    try:
        check_object_id(obj_id)
    except PersamError as exc:
        raise entry.error("object", str(exc)) from None
    points = entry.numbers("points", (-1, 2))
    labels = entry.numbers("labels", (-1,))
    if labels is not None and points is None:
        raise entry.error("labels", "given without 'points'")
    if points is not None:
        try:
            points, labels = as_points(points, labels)
        except PersamError as exc:
            raise entry.error("labels", str(exc)) from None
    box = entry.numbers("box", (4,))
    mask = entry.mask("mask", obj_id)
    if mask is not None and (points is not None or box is not None):
        raise entry.error("mask", "a mask prompt cannot also have 'points' or 'box'")
    if mask is None and points is None and box is None:
        raise PersamError(f"{entry.where}: needs 'points', 'box' or 'mask'")
    return Prompt(frame, obj_id, points, labels, None if box is None else box.astype(np.float32), mask)


def _reference_from(entry: _Entry) -> Reference:
    entry.unknown(("object", "image", "mask"))
    obj_id = entry.integer("object")
    try:
        check_object_id(obj_id)
    except PersamError as exc:
        raise entry.error("object", str(exc)) from None
    image_path = entry.file("image", required=True)
    try:
        image = read_photo(image_path)
    except PersamError as exc:
        raise entry.error("image", str(exc)) from None
    mask = entry.mask("mask", obj_id, required=True)
    if mask.shape != image.shape[:2]:
        raise entry.error("mask", f"is {wxh(mask.shape)} but the image is {wxh(image.shape)} (width x height)")
    return Reference(obj_id, image, mask)


def mask_prompts(path: PathLike, frame: int = 0, objects: Optional[Sequence[int]] = None) -> PromptSet:
    """A label PNG as one mask prompt per object (``objects``, default all) on ``frame``: how a seed
    mask starts a run."""
    labels = read_label_png(path)
    ids = select_objects(labels, None if objects is None else list(objects), source=str(path))
    return PromptSet([Prompt(frame=frame, obj_id=k, mask=labels == k) for k in ids], [])


def references_from_files(image_path: PathLike, mask_path: PathLike, mask_flag: str = "reference mask",
                          image_flag: str = "reference image") -> List[Reference]:
    """One reference per object id of the label PNG ``mask_path``, on the image ``image_path``.

    ``mask_flag`` / ``image_flag`` name the two files in errors (a size mismatch, a mask with no
    object): the command line passes its flags."""
    image, labels = read_photo(image_path), read_label_png(mask_path)
    check_size(f"{mask_flag} {mask_path}", labels.shape, image.shape, f"its {image_flag} {image_path} is")
    ids = select_objects(labels, None, source=f"{mask_flag} {mask_path}")
    return [Reference(k, image, labels == k) for k in ids]


def load_prompts(path: PathLike) -> PromptSet:
    """Read a prompts JSON file (schema version 1, ``docs/prompts.md``); mask and image paths are
    relative to its folder. A malformed file is a one-line PersamError naming the entry and field."""
    path = Path(path)
    if not path.is_file():
        raise PersamError(f"prompts file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PersamError(f"prompts file {path} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PersamError(f"cannot read prompts file {path}: {error_line(exc)}") from None
    if not isinstance(data, dict):
        raise PersamError(f"prompts file {path}: the top level must be an object with 'version' and 'prompts'")
    if data.get("version") != SCHEMA_VERSION:
        raise PersamError(f"prompts file {path}: field 'version' must be {SCHEMA_VERSION}, not {data.get('version')!r}")
    extra = sorted(set(data) - {"version", "prompts", "references"})
    if extra:
        raise PersamError(f"prompts file {path}: unknown field '{extra[0]}' (allowed: version, prompts, references)")
    lists = {}
    for kind in ("prompts", "references"):
        lists[kind] = data.get(kind, [])
        if not isinstance(lists[kind], list):
            raise PersamError(f"prompts file {path}: field '{kind}' must be a list")
    prompts = [_prompt_from(_Entry(path, "prompts", i, e)) for i, e in enumerate(lists["prompts"])]
    references = [_reference_from(_Entry(path, "references", i, e)) for i, e in enumerate(lists["references"])]
    prompt_set = PromptSet(prompts, references)
    try:
        check_prompt_set(prompt_set)
    except PersamError as exc:
        raise PersamError(f"prompts file {path}: {exc}") from None
    return prompt_set


def save_prompts(prompt_set: PromptSet, path: PathLike) -> None:
    """Write ``prompt_set`` as a prompts JSON file; masks and reference images go, as PNGs, into the
    folder ``<name>_files/`` next to it. Every file is written atomically, the JSON last."""
    from PIL import Image

    path = Path(path)
    files = path.parent / f"{path.stem}_files"
    try:
        files.mkdir(parents=True, exist_ok=True)
        entries, refs = [], []
        for i, p in enumerate(prompt_set.prompts):
            entry: Dict[str, Any] = {"frame": int(p.frame), "object": int(p.obj_id)}
            if p.points is not None:
                points, labels = as_points(p.points, p.labels)
                entry["points"] = points.tolist()
                entry["labels"] = labels.tolist()
            if p.box is not None:
                entry["box"] = np.asarray(p.box, dtype=np.float32).tolist()
            if p.mask is not None:
                name = f"prompt{i}_f{p.frame}_o{p.obj_id}.png"
                write_label_png(files / name, np.asarray(p.mask, bool).astype(np.uint8) * p.obj_id)
                entry["mask"] = f"{files.name}/{name}"
            entries.append(entry)
        for i, r in enumerate(prompt_set.references):
            image_name, mask_name = f"ref{i}_o{r.obj_id}.png", f"ref{i}_o{r.obj_id}_mask.png"
            atomic_write(files / image_name, lambda tmp, im=r.image: Image.fromarray(im).save(tmp, format="PNG"))
            write_label_png(files / mask_name, np.asarray(r.mask, bool).astype(np.uint8) * r.obj_id)
            refs.append({"object": int(r.obj_id), "image": f"{files.name}/{image_name}",
                         "mask": f"{files.name}/{mask_name}"})
        text = json.dumps({"version": SCHEMA_VERSION, "prompts": entries, "references": refs}, indent=1)
        atomic_write(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))
    except OSError as exc:
        raise PersamError(f"cannot write prompts file {path}: {error_line(exc)}") from None
