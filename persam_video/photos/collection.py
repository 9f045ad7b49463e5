"""A photo collection through an :class:`ImagePersonalizer`: references read from files, one label
PNG per photo, a summary CSV, and optional cut-outs, mattes or subjects on white."""
from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm.auto import tqdm

from ..batch.markers import read_record, write_record
from ..errors import PersamError, error_line
from ..export.render import cutout_frame, matte_frame
from ..export.sinks import write_image_png
from ..io.files import PathLike, ensure_writable_dir, remove_temporaries, write_csv
from ..io.masks import read_label_png, write_label_png
from ..io.photos import MAX_PIXELS, read_mask_colours, read_photo
from ..io.prompts import references_from_files
from ..model.loading import ModelSpec
from ..runtime.pool import pool_round
from ..runtime.system import set_threads
from .personalizer import ImagePersonalizer, PhotoReference
from .presence import AUTO, decide_presence

EXPORTS = ("cutout", "matte", "white")
SUMMARY_NAME = "summary.csv"
PROGRESS_NAME = ".persam-images.json"  # the photos done so far and their rows, for a rerun after a kill
COLUMNS = ("photo", "object", "found", "score", "similarity", "area", "seconds", "error", "presence_threshold",
           "skipped")


def photo_references(image_path: PathLike, mask_path: PathLike) -> List[PhotoReference]:
    """The references of :func:`~persam_video.io.prompts.references_from_files` (one per object of
    the mask file) as photo references. An object whose pixels all have a red channel (PerSeg's
    palette masks, grey masks) keeps it for the image recipe's grid rule; one whose colour lacks red
    (ids 2+ of the DAVIS palette) takes the video recipe's drawn value instead."""
    red = read_mask_colours(mask_path)[..., 0]
    return [PhotoReference(ref.image, ref.mask, ref.obj_id, red if bool((red[ref.mask] > 0).all()) else None)
            for ref in references_from_files(image_path, mask_path)]


@dataclass
class CollectionRun:
    """What a run over a collection did: summary rows, photos that failed, where the CSV is."""

    rows: List[Dict[str, object]]
    failed: List[str]
    summary: Path


def output_names(photos: Sequence[Path]) -> List[str]:
    """``<stem>`` of each photo; two photos of one stem (in different folders) are an error, since
    they would write the same label PNG."""
    names = [p.stem for p in photos]
    seen: Dict[str, Path] = {}
    for photo, name in zip(photos, names):
        if name in seen:
            raise PersamError(f"two photos would write {name}.png: {seen[name]} and {photo} (rename one, or run "
                              "the folders separately)")
        seen[name] = photo
    return names


def export_objects(folder: Path, name: str, image: np.ndarray, labels: np.ndarray, found: Sequence[int],
                   kind: str) -> None:
    """Write ``kind`` (cutout: RGBA; matte: grey; white: the subject on white) for each found object."""
    for k in found:
        matte = matte_frame(labels, [k])
        if kind == "matte":
            picture = matte
        elif kind == "cutout":
            picture = cutout_frame(image, matte)
        else:
            alpha = matte[..., None].astype(np.float32) / 255
            picture = np.round(image * alpha + 255 * (1 - alpha)).astype(np.uint8)
        write_image_png(folder / f"{name}_{k}.png", picture)


def write_summary(path: Path, rows: Sequence[Dict[str, object]]) -> None:
    """The summary CSV, atomically (its lines end in CRLF, as they always have)."""
    write_csv(path, COLUMNS, rows, line_end="\r\n")


def segment_photo(personalizer: ImagePersonalizer, photo: Path, name: str, out: Path, export: Optional[str],
                  max_pixels: int = MAX_PIXELS) -> List[Dict[str, object]]:
    """One photo: its label PNG, its exports, and its summary rows (one per object, or one error row)."""
    began = time.perf_counter()
    try:
        image = read_photo(photo, max_pixels=max_pixels)
    except PersamError as exc:
        return [{"photo": str(photo), "error": error_line(exc)}]
    result = personalizer.segment(image)
    write_label_png(out / f"{name}.png", result.labels)
    if export is not None:
        export_objects(out / export, name, image, result.labels, [o.obj_id for o in result.objects if o.found],
                       export)
    seconds = time.perf_counter() - began
    return [{"photo": str(photo), "object": o.obj_id, "found": int(o.found), "score": f"{o.score:.4f}",
             "similarity": f"{o.similarity:.4f}", "area": int(o.mask.sum()), "seconds": f"{seconds:.3f}",
             "error": ""} for o in result.objects]


def segment_collection(personalizer: ImagePersonalizer, photos: Sequence[Path], out: PathLike,
                       export: Optional[str] = None, progress: bool = True,
                       log: Callable[[str], None] = lambda text: None, settings: Optional[dict] = None,
                       restart: bool = False, workers: int = 1, model: Optional[ModelSpec] = None,
                       skipped: Sequence[Tuple[Path, str]] = (), max_pixels: int = MAX_PIXELS,
                       coco: Optional[PathLike] = None) -> CollectionRun:
    """Segment every photo into ``out/<stem>.png`` (the photo's size, the objects' ids) and write
    ``out/summary.csv``; with ``export``, ``out/<export>/<stem>_<id>.png`` per found object. A photo
    that cannot be read is reported in the summary and the others go on.

    With ``settings`` (what decides the masks), the photos done are recorded after each one, and a
    rerun with the same settings (unless ``restart``) skips them: a killed run goes on where it was.
    ``workers`` > 1 runs the photos in that many processes, each loading ``model`` (the personalizer's
    targets and weights are handed over, not fitted again): the same files as one worker.

    ``skipped`` (files that are not photos, with the reason) are listed in the summary; a photo over
    ``max_pixels`` is refused before decoding. With the personalizer's presence ``auto``, the
    objects whose similarity falls under the collection's own threshold are taken out of the label
    PNGs (and exports) at the end; ``coco`` also writes the masks as a COCO instances file."""
    if export is not None and export not in EXPORTS:
        raise PersamError(f"unknown export {export!r}: use {', '.join(EXPORTS)}")
    if workers < 1:
        raise PersamError(f"the worker count must be at least 1, not {workers}")
    if workers > 1 and model is None:
        raise PersamError("several workers need the model's ModelSpec, to load it in each")
    names = output_names(photos)
    out = ensure_writable_dir(out)
    remove_temporaries(out)
    if export is not None:
        remove_temporaries(ensure_writable_dir(out / export))
    record = {"settings": settings, "export": export}
    saved = None if restart or settings is None else _read_progress(out / PROGRESS_NAME, record)
    done: Dict[str, List[Dict[str, object]]] = {} if saved is None else saved["done"]
    todo = [(photo, name) for photo, name in zip(photos, names)
            if not (str(photo) in done and (out / f"{name}.png").is_file())]

    def finished(photo: Path, rows: List[Dict[str, object]]) -> None:
        done[str(photo)] = rows
        if rows and rows[0].get("error"):
            log(f"{photo}: {rows[0]['error']}")
        if settings is not None:
            write_record(out / PROGRESS_NAME, {**record, "done": done}, compact=True)

    try:
        with tqdm(total=len(photos), initial=len(photos) - len(todo), unit="photo", desc="photos",
                  disable=not progress, dynamic_ncols=True) as bar:
            if workers == 1 or len(todo) < 2:
                for photo, name in todo:
                    finished(photo, segment_photo(personalizer, photo, name, out, export, max_pixels))
                    bar.update(1)
            else:
                _in_pool(todo, workers, model, personalizer.state(), out, export, max_pixels, finished, bar)
    except BaseException:
        write_summary(out / SUMMARY_NAME, _skipped_rows(skipped) + _rows_of(photos, done))
        raise
    rows = _rows_of(photos, done)
    if personalizer.options.presence == AUTO:
        rows = decide_presence(rows)
        _drop_absent(rows, dict(zip(map(str, photos), names)), out, export)
    rows = _skipped_rows(skipped) + rows
    write_summary(out / SUMMARY_NAME, rows)
    if coco is not None:
        write_coco(coco, photos, names, out, personalizer.ids)
    failed = [str(p) for p in photos if any(row.get("error") for row in done.get(str(p), []))]
    return CollectionRun(rows, failed, out / SUMMARY_NAME)


_WORKER: Dict[str, ImagePersonalizer] = {}


def _init_worker(model: ModelSpec, state: dict, workers: int) -> None:
    """Pool initializer: load the model, rebuild the personalizer."""
    set_threads(None, workers)
    _WORKER["personalizer"] = ImagePersonalizer.from_state(model.load(progress=False), state)


def _work(job: Tuple[Path, str, Path, Optional[str], int]) -> List[Dict[str, object]]:
    return segment_photo(_WORKER["personalizer"], *job)


def _in_pool(todo, workers: int, model: ModelSpec, state: dict, out: Path, export: Optional[str], max_pixels: int,
             finished: Callable, bar) -> None:
    """The photos of ``todo`` on the package's pool (:func:`~persam_video.runtime.pool.pool_round`) of
    ``workers`` processes, ``finished`` called as each ends; a dead worker ends the run (the photos
    done are kept for a rerun)."""
    def report(job: tuple, rows: List[Dict[str, object]]) -> None:
        finished(job[0], rows)
        bar.update(1)

    queue = deque((photo, name, out, export, max_pixels) for photo, name in todo)
    if pool_round(queue, _work, workers, report, _init_worker, (model, state, workers)):
        raise PersamError("a worker process died (out of memory?); the photos done are kept: run the "
                          "same command again to go on")


def _read_progress(path: Path, record: dict) -> Optional[dict]:
    """A saved run of the same settings and export, else None (it is then done again)."""
    saved = read_record(path)
    same = saved is not None and all(saved.get(key) == value for key, value in record.items())
    return saved if same and isinstance(saved.get("done"), dict) else None


def _rows_of(photos: Sequence[Path], done: Dict[str, List[Dict[str, object]]]) -> List[Dict[str, object]]:
    """The summary rows of the photos done, in the photos' order."""
    return [row for photo in photos for row in done.get(str(photo), [])]


def _skipped_rows(skipped: Sequence[Tuple[Path, str]]) -> List[Dict[str, object]]:
    """One summary row per file of the folders that is not a photo, with the reason."""
    return [{"photo": str(path), "skipped": reason} for path, reason in skipped]


def _drop_absent(rows: Sequence[Dict[str, object]], names: Dict[str, str], out: Path, export: Optional[str]) -> None:
    """Take the objects that ``rows`` say are absent (found 0, area 0) out of their label PNGs and
    exports; each PNG is rewritten atomically, so a kill leaves it before or after, and a rerun
    does the same again."""
    absent: Dict[str, List[int]] = {}
    for row in rows:
        if row.get("object") not in (None, "") and str(row.get("found")) == "0":
            absent.setdefault(names[str(row["photo"])], []).append(int(str(row["object"])))
    for name, ids in absent.items():
        path = out / f"{name}.png"
        labels = read_label_png(path)
        gone = np.isin(labels, ids)
        if gone.any():
            labels[gone] = 0
            write_label_png(path, labels)
        for k in ids:
            if export is not None:
                (out / export / f"{name}_{k}.png").unlink(missing_ok=True)


def write_coco(path: PathLike, photos: Sequence[Path], names: Sequence[str], out: Path, ids: Sequence[int]) -> Path:
    """The label PNGs of ``out`` as a COCO instances file (RLE masks, one category per object id),
    each image named by its photo's path; photos that failed are left out."""
    from ..export.coco import CocoFile

    document = CocoFile(ids)
    for photo, name in zip(photos, names):
        if (out / f"{name}.png").is_file():
            document.add(str(photo), read_label_png(out / f"{name}.png"))
    return document.write(path)
