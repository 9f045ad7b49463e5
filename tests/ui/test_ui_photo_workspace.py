"""The photo page's state without a browser: several objects on one reference, undo of clicks, the
run's progress hook, the fast switch's options, the zip's label PNGs."""
from __future__ import annotations

import csv
import io
import threading
import zipfile

import numpy as np
import pytest
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.ui.object_prompts import colour
from persam_video.ui.photos import PhotoWorkspace, UiError, run_options

SIZE = (120, 160)


def png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def centre(mask):
    ys, xs = np.nonzero(mask)
    i = int(np.argmin((ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2))
    return float(xs[i]), float(ys[i])


@pytest.fixture(scope="module")
def clip():
    return make_clip(seed=41, n_frames=3, size=SIZE, n_objects=2)


def test_two_objects_undo_run_and_zip(small_model, clip):
    workspace = PhotoWorkspace(small_model, threading.Lock())
    workspace.set_reference(png(clip.frames[0]), "ref.png")
    with pytest.raises(UiError, match="no click to undo"):
        workspace.undo()
    workspace.click_reference(*centre(clip.labels[0] == 1), True, 1)
    first = workspace.reference.masks[1].copy()
    assert workspace.add_object() == 2
    with pytest.raises(UiError, match="no object 3"):
        workspace.click_reference(5, 5, True, 3)
    workspace.click_reference(*centre(clip.labels[0] == 2), True, 2)
    workspace.click_reference(2.0, 2.0, False, 1)  # a negative click on object 1, then undone
    state = workspace.describe()
    assert [(o["id"], o["clicks"], o["masked"]) for o in state["objects"]] == [(1, 2, True), (2, 1, True)]
    assert [o["colour"] for o in state["objects"]] == [colour(1), colour(2)] == ["#800000", "#008000"]
    workspace.undo()
    assert np.array_equal(workspace.reference.masks[1], first) and len(workspace.reference.points[1]) == 1
    workspace.undo()
    assert 2 not in workspace.reference.masks and workspace.describe()["objects"][1]["masked"] is False
    workspace.click_reference(*centre(clip.labels[0] == 2), True, 2)

    for i in (1, 2):
        workspace.add_photo(png(clip.frames[i]), f"p{i}.png")
    seen = []
    report = workspace.fit_progress

    def watched(obj_id, fraction):
        report(obj_id, fraction)
        seen.append(workspace.progress)

    workspace.fit_progress = watched  # the real fit's callback, as the page polls it
    workspace.run("persam-f", fast=True)
    assert {"fitting object 1: 100 %", "fitting object 2: 100 %"} <= set(seen)
    assert any(t.startswith("fitting object 1: ") and not t.endswith(" 100 %") for t in seen)
    assert workspace.progress == "" and workspace.describe()["fast"] is True
    photos = workspace.describe()["photos"]
    assert [[o["id"] for o in p["objects"]] for p in photos] == [[1, 2], [1, 2]]

    workspace.correct(0, *centre(clip.labels[1] == 2), True, 2)
    corrected = workspace.describe()["photos"][0]["objects"]
    assert corrected[1] == {"id": 2, "found": True, "score": 1.0, "corrected": True} and not corrected[0]["corrected"]
    workspace.undo()  # the correction taken back: the run's result again
    assert not workspace.describe()["photos"][0]["corrected"]

    with zipfile.ZipFile(io.BytesIO(workspace.zip())) as archive:
        labels = np.asarray(Image.open(io.BytesIO(archive.read("masks/000_p1.png"))))
        rows = list(csv.DictReader(io.StringIO(archive.read("summary.csv").decode())))
    assert labels.shape == SIZE and set(np.unique(labels)) <= {0, 1, 2}
    assert [(r["photo"], r["object"]) for r in rows] == [("p1.png", "1"), ("p1.png", "2"), ("p2.png", "1"),
                                                          ("p2.png", "2")]
    assert all(int(r["area"]) == int((labels == int(r["object"])).sum()) for r in rows[:2])


def test_the_fast_switch_chooses_the_fast_fit():
    assert run_options("persam-f", True).fit_mode == "fast"
    assert run_options("persam-f", False).fit_mode == "exact" and run_options("persam", False).method == "persam"


def test_the_photo_page_runs_on_sam2(sam2_tiny_256, clip):
    """The page's clicks and PerSAM-F run go through the same model layer on SAM 2.1 (random weights:
    the masks' shapes and the run's path are checked, not their quality)."""
    workspace = PhotoWorkspace(sam2_tiny_256, threading.Lock())
    workspace.set_reference(png(clip.frames[0]), "ref.png")
    workspace.click_reference(*centre(clip.labels[0] == 1), True, 1)
    assert workspace.reference.masks[1].shape == SIZE
    for i in (1, 2):
        workspace.add_photo(png(clip.frames[i]), f"p{i}.png")
    workspace.run("persam-f", fast=True)
    assert [[o["id"] for o in p["objects"]] for p in workspace.describe()["photos"]] == [[1], [1]]
    with zipfile.ZipFile(io.BytesIO(workspace.zip())) as archive:
        assert np.asarray(Image.open(io.BytesIO(archive.read("masks/000_p1.png")))).shape == SIZE
