"""The photo mode's page (``/photos``) and JSON API: a reference, its objects and clicks, undo, a batch, Run and
its progress, corrections, a zip."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from fastapi import Depends, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from .browser_session import BrowserSession
from .video import UiError, display_name, too_large

PAGE = Path(__file__).resolve().parent / "static" / "photos.html"


class PhotoClick(BaseModel):
    x: float
    y: float
    positive: bool = True
    object: int = 1


class Correction(PhotoClick):
    index: int


class Run(BaseModel):
    method: str = "persam"
    fast: bool = False


def add_photo_routes(app: FastAPI, current: Callable[[Request], BrowserSession], open_page: Callable[..., HTMLResponse],
                     max_upload_bytes: int) -> None:
    """Add the photo mode's routes to ``app``; ``current`` finds the request's browser session and
    ``open_page`` serves a page with the session's cookie."""

    async def body(request: Request) -> bytes:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > max_upload_bytes:
            raise UiError(too_large(max_upload_bytes), status=413)
        data = await request.body()
        if not data:
            raise UiError("the uploaded file is empty")
        if len(data) > max_upload_bytes:
            raise UiError(too_large(max_upload_bytes), status=413)
        return data

    @app.get("/photos", response_class=HTMLResponse)
    def photos_page(request: Request) -> HTMLResponse:
        return open_page(request, PAGE)

    @app.get("/api/photos")
    def photos_state(session: BrowserSession = Depends(current)) -> dict:
        return session.photos.describe()

    @app.post("/api/photos/reference")
    async def reference(request: Request, name: str = "") -> dict:
        session = current(request)
        await run_in_threadpool(session.photos.set_reference, await body(request), display_name(name))
        return session.photos.describe()

    @app.post("/api/photos/add")
    async def add(request: Request, name: str = "") -> dict:
        session = current(request)
        await run_in_threadpool(session.photos.add_photo, await body(request), display_name(name))
        return session.photos.describe()

    @app.post("/api/photos/clear")
    def clear(session: BrowserSession = Depends(current)) -> dict:
        session.photos.clear_photos()
        return session.photos.describe()

    @app.post("/api/photos/click")
    def click(body: PhotoClick, session: BrowserSession = Depends(current)) -> dict:
        session.photos.click_reference(body.x, body.y, body.positive, body.object)
        return session.photos.describe()

    @app.post("/api/photos/object")
    def add_object(session: BrowserSession = Depends(current)) -> dict:
        session.photos.add_object()
        return session.photos.describe()

    @app.post("/api/photos/undo")
    def undo(session: BrowserSession = Depends(current)) -> dict:
        session.photos.undo()
        return session.photos.describe()

    @app.get("/api/photos/progress")
    def progress(session: BrowserSession = Depends(current)) -> dict:
        return {"progress": session.photos.progress}  # read without the lock that Run holds

    @app.post("/api/photos/correct")
    def correct(body: Correction, session: BrowserSession = Depends(current)) -> dict:
        session.photos.correct(body.index, body.x, body.y, body.positive, body.object)
        return session.photos.describe()

    @app.post("/api/photos/run")
    def run(body: Run, session: BrowserSession = Depends(current)) -> dict:
        if body.method not in ("persam", "persam-f"):
            raise UiError("the method is persam or persam-f")
        session.photos.run(body.method, body.fast)
        return session.photos.describe()

    @app.get("/api/photos/image/{which}")
    def image(which: str, session: BrowserSession = Depends(current)) -> Response:
        index = -1 if which == "reference" else _index(which)
        data = session.photos.preview("reference" if which == "reference" else "photo", index)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @app.get("/api/photos/download")
    def download(session: BrowserSession = Depends(current)) -> Response:
        return Response(session.photos.zip(), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="photos.zip"'})


def _index(text: str) -> int:
    if not text.isdigit():
        raise UiError(f"no such photo: {text}", status=404)
    return int(text)
