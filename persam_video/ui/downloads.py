"""The page's downloads, made from a browser session's label PNGs with the library's exporters.

``labels`` (zip of the label PNGs), ``overlay`` (mp4), ``mattes`` and ``cutouts`` (zips of PNGs),
``alpha`` (the cut-out as a ProRes 4444 .mov with alpha) and ``removed`` (the cleaned clip, every
object removed, mp4), all from :func:`persam_video.export.export`, and ``prompts`` (the JSON
``segment --prompts`` reads, from :func:`persam_video.io.prompts.save_prompts`; a zip when it
comes with mask files). Each file
is built in the session's folder under a temporary name and renamed when complete.
"""
from __future__ import annotations

import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict

from ..export import export
from ..io.files import atomic_write
from .browser_session import BrowserSession
from .video import UiError


@dataclass
class Download:
    """A file ready to send: where it is, the name the browser saves it under, its media type."""

    path: Path
    filename: str
    media_type: str


def zip_folder(folder: Path, out: Path, arcdir: str) -> Path:
    """Zip the files under ``folder`` (sorted, not hidden; sub-folders kept) into ``out`` under
    ``arcdir/``, atomically."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for path in files:
                archive.write(path, f"{arcdir}/{path.relative_to(folder).as_posix()}")

    atomic_write(out, write)
    return out


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def _stem(session: BrowserSession) -> str:
    return Path(session.video.name).stem or "video"


def _labels(session: BrowserSession, out: Path) -> Download:
    stem = _stem(session)
    return Download(zip_folder(session.labels_dir, out / "labels.zip", f"{stem}_labels"), f"{stem}_labels.zip",
                    "application/zip")


def _overlay(session: BrowserSession, out: Path) -> Download:
    path = out / "overlay.mp4"
    export(session.video.path, session.labels_dir, path, kind="overlay", fps=session.video.fps)
    return Download(path, f"{_stem(session)}_overlay.mp4", "video/mp4")


def _alpha_mov(session: BrowserSession, out: Path) -> Download:
    path = out / "cutout.mov"
    export(session.video.path, session.labels_dir, path, kind="cutout", format="prores", fps=session.video.fps)
    return Download(path, f"{_stem(session)}_cutout.mov", "video/quicktime")


def _cleaned(session: BrowserSession, out: Path) -> Download:
    path = out / "removed.mp4"
    export(session.video.path, session.labels_dir, path, kind="remove", fps=session.video.fps)
    return Download(path, f"{_stem(session)}_removed.mp4", "video/mp4")


def _pngs(kind: str) -> Callable[[BrowserSession, Path], Download]:
    def build(session: BrowserSession, out: Path) -> Download:
        folder = _fresh(out / kind)
        export(session.video.path, session.labels_dir, folder, kind="matte" if kind == "mattes" else "cutout")
        stem = f"{_stem(session)}_{kind}"
        return Download(zip_folder(folder, out / f"{kind}.zip", stem), f"{stem}.zip", "application/zip")
    return build


def _prompts(session: BrowserSession, out: Path) -> Download:
    from ..io.prompts import save_prompts
    folder = _fresh(out / "prompts")
    save_prompts(session.video_session.prompt_set(), folder / "prompts.json")
    stem = _stem(session)
    if [p.name for p in folder.rglob("*") if p.is_file()] == ["prompts.json"]:
        return Download(folder / "prompts.json", f"{stem}_prompts.json", "application/json")
    return Download(zip_folder(folder, out / "prompts.zip", f"{stem}_prompts"), f"{stem}_prompts.zip",
                    "application/zip")


BUILDERS: Dict[str, Callable[[BrowserSession, Path], Download]] = {
    "labels": _labels, "overlay": _overlay, "mattes": _pngs("mattes"), "cutouts": _pngs("cutouts"),
    "alpha": _alpha_mov, "removed": _cleaned, "prompts": _prompts,
}
NEEDS_TRACK = ("labels", "overlay", "mattes", "cutouts", "alpha", "removed")


def build_download(session: BrowserSession, kind: str) -> Download:
    """Make the ``kind`` download of ``session`` (one of :data:`BUILDERS`) in its folder."""
    if kind not in BUILDERS:
        raise UiError(f"unknown download {kind!r}; choose one of {', '.join(BUILDERS)}", status=404)
    with session.lock:
        if session.video is None:
            raise UiError("load a video first")
        if session.busy:
            raise UiError("Track is running: wait for it to finish", status=409)
        if kind in NEEDS_TRACK and not session.tracked:
            raise UiError("press Track first and let it finish: the downloads need a mask on every frame")
        if kind == "prompts" and not session.prompts.marks:
            raise UiError("there is nothing to save yet: click on an object first")
        out = session.video.previews.parent / "downloads"
        out.mkdir(exist_ok=True)
        return BUILDERS[kind](session, out)
