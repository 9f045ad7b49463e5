#!/usr/bin/env python
"""docs/ui.md's screenshot: the page at 1366x768 during Track on the demo clip, one click per
object, "follow motion" on, taken when Track reaches frame 20 (Debian's Chromium via Playwright).

    persam-video demo --out /tmp/d && python tools/ui_screenshot.py /tmp/d docs/images/ui.png
"""
from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import sync_playwright

from persam_video.io.masks import read_label_png
from persam_video.persam import interior_point


def click_objects(page, labels: np.ndarray) -> None:
    """One positive click on each object of ``labels`` at its most interior pixel (a new object before each
    but the first)."""
    height, width = labels.shape
    for n, obj_id in enumerate(k for k in np.unique(labels) if k not in (0, 255)):
        if n:
            page.click("#add-object")
        x, y = (float(v) for v in interior_point(labels == obj_id))
        box = page.locator("#canvas").bounding_box()
        version = page.evaluate("() => state.version")
        page.mouse.click(box["x"] + (x + 0.5) * box["width"] / width, box["y"] + (y + 0.5) * box["height"] / height)
        page.wait_for_function(f"() => state.version > {version}")


def main(demo: Path, out: Path) -> None:
    server = subprocess.Popen([sys.executable, "-m", "persam_video", "ui", "--port", "0", "--video",
                               str(demo / "clip.mp4")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = next(m.group(0) for line in server.stdout if (m := re.search(r"http://[0-9.:]+/", line)))
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
            page = browser.new_page(viewport={"width": 1366, "height": 768})
            page.goto(url)
            page.wait_for_selector("#preset:not([hidden])")
            page.click("#preset")
            page.wait_for_function("() => state && state.video")
            click_objects(page, read_label_png(demo / "ground_truth" / "00000.png"))
            page.check("#motion")
            page.click("#track")
            page.wait_for_function("() => state.track && state.track.frame !== null && state.track.frame >= 20",
                                   timeout=300_000)
            time.sleep(0.8)  # the frame reached is drawn
            page.screenshot(path=str(out))
            page.wait_for_function("() => state.track.state === 'done'", timeout=300_000)
            browser.close()
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
