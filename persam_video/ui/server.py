"""The web app: a small page (``static/``) and the JSON API it calls, one state per browser session.

Every request names its browser session by a cookie set when the page is first opened; a
request without a live session is refused with a message asking to reload the page. Errors
are JSON ``{"error": "..."}`` with a 4xx status, which the page shows; an unexpected error is a
500 with its first line, and the server goes on serving. Nothing is read from a path that the
browser sends: uploads are saved under names the server chooses, and the only other video the
server opens is the one given to it when it was started (``UiConfig.preset``).
"""
from __future__ import annotations

import contextlib
import io
import shutil
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Tuple

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from ..errors import PersamError, error_line
from ..export.render import cutout_frame, matte_frame, overlay_frame
from ..options import TrackerOptions
from .browser_session import BrowserSession
from .downloads import build_download
from .edit_views import blurred_view, fit_labels, removed_view
from .photo_routes import add_photo_routes
from .store import SessionStore
from .video import UiError, display_name, save_upload, too_large

STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "persam_video_ui"
DEFAULT_MAX_UPLOAD_MB = 200.0


@dataclass
class UiConfig:
    """What the server is started with."""

    model_name: str = "small"
    model_note: str = ""  # shown under the model's name (e.g. that the bundled model is a weak demo model)
    options: TrackerOptions = None
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    session_timeout: float = 1800.0  # seconds without a word from the page before its session ends
    max_sessions: int = 8
    preset: Optional[Path] = None  # a video or frame folder offered in the page (given on the command line)

    @property
    def max_upload_bytes(self) -> int:
        """The upload limit in bytes."""
        return int(self.max_upload_mb * 2 ** 20)


class Click(BaseModel):
    frame: int
    object: Optional[int] = None
    x: float
    y: float
    positive: bool = True


class Box(BaseModel):
    frame: int
    object: Optional[int] = None
    box: List[float]


class Place(BaseModel):
    frame: int
    object: Optional[int] = None


class Name(BaseModel):
    name: str = ""


class TrackRequest(BaseModel):
    follow_motion: Optional[bool] = None


def create_app(model, config: UiConfig, session_class: Optional[Callable] = None) -> FastAPI:
    """The app serving ``model`` to browser sessions; stopping it removes every session's files.

    ``session_class`` makes each video's prompting session (default:
    :class:`persam_video.tracking.session.VideoSession`).
    """
    config.options = config.options or TrackerOptions()
    store = SessionStore(model, config.options, config.session_timeout, config.max_sessions,
                         session_class=session_class)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        try:
            yield
        finally:
            await run_in_threadpool(store.close)

    app = FastAPI(title="persam-video", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.config = config
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(PersamError)
    async def persam_error(_request: Request, exc: PersamError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=getattr(exc, "status", 400))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": f"bad request: {where} {first.get('msg', '')}".strip()}, status_code=400)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        traceback.print_exception(type(exc), exc, exc.__traceback__)
        return JSONResponse({"error": f"internal error: {error_line(exc)}"}, status_code=500)

    def current(request: Request) -> BrowserSession:
        session = store.get(request.cookies.get(COOKIE))
        if session is None:
            raise UiError("this page's session has ended (idle for too long, or the server was restarted): "
                          "reload the page", status=401)
        return session

    def state(session: BrowserSession) -> dict:
        return {**session.describe(), "server": {
            "model": config.model_name, "note": config.model_note, "method": config.options.method,
            "follow_motion": config.options.propagation == "flow",
            "max_upload_mb": config.max_upload_mb, "preset": config.preset.name if config.preset else None}}

    def open_page(request: Request, page_file: Path) -> HTMLResponse:
        try:
            session = store.get(request.cookies.get(COOKIE)) or store.create()
        except UiError as exc:
            return HTMLResponse(f"<!doctype html><title>persam-video</title><p>{exc}</p>", status_code=exc.status)
        page = HTMLResponse(page_file.read_text(encoding="utf-8"))
        page.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/")
        return page

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        return open_page(request, STATIC / "index.html")

    add_photo_routes(app, current, open_page, config.max_upload_bytes)

    @app.get("/api/state")
    def get_state(session: BrowserSession = Depends(current)) -> dict:
        return state(session)

    @app.post("/api/video")
    async def upload(request: Request, name: str = "") -> dict:
        session = current(request)
        limit = config.max_upload_bytes
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise UiError(too_large(limit), status=413)
        folder = await run_in_threadpool(session.video_folder)
        try:
            path = await save_upload(request.stream(), folder, name, limit)
            await run_in_threadpool(session.open_video, path, display_name(name), folder)
        except BaseException:
            await run_in_threadpool(shutil.rmtree, folder, True)
            raise
        return state(session)

    @app.post("/api/video/preset")
    def open_preset(session: BrowserSession = Depends(current)) -> dict:
        if config.preset is None:
            raise UiError("the server was started without a video to offer")
        session.open_video(config.preset, display_name(config.preset.name))
        return state(session)

    @app.post("/api/objects")
    def add_object(body: Name, session: BrowserSession = Depends(current)) -> dict:
        session.add_object(body.name)
        return state(session)

    @app.patch("/api/objects/{obj_id}")
    def rename_object(obj_id: int, body: Name, session: BrowserSession = Depends(current)) -> dict:
        session.rename_object(obj_id, body.name)
        return state(session)

    @app.delete("/api/objects/{obj_id}")
    def remove_object(obj_id: int, session: BrowserSession = Depends(current)) -> dict:
        session.remove_object(obj_id)
        return state(session)

    @app.post("/api/click")
    def click(body: Click, session: BrowserSession = Depends(current)) -> dict:
        session.add_click(body.frame, body.object, body.x, body.y, body.positive)
        return state(session)

    @app.post("/api/box")
    def box(body: Box, session: BrowserSession = Depends(current)) -> dict:
        if len(body.box) != 4:
            raise UiError("a box is four numbers: x0, y0, x1, y1")
        session.add_box(body.frame, body.object, tuple(body.box))
        return state(session)

    @app.post("/api/clear")
    def clear(body: Place, session: BrowserSession = Depends(current)) -> dict:
        session.clear_prompt(body.frame, body.object)
        return state(session)

    @app.post("/api/undo")
    def undo(session: BrowserSession = Depends(current)) -> dict:
        session.undo()
        return state(session)

    @app.post("/api/redo")
    def redo(session: BrowserSession = Depends(current)) -> dict:
        session.redo()
        return state(session)

    @app.get("/api/frame/{index}")
    def frame(index: int, view: str = "overlay", session: BrowserSession = Depends(current)) -> Response:
        data, media_type = render_frame(session, index, view)
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})

    @app.post("/api/track")
    def track(request: Optional[TrackRequest] = None, session: BrowserSession = Depends(current)) -> dict:
        warning = session.start_track(None if request is None else request.follow_motion)
        return {**state(session), "warning": warning}

    @app.get("/api/track")
    def progress(session: BrowserSession = Depends(current)) -> dict:
        return {"track": session.job.progress() if session.job else None, "version": session.version}

    @app.post("/api/track/cancel")
    def cancel(session: BrowserSession = Depends(current)) -> dict:
        session.cancel_track()
        return state(session)

    @app.get("/api/download/{kind}")
    def download(kind: str, session: BrowserSession = Depends(current)) -> FileResponse:
        made = build_download(session, kind)
        return FileResponse(made.path, media_type=made.media_type, filename=made.filename)

    return app


VIEWS = ("overlay", "matte", "cutout", "removed", "blurred")


def render_frame(session: BrowserSession, index: int, view: str = "overlay") -> Tuple[bytes, str]:
    """Frame ``index`` as the page shows it in ``view`` (see :data:`VIEWS`), with its media type.

    ``overlay``: the frame with its current masks tinted in (JPEG); ``matte`` and ``cutout``: what
    those downloads hold for the frame, made by the same functions (grey and RGBA PNGs);
    ``removed`` and ``blurred``: the objects removed, the background blurred (JPEGs, :mod:`.edit_views`).
    """
    if view not in VIEWS:
        raise UiError(f"unknown view {view!r}; choose one of {', '.join(VIEWS)}")
    with session.lock:
        session.check_frame(index)
        image = session.video.preview(index)
        labels = fit_labels(session.labels(index), image.shape)
        if view == "removed":
            image = removed_view(len(session.video), index, session.video.preview, session.labels)
    buffer = io.BytesIO()
    if view in ("overlay", "removed", "blurred"):
        shown = {"overlay": overlay_frame, "blurred": blurred_view}.get(view, lambda picture, _: picture)
        Image.fromarray(shown(image, labels)).save(buffer, format="JPEG", quality=90)
        return buffer.getvalue(), "image/jpeg"
    matte = matte_frame(labels)
    Image.fromarray(matte if view == "matte" else cutout_frame(image, matte)).save(buffer, format="PNG")
    return buffer.getvalue(), "image/png"
