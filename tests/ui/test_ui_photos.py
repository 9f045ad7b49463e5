"""The page's photo mode in Chromium: a reference click, a batch, Run, a correction, the zip."""
from __future__ import annotations

import csv
import io
import zipfile

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect
from test_ui_browser import Server, chromium_browser  # noqa: I001 (this folder is on the path)

from persam_video.demo_clip import make_clip

SIZE = (120, 160)
TIMEOUT_MS = 120_000


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
    clip = make_clip(seed=41, n_frames=3, size=SIZE, n_objects=1)
    paths = []
    for i, frame in enumerate(clip.frames):
        paths.append(folder / f"photo{i}.png")
        Image.fromarray(frame).save(paths[-1])
    return paths, clip.labels


def centre(labels):
    """The object's most central pixel: a click there is inside it."""
    ys, xs = np.nonzero(labels == 1)
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
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 800})
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

    page.set_input_files("#photo-files", [str(p) for p in paths[1:]])
    page.wait_for_function("document.querySelectorAll('#grid figure').length === 2")
    page.click("#run")
    page.wait_for_function("[...document.querySelectorAll('#grid figcaption')]"
                           ".every(c => c.textContent.includes('score'))")
    photos = state(page)["photos"]
    assert [p["name"] for p in photos] == ["photo1.png", "photo2.png"]
    assert all(p["found"] is not None and 0.0 <= p["score"] <= 1.0 for p in photos)

    x, y = centre(labels[1])
    click_image(page, page.locator("#grid img").first, x, y, SIZE[1], SIZE[0])
    page.wait_for_function("document.querySelector('#grid figcaption').textContent.includes('(corrected)')")
    assert state(page)["photos"][0]["corrected"] and state(page)["photos"][0]["score"] == 1.0

    with page.expect_download() as download:
        page.click("#download")
    path = tmp_path / "photos.zip"
    download.value.save_as(path)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        rows = list(csv.DictReader(io.StringIO(archive.read("summary.csv").decode())))
        mask = np.asarray(Image.open(io.BytesIO(archive.read("masks/000_photo1.png"))))
    assert "masks/001_photo2.png" in names and "cutouts/000_photo1.png" in names
    assert [r["photo"] for r in rows] == ["photo1.png", "photo2.png"] and rows[0]["corrected"] == "1"
    assert mask.shape == SIZE and mask[int(y), int(x)] == 255  # the corrected mask covers the click
    context.close()
