"""The page's photo mode in Chromium at 1366x768: two objects on the reference, undo, a batch, Run with the
fast switch (the grid in view without scrolling the page), a correction, the zip."""
from __future__ import annotations

import csv
import io
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from test_ui_browser import Server, chromium_browser  # noqa: I001 (this folder is on the path)

from persam_video.demo_clip import make_clip

SIZE = (120, 160)
TIMEOUT_MS = 120_000
SCREENSHOTS = Path(os.environ.get("PERSAM_VIDEO_SCREENSHOTS", tempfile.gettempdir()))  # where to look at the page


@pytest.fixture(scope="module")
def browser():
    yield from chromium_browser()


@pytest.fixture(scope="module")
def server():
    running = Server(["--model-type", "small", "--device", "cpu"])
    yield running
    assert running.stop() in (0, 130), "".join(running.lines)
    assert "Traceback" not in "".join(running.lines), "".join(running.lines)


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    clip = make_clip(seed=41, n_frames=3, size=SIZE, n_objects=2)
    paths = []
    for i, frame in enumerate(clip.frames):
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(frame).save(paths[-1])
    return paths, clip.labels


def centre(labels, k=1):
    """Object ``k``'s most central pixel: a click there is inside it."""
    ys, xs = np.nonzero(labels == k)
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return float(xs[i]), float(ys[i])


def click_image(page, locator, x, y, width, height):
    """Click image pixel (x, y) of an image shown at any size."""
    box = locator.bounding_box()
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height)


def state(page):
    return page.evaluate("fetch('/api/photos').then(r => r.json())")


def test_reference_click_batch_run_correct_download(browser, server, album, tmp_path):
    paths, labels = album
    context = browser.new_context(accept_downloads=True, viewport={"width": 1366, "height": 768})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.url + "photos")  # the url ends with /

    page.click("#run")  # nothing yet: a message, no crash
    expect(page.locator("#message")).to_contain_text("click the object on the reference photo first")

    page.set_input_files("#reference-file", str(paths[0]))
    page.wait_for_function("(() => { const img = document.getElementById('reference'); "
                           "return !img.hidden && img.complete && img.naturalWidth > 0; })()")
    x, y = centre(labels[0])
    click_image(page, page.locator("#reference"), x, y, SIZE[1], SIZE[0])
    page.wait_for_function("fetch('/api/photos').then(r => r.json()).then(s => s.reference && s.reference.masked)")
    assert state(page)["reference"]["clicks"] == 1

    page.click("#add-object")  # a second object, selected, in the video page's colour for id 2
    expect(page.locator("#objects li.selected")).to_contain_text("#2, no click yet")
    assert page.locator("#objects li.selected .swatch").evaluate("e => getComputedStyle(e).backgroundColor") \
        == "rgb(0, 128, 0)"
    x2, y2 = centre(labels[0], 2)
    click_image(page, page.locator("#reference"), x2, y2, SIZE[1], SIZE[0])
    expect(page.locator("#objects li.selected")).to_contain_text("#2, 1 click(s)")
    click_image(page, page.locator("#reference"), 1, 1, SIZE[1], SIZE[0])  # a stray click on the background...
    page.wait_for_function("fetch('/api/photos').then(r => r.json()).then(s => s.objects[1].clicks === 2)")
    page.keyboard.press("Control+z")  # ...taken back
    expect(page.locator("#objects li.selected")).to_contain_text("#2, 1 click(s)")
    assert [(o["id"], o["clicks"]) for o in state(page)["objects"]] == [(1, 1), (2, 1)]

    page.set_input_files("#photo-files", [str(p) for p in paths[1:]])
    page.wait_for_function("document.querySelectorAll('#grid figure').length === 2")
    page.check("input[value=persam-f]")
    page.check("#fast")
    page.click("#run")
    page.wait_for_function("[...document.querySelectorAll('#grid figcaption')]"
                           ".every(c => c.textContent.includes('score'))")
    described = state(page)
    assert described["method"] == "persam-f" and described["fast"] is True
    photos = described["photos"]
    assert [p["name"] for p in photos] == ["photo1.png", "photo2.png"]
    assert all([o["id"] for o in p["objects"]] == [1, 2] and all(0.0 <= o["score"] <= 1.0 for o in p["objects"])
               for p in photos)
    # at 1366x768 the reference is bounded and the results are in view, the page itself not scrolled
    height = page.evaluate("innerHeight")
    assert page.locator("#reference").bounding_box()["height"] <= 0.4 * height
    assert page.evaluate("parseFloat(getComputedStyle(document.getElementById('reference')).maxHeight)") \
        <= 0.4 * height  # a phone photo's reference is shown at most this tall, whatever its size
    first = page.locator("#grid figure").first.bounding_box()
    assert first["y"] + first["height"] <= height
    assert page.evaluate("document.scrollingElement.scrollHeight <= innerHeight + 1")
    page.screenshot(path=str(SCREENSHOTS / "photos-1366x768.png"))

    x, y = centre(labels[1])
    page.click("#objects li[data-id='1']")
    click_image(page, page.locator("#grid img").first, x, y, SIZE[1], SIZE[0])
    page.wait_for_function("document.querySelector('#grid figcaption').textContent.includes('(corrected)')")
    first_photo = state(page)["photos"][0]
    assert first_photo["corrected"] and first_photo["objects"][0] == {"id": 1, "found": True, "score": 1.0,
                                                                      "corrected": True}

    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / "photos.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        rows = list(csv.DictReader(io.StringIO(archive.read("summary.csv").decode())))
        mask = np.asarray(Image.open(io.BytesIO(archive.read("masks/000_photo1.png"))))
    assert "masks/001_photo2.png" in names and "cutouts/000_photo1_1.png" in names
    assert [(r["photo"], r["object"]) for r in rows] == [("photo1.png", "1"), ("photo1.png", "2"),
                                                         ("photo2.png", "1"), ("photo2.png", "2")]
    assert rows[0]["corrected"] == "1"
    assert mask.shape == SIZE and mask[int(y), int(x)] == 1  # the corrected mask of object 1 covers the click
    context.close()
