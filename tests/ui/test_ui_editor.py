"""The page as an editor uses it, in Chromium: live preview during Track, undo/redo, zoom, playback,
the frame box, messages that clear, the empty-object warning and the layout on laptop screens.

The server is the real app (:func:`persam_video.ui.create_app`, the bundled small model) served by
uvicorn in this process, so that Track can be held after a given number of frames: its prompting
session is the library's, whose ``propagate`` waits at a gate the test opens (the frames before the
gate are tracked for real). Screenshots at 1366x768 go to ``tests/artifacts/ui/`` (ignored by git).
"""
from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import uvicorn
from test_ui_browser import Server, address, chromium_browser, expect, inside, shown

from persam_video.demo_clip import make_clip
from persam_video.export import write_video
from persam_video.export.holes import grow
from persam_video.export.render import OVERLAY_ALPHA, contour_mask
from persam_video.io.masks import DAVIS_PALETTE, read_label_png
from persam_video.model.loading import load_sam
from persam_video.options import TrackerOptions
from persam_video.runtime.system import set_threads
from persam_video.tracking.session import VideoSession
from persam_video.ui import UiConfig, create_app

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "ui"
FRAMES, SIZE, FPS = 10, (120, 212), 10.0
LAPTOPS = [(1366, 768), (1280, 800)]


class Gate:
    """Where Track waits: after ``after`` frames (None: never) until :meth:`open`."""

    def __init__(self) -> None:
        self.after: Optional[int] = None
        self.reached = threading.Event()
        self.opened = threading.Event()

    def hold_after(self, frames: int) -> None:
        self.after = frames
        self.reached.clear()
        self.opened.clear()

    def open(self) -> None:
        self.after = None
        self.opened.set()


GATE = Gate()
TRACKED_WITH = []  # the tracker options of each Track the sessions ran


class GatedSession(VideoSession):
    """The library's prompting session; its ``propagate`` waits at :data:`GATE` after the frames it lets through."""

    def propagate(self, *args, **kwargs):
        TRACKED_WITH.append(self.segmenter.options)
        for count, result in enumerate(super().propagate(*args, **kwargs), 1):
            yield result
            if GATE.after is not None and count == GATE.after:
                GATE.reached.set()  # the frames so far are written: Track's thread asks for the next one
                GATE.opened.wait(120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The demo's clip, short and small, at 10 fps; its decoded frames and exact label maps."""
    folder = tmp_path_factory.mktemp("editor_clip")
    made = make_clip(seed=2024, n_frames=FRAMES, size=SIZE, n_objects=3)
    video = folder / "clip.mp4"
    write_video(video, iter(made.frames), fps=FPS, quality=10)
    return SimpleNamespace(path=video, frames=np.stack(list(iio.imiter(video))), truth=made.labels)


@pytest.fixture(scope="module")
def editor():
    """The app with the bundled model on a free port, in a thread of this process; its session files
    are gone when it stops."""
    set_threads(None)
    model = load_sam("small", device="cpu", progress=False)
    # every test opens browser sessions of its own, more than the command's default limit of 8
    app = create_app(model, UiConfig(model_name="small", options=TrackerOptions(), max_upload_mb=1, max_sessions=32),
                     session_class=GatedSession)
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the app did not start"
    yield SimpleNamespace(url=f"http://127.0.0.1:{sock.getsockname()[1]}/", root=app.state.store.root)
    GATE.open()
    server.should_exit = True
    thread.join(60)
    sock.close()
    assert not app.state.store.root.exists()


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


def open_page(browser, editor, size=(1366, 768)):
    """A new browser session with the page open at ``size``."""
    context = browser.new_context(accept_downloads=True, viewport={"width": size[0], "height": size[1]})
    page = context.new_page()
    before = set(editor.root.glob("session-*"))
    page.goto(editor.url)
    expect(page.locator("#model")).to_contain_text("small")
    (page.session_folder,) = set(editor.root.glob("session-*")) - before  # this page's session
    return page


def load(page, clip) -> None:
    page.set_input_files("#file", str(clip.path))
    expect(page.locator("#video-info")).to_contain_text(f"{FRAMES} frames")
    shown(page)


def click_at(page, x: float, y: float, shift: bool = False) -> None:
    """A click (with Shift: the other kind) at frame pixel (x, y) of the canvas at any zoom; waits for
    the server's answer."""
    before = page.evaluate("() => state.version")
    box = page.locator("#canvas").bounding_box()
    width, height = page.evaluate("() => [state.video.width, state.video.height]")
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height)
    if shift:
        page.keyboard.up("Shift")
    page.wait_for_function(f"() => state.version > {before} || "
                           "document.querySelector('#message').className === 'error'")
    if not page.locator("#message.error").is_visible():
        shown(page)


def canvas_rgb(page) -> np.ndarray:
    """What the frame's canvas shows, (H, W, 3) float."""
    height, width = page.evaluate("() => [canvas.height, canvas.width]")
    data = page.evaluate("() => Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data)")
    return np.asarray(data, np.float32).reshape(height, width, 4)[..., :3]


def labels_file(page, index: int) -> Path:
    """Where the server keeps frame ``index``'s label map for this page's loaded video."""
    found = sorted(page.session_folder.glob(f"video-*/labels/{index:05d}.png"))
    assert len(found) <= 1, found
    return found[0] if found else page.session_folder / "none.png"


def shown_as(page, view: str) -> None:
    """Wait until the canvas shows the current frame in ``view``."""
    page.wait_for_function(f"() => canvas.dataset.view === '{view}' && "
                           "canvas.dataset.shown === `${frame}:${state.version}`")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTIFACTS / name)


def go_to(page, index: int) -> None:
    page.fill("#frame-box", str(index))
    page.press("#frame-box", "Enter")
    expect(page.locator("#frame-label")).to_contain_text(f"Frame {index} /")
    shown(page)


def test_live_preview_during_track_and_cancel_keeps_the_frames_done(browser, editor, clip):
    page = open_page(browser, editor)
    load(page, clip)
    prompted = 4  # forward 4..9 (6 frames), then backward 3..0
    go_to(page, prompted)
    click_at(page, *inside(clip.truth[prompted] == 1))
    page.click("#add-object")  # object 2 stays without a click: Track names it
    GATE.hold_after(8)  # forward 4..9, then 3 and 2
    try:
        page.keyboard.press("t")
        expect(page.locator("#message.warning")).to_contain_text("left out of Track, no click yet: object 2")
        assert GATE.reached.wait(120), "Track did not reach the gate"
        status = page.locator("#track-status")
        expect(status).to_contain_text("Tracking backward: frame 2 (8 of 10 frames")
        expect(status).to_contain_text("object 2")
        assert page.evaluate("() => state.track.state") == "running"
        # following Track, the page shows the frame it reached; earlier frames show their new masks
        expect(page.locator("#frame-label")).to_contain_text("Frame 2 /")
        for index in (7, 2):
            labels = read_label_png(labels_file(page, index))
            core = (labels == 1) & ~contour_mask(labels)  # the outline is drawn in the plain colour
            assert core.sum() > 20, f"frame {index} was tracked but has no mask"
            page.locator("#slider").fill(str(index))  # scrubbing while Track runs
            expect(page.locator("#frame-label")).to_contain_text(f"Frame {index} /")
            shown(page)
            seen, raw = canvas_rgb(page)[core], clip.frames[index][core].astype(np.float32)
            tinted = (1 - OVERLAY_ALPHA) * raw + OVERLAY_ALPHA * DAVIS_PALETTE[1]
            assert np.abs(seen - tinted).mean() < 20 < np.abs(seen - raw).mean(), index
        assert not labels_file(page, 1).exists()  # not reached yet: the frame as it is
        page.locator("#slider").fill("1")
        shown(page)
        assert np.abs(canvas_rgb(page) - clip.frames[1]).mean() < 8
        assert page.evaluate("() => document.querySelector('#follow').checked") is False  # the user moved
        screenshot(page, "live-preview-1366x768.png")
        page.click("#cancel")
    finally:
        GATE.open()
    # Cancel stops after the frame Track was on (frame 1, asked for when the gate held it)
    expect(page.locator("#track-status")).to_contain_text("Cancelled after 9 of 10 frames")
    expect(page.locator("#track")).to_be_enabled()
    assert labels_file(page, 1).exists() and not labels_file(page, 0).exists()
    assert (read_label_png(labels_file(page, 7)) == 1).any()  # the frames done keep their masks
    page.context.close()


def test_follow_motion_switch_reaches_the_tracker(browser, editor, clip):
    """The box starts as the server's options say (the recipe here); ticked (M), Track runs with flow and the
    leak guard; unticked, with the recipe again."""
    page = open_page(browser, editor)
    load(page, clip)
    assert page.evaluate("() => document.querySelector('#motion').checked") is False
    click_at(page, *inside(clip.truth[0] == 1))
    for on in (True, False):
        page.keyboard.press("m")
        assert page.evaluate("() => document.querySelector('#motion').checked") is on
        before = len(TRACKED_WITH)
        page.keyboard.press("t")
        page.wait_for_function("() => state.track && state.track.state === 'running'", timeout=60_000)
        page.wait_for_function("() => state.track.state === 'done'", timeout=120_000)
        assert len(TRACKED_WITH) == before + 1
        used = TRACKED_WITH[-1]
        assert (used.propagation, used.leak_guard) == (("flow", 1.0) if on else ("none", 0.0))
    page.context.close()


def test_undo_redo_and_clear_restore_the_exact_masks(browser, editor, clip, tmp_path):
    page = open_page(browser, editor)
    load(page, clip)
    x, y = inside(clip.truth[0] == 2)
    click_at(page, x, y)
    first = read_label_png(labels_file(page, 0))
    first_canvas = canvas_rgb(page)
    prompts_before = page.request.get(f"{address(page)}api/download/prompts").body()
    assert json.loads(prompts_before)["prompts"][0]["frame"] == 0
    # a second click, negative, on another object's pixel: the mask changes
    click_at(page, *inside(clip.truth[0] == 1), shift=True)
    second = read_label_png(labels_file(page, 0))
    assert not np.array_equal(first, second)
    expect(page.locator("#undo")).to_have_attribute("title", "Undo the click on frame 0 (Ctrl+Z)")

    page.keyboard.press("Control+z")
    expect(page.locator("#redo")).to_be_enabled()
    shown(page)
    assert np.array_equal(read_label_png(labels_file(page, 0)), first)
    assert np.array_equal(canvas_rgb(page), first_canvas)
    assert page.request.get(f"{address(page)}api/download/prompts").body() == prompts_before
    assert page.evaluate("() => state.marks['0']['1'].points.length") == 1

    page.keyboard.press("Control+Shift+z")
    expect(page.locator("#redo")).to_be_disabled()
    assert np.array_equal(read_label_png(labels_file(page, 0)), second)

    page.click("#clear")  # this object's clicks on this frame
    expect(page.locator("#objects li .state")).to_have_text("#1, no click yet")
    assert not (read_label_png(labels_file(page, 0)) == 1).any()
    page.click("#undo")
    expect(page.locator("#objects li .state")).to_have_text("#1")
    assert np.array_equal(read_label_png(labels_file(page, 0)), second)
    page.click("#undo")
    page.click("#undo")
    expect(page.locator("#undo")).to_be_disabled()
    assert not labels_file(page, 0).exists()  # before the first click the frame had no masks
    page.context.close()


def test_the_views_show_what_the_downloads_hold(browser, editor, clip):
    page = open_page(browser, editor)
    load(page, clip)
    click_at(page, *inside(clip.truth[0] == 3))
    labels = read_label_png(labels_file(page, 0))
    page.keyboard.press("v")  # the matte: white on the objects, black elsewhere
    shown_as(page, "matte")
    matte = canvas_rgb(page)
    assert np.array_equal(matte, np.repeat((labels > 0)[..., None] * 255.0, 3, axis=2))
    page.keyboard.press("v")  # the cut-out: the frame on the objects, a checkerboard elsewhere
    shown_as(page, "cutout")
    cutout = canvas_rgb(page)
    assert np.abs(cutout[labels > 0] - clip.frames[0][labels > 0]).mean() < 8
    assert set(np.unique(cutout[labels == 0])) <= {187.0, 238.0}
    screenshot(page, "cutout-view-1366x768.png")
    on_object, outside = labels > 0, ~grow(labels > 0, 6)
    page.keyboard.press("v")  # removed: the object's pixels no longer show it, the rest is the frame
    shown_as(page, "removed")
    removed = canvas_rgb(page)
    assert np.abs(removed[on_object] - clip.frames[0][on_object]).mean() > 20
    assert np.abs(removed[outside] - clip.frames[0][outside]).mean() < 8  # JPEG
    page.keyboard.press("v")  # background blurred: the object stays sharp, the rest is smoothed
    shown_as(page, "blurred")
    blurred = canvas_rgb(page)
    core = cv2.erode(on_object.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    assert np.abs(blurred[core] - clip.frames[0][core]).mean() < 8
    roughness = [np.abs(np.diff(picture, axis=1))[outside[:, 1:]].mean() for picture in (blurred, clip.frames[0])]
    assert roughness[0] < 0.6 * roughness[1]
    page.keyboard.press("v")
    page.wait_for_function("() => canvas.dataset.view === 'overlay'")
    page.context.close()


def test_a_click_at_zoom_3_lands_on_the_image_pixel_under_the_mouse(browser, editor, clip):
    page = open_page(browser, editor)
    load(page, clip)
    width, height = SIZE[1], SIZE[0]
    fit = page.locator("#canvas").bounding_box()
    x, y = inside(clip.truth[0] == 3)
    away = (60 if x > width / 2 else -60, 30 if y > height / 2 else -30)  # a pan the frame's edges allow
    mouse = (round(fit["x"] + (x + 0.5) * fit["width"] / width), round(fit["y"] + (y + 0.5) * fit["height"] / height))
    under = ((mouse[0] - fit["x"]) * width / fit["width"], (mouse[1] - fit["y"]) * height / fit["height"])
    page.mouse.move(*mouse)
    for _ in range(3):  # the wheel's steps: 150%, 200%, 300%
        page.mouse.wheel(0, -100)
    expect(page.locator("#zoom-level")).to_have_text("300%")
    box = page.locator("#canvas").bounding_box()
    assert abs(box["width"] - 3 * fit["width"]) < 0.5 and abs(box["height"] - 3 * fit["height"]) < 0.5
    # the wheel zooms about the mouse: the same image point is under it
    assert abs((mouse[0] - box["x"]) * width / box["width"] - under[0]) < 0.05
    assert abs((mouse[1] - box["y"]) * height / box["height"] - under[1]) < 0.05
    screenshot(page, "zoom-3x-1366x768.png")

    click = (mouse[0] + 15, mouse[1] - 12)
    expected = ((click[0] - box["x"]) * width / box["width"], (click[1] - box["y"]) * height / box["height"])
    unzoomed = ((click[0] - fit["x"]) * width / fit["width"], (click[1] - fit["y"]) * height / fit["height"])
    assert max(abs(a - b) for a, b in zip(expected, unzoomed)) > 1  # the zoom matters at this offset
    before = page.evaluate("() => state.version")
    page.mouse.click(*click)
    page.wait_for_function(f"() => state.version > {before}")
    got = page.evaluate("() => state.marks['0']['1'].points[0]")
    assert abs(got[0] - expected[0]) <= 0.06 and abs(got[1] - expected[1]) <= 0.06, (got, expected)
    assert (read_label_png(labels_file(page, 0)) == 1)[int(expected[1]), int(expected[0])]

    # a drag pans (and adds no click); Fit goes back to the whole frame
    page.mouse.move(*click)
    page.mouse.down()
    page.mouse.move(click[0] + away[0], click[1] + away[1], steps=4)
    page.mouse.up()
    moved = page.locator("#canvas").bounding_box()
    assert abs(moved["x"] - box["x"] - away[0]) < 0.5 and abs(moved["y"] - box["y"] - away[1]) < 0.5
    assert page.evaluate("() => state.marks['0']['1'].points.length") == 1
    page.click("#zoom-fit")
    expect(page.locator("#zoom-level")).to_have_text("100%")
    assert page.locator("#canvas").bounding_box() == fit
    page.context.close()


def test_play_the_frame_box_and_the_remembered_frame(browser, editor, clip):
    page = open_page(browser, editor)
    load(page, clip)
    page.evaluate("""() => { window.seen = [];
      new MutationObserver(() => seen.push(document.querySelector('#frame-label').textContent))
        .observe(document.querySelector('#frame-label'), {childList: true}); }""")
    page.click("#play")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("#frame-label")).to_have_text(f"Frame {FRAMES - 1} / {FRAMES - 1}")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")  # stops at the last frame
    seen = [int(text.split()[1]) for text in page.evaluate("() => seen")]
    assert sorted(set(seen)) == list(range(1, FRAMES)) and seen == sorted(seen), seen  # every frame, in order

    page.keyboard.press("Home")
    expect(page.locator("#frame-label")).to_contain_text("Frame 0 /")
    page.keyboard.press("Space")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("Space")
    expect(page.locator("#play")).to_have_attribute("aria-pressed", "false")

    page.keyboard.press("g")  # the frame box
    page.keyboard.type("6")
    page.keyboard.press("Enter")
    expect(page.locator("#frame-label")).to_have_text(f"Frame 6 / {FRAMES - 1}")
    assert page.evaluate("() => location.hash") == "#frame=6"
    page.click("#back10")
    expect(page.locator("#frame-label")).to_contain_text("Frame 0 /")
    page.keyboard.press("Shift+ArrowRight")
    expect(page.locator("#frame-label")).to_contain_text(f"Frame {FRAMES - 1} /")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#frame-label")).to_contain_text(f"Frame {FRAMES - 3} /")
    page.reload()  # the URL remembers the frame
    expect(page.locator("#frame-label")).to_contain_text(f"Frame {FRAMES - 3} /")
    shown(page)

    page.fill("#frame-box", "99")
    page.press("#frame-box", "Enter")
    expect(page.locator("#message.error")).to_contain_text(f"type a frame number from 0 to {FRAMES - 1}")
    expect(page.locator("#frame-label")).to_contain_text(f"Frame {FRAMES - 3} /")
    page.keyboard.press("?")
    expect(page.locator("#help")).to_be_visible()
    for keys in ("Ctrl+Z", "Space", "Shift+← / Shift+→", "O / Shift+O", "T"):
        expect(page.locator("#shortcuts th", has_text=keys).first).to_be_visible()
    screenshot(page, "shortcuts-1366x768.png")
    page.keyboard.press("Escape")
    expect(page.locator("#help")).to_be_hidden()
    page.context.close()


def test_errors_clear_and_never_move_the_controls(browser, editor, clip, tmp_path):
    page = open_page(browser, editor)
    load(page, clip)
    go_to(page, 5)
    slider = page.locator("#slider").bounding_box()
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n")
    page.set_input_files("#file", str(notes))
    expect(page.locator("#message.error")).to_contain_text("notes.mp4 is not a video")
    assert page.locator("#slider").bounding_box() == slider  # a toast: nothing moves
    expect(page.locator("#frame-label")).to_contain_text("Frame 5 /")  # the failed upload kept the frame
    screenshot(page, "error-toast-1366x768.png")
    click_at(page, *inside(clip.truth[5] == 1))  # the next action that succeeds ends the error
    expect(page.locator("#message.error")).to_be_hidden()

    page.evaluate("() => { MESSAGE_SECONDS.error = 1; }")  # a shorter wait than the page's, same timer
    page.keyboard.press("o")  # one object: it stays selected
    page.click("#add-object")
    page.keyboard.press("c")  # object 2 has no click here
    expect(page.locator("#message.error")).to_contain_text("object 2 has no click on frame 5")
    expect(page.locator("#message")).to_be_hidden(timeout=5000)  # and by itself after its time
    page.context.close()


@pytest.mark.parametrize("size", LAPTOPS, ids=[f"{w}x{h}" for w, h in LAPTOPS])
def test_every_control_fits_a_laptop_screen(browser, editor, clip, size):
    page = open_page(browser, editor, size)
    load(page, clip)
    for _ in range(3):
        page.click("#add-object")
    expect(page.locator("#objects li")).to_have_count(4)
    width, height = size
    # every visible control's box, read at one moment: a message's close button may vanish meanwhile
    boxes = page.evaluate("""() => [...document.querySelectorAll(
        '#slider, #track, #side button, #side input, #view button, #view input')]
        .map(e => [e, e.getBoundingClientRect()])
        .filter(([e, r]) => r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden')
        .map(([e, r]) => [e.id || e.textContent, r.x, r.y, r.width, r.height])""")
    assert len(boxes) > 30
    for name, x, y, w, h in boxes:
        assert x >= 0 and y >= 0 and x + w <= width and y + h <= height, (name, x, y, w, h)
    assert page.evaluate("() => [document.scrollingElement.scrollHeight <= innerHeight, "
                         "document.querySelector('#side').scrollHeight <= document.querySelector('#side').clientHeight]"
                         ) == [True, True]
    if size == (1366, 768):
        screenshot(page, "four-objects-1366x768.png")
    page.context.close()


def test_sigterm_stops_the_server_with_143_and_says_terminated():
    server = Server(["--model-type", "small", "--device", "cpu"])
    import urllib.request
    with urllib.request.urlopen(server.url) as answer:  # a browser session with its folder
        assert answer.status == 200
    assert any(server.root.iterdir())
    server.process.terminate()
    code = server.process.wait(60)
    output = "".join(server.lines)
    assert code == 143, output
    assert "terminated" in output and "interrupted" not in output and "Traceback" not in output, output
    assert not server.root.exists()
