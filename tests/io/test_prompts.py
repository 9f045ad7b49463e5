"""Prompts as data: the checks, and the JSON file (round trip, every malformed entry named)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from persam_video.errors import PersamError
from persam_video.io.masks import write_label_png
from persam_video.io.prompts import (
    Prompt,
    PromptSet,
    Reference,
    check_prompt,
    check_prompt_set,
    check_reference,
    load_prompts,
    references_from_files,
    save_prompts,
)

SIZE = (40, 60)  # height, width


def _mask(y0=10, y1=20, x0=10, x1=30):
    mask = np.zeros(SIZE, bool)
    mask[y0:y1, x0:x1] = True
    return mask


def test_round_trip_keeps_every_prompt_and_reference(tmp_path):
    image = np.random.default_rng(0).integers(0, 255, SIZE + (3,), dtype=np.uint8)
    original = PromptSet(
        [Prompt(0, 1, np.array([[12.5, 14], [40, 30]], np.float32), np.array([1, 0])),
         Prompt(3, 2, box=np.array([5, 6, 25, 30], np.float32)),
         Prompt(3, 1, np.array([[15, 15]], np.float32), np.array([1]), np.array([1, 2, 50, 35], np.float32)),
         Prompt(7, 1, mask=_mask())],
        [Reference(4, image, _mask(5, 30, 5, 50))])
    path = tmp_path / "sub" / "p.json"
    path.parent.mkdir()
    save_prompts(original, path)
    again = load_prompts(path)
    assert [(p.frame, p.obj_id) for p in again.prompts] == [(0, 1), (3, 2), (3, 1), (7, 1)]
    for a, b in zip(original.prompts, again.prompts):
        for name in ("points", "labels", "box", "mask"):
            x, y = getattr(a, name), getattr(b, name)
            assert (x is None) == (y is None), name
            if x is not None:
                assert np.array_equal(np.asarray(x, float), np.asarray(y, float)), name
    (ref,) = again.references
    assert ref.obj_id == 4 and np.array_equal(ref.image, image) and np.array_equal(ref.mask,
                                                                                   original.references[0].mask)
    data = json.loads(path.read_text())
    assert data["version"] == 1 and data["prompts"][3]["mask"].startswith("p_files/")
    assert not list(path.parent.rglob("*.tmp*"))


def _write(tmp_path, data) -> str:
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


@pytest.mark.parametrize("entry, needles", [
    ({"frame": 0, "object": 1, "points": [[1, 2, 3]]}, ["prompts[1]", "'points'", "[x, y]"]),
    ({"frame": 0, "object": 1, "points": [[1, 2]], "labels": [1, 2]}, ["prompts[1]", "'labels'"]),
    ({"frame": 0, "object": 1, "box": [1, 2, 3]}, ["prompts[1]", "'box'"]),
    ({"frame": "a", "object": 1, "box": [1, 2, 3, 4]}, ["prompts[1]", "'frame'"]),
    ({"frame": 0, "object": 255, "box": [1, 2, 3, 4]}, ["prompts[1]", "'object'", "1 to 254"]),
    ({"frame": 0, "object": 0, "box": [1, 2, 3, 4]}, ["prompts[1]", "'object'"]),
    ({"frame": 0, "object": 1}, ["prompts[1]", "needs 'points', 'box' or 'mask'"]),
    ({"frame": 0, "object": 1, "mask": "nope.png"}, ["prompts[1]", "'mask'", "not found"]),
    ({"frame": 0, "object": 1, "box": [1, 2, 3, 4], "colour": 3}, ["prompts[1]", "unknown field 'colour'"]),
    ({"frame": 0, "object": 1, "box": [5, 2, 3, 4]}, ["x1 > x0"]),
    ({"frame": 0, "object": 1, "points": [[1, 2]], "labels": [0]}, ["only negative points"]),
])
def test_malformed_entry_names_the_entry_and_the_field(tmp_path, entry, needles):
    good = {"frame": 0, "object": 2, "box": [1, 2, 30, 20]}
    path = _write(tmp_path, {"version": 1, "prompts": [good, entry]})
    with pytest.raises(PersamError) as info:
        load_prompts(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    for needle in needles:
        assert needle in message, message


def test_malformed_files(tmp_path):
    for text, needle in [("{not json", "not valid JSON: line 1"), ("[]", "top level"),
                         (json.dumps({"version": 2, "prompts": []}), "'version' must be 1"),
                         (json.dumps({"version": 1, "prompts": {}}), "'prompts' must be a list"),
                         (json.dumps({"version": 1, "prompts": []}), "no prompt")]:
        with pytest.raises(PersamError, match=needle):
            load_prompts(_write(tmp_path, text))
    with pytest.raises(PersamError, match="not found"):
        load_prompts(tmp_path / "absent.json")


def test_reference_entries(tmp_path):
    Image.fromarray(np.zeros(SIZE + (3,), np.uint8)).save(tmp_path / "ref.png")
    write_label_png(tmp_path / "small.png", np.ones((10, 10), np.uint8))
    write_label_png(tmp_path / "other.png", _mask().astype(np.uint8) * 3)
    for mask, needle in [("small.png", "is 10x10 but the image is 60x40"), ("other.png", "no pixel of object 2")]:
        path = _write(tmp_path, {"version": 1, "references": [{"object": 2, "image": "ref.png", "mask": mask}]})
        with pytest.raises(PersamError, match=needle) as info:
            load_prompts(path)
        assert "references[0], field 'mask'" in str(info.value)


def test_checks_against_the_video():
    ok = Prompt(2, 1, np.array([[59, 39]], np.float32), np.array([1]))
    check_prompt(ok, SIZE, 3)
    for prompt, needle in [
        (Prompt(3, 1, np.array([[5, 5]], np.float32)), "frame 3 is outside the video, which has 3 frames"),
        (Prompt(0, 1, np.array([[60, 5]], np.float32)), r"point \(60, 5\) of object 1 on frame 0 is outside the 60x40"),
        (Prompt(0, 1, box=np.array([0, 0, 61, 10], np.float32)), "outside the 60x40 frame"),
        (Prompt(0, 1, box=np.array([10, 0, 10, 10], np.float32)), "x1 > x0"),
        (Prompt(0, 1, mask=np.zeros(SIZE, bool)), "empty"),
        (Prompt(0, 1, mask=np.ones((5, 5), bool)), "5x5 but the frames are 60x40"),
        (Prompt(0, 0, box=np.array([0, 0, 5, 5], np.float32)), "1 to 254"),
        (Prompt(0, 1), "needs points, a box or a mask"),
    ]:
        with pytest.raises(PersamError, match=needle):
            check_prompt(prompt, SIZE, 3)
    # negative points with a box are fine: the box says where the object is
    check_prompt(Prompt(0, 1, np.array([[5, 5]], np.float32), np.array([0]), np.array([0, 0, 20, 20], np.float32)),
                 SIZE, 3)
    both = PromptSet([Prompt(0, 1, mask=_mask()), Prompt(0, 1, np.array([[5, 5]], np.float32))])
    with pytest.raises(PersamError, match="object 1 on frame 0 has both a mask and points"):
        check_prompt_set(both, SIZE, 3)


def test_reference_checks():
    image = np.zeros(SIZE + (3,), np.uint8)
    check_reference(Reference(1, image, _mask()))
    with pytest.raises(PersamError, match="is 5x5 but its image is 60x40"):
        check_reference(Reference(1, image, np.ones((5, 5), bool)))
    with pytest.raises(PersamError, match="empty"):
        check_reference(Reference(1, image, np.zeros(SIZE, bool)))


def test_references_from_files_one_per_object_sizes_checked(tmp_path):
    image = tmp_path / "ref.png"
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(image)
    labels = np.zeros((20, 30), np.uint8)
    labels[2:6, 3:9], labels[10:15, 20:28] = 4, 9
    write_label_png(tmp_path / "two.png", labels)
    refs = references_from_files(image, tmp_path / "two.png")
    assert [r.obj_id for r in refs] == [4, 9]
    assert refs[1].mask.sum() == 5 * 8 and refs[0].image.shape == (20, 30, 3)
    write_label_png(tmp_path / "small.png", labels[:10])
    with pytest.raises(PersamError, match=r"--ref-mask .*small.png is 30x10 but its --ref-image .*ref.png is 30x20"):
        references_from_files(image, tmp_path / "small.png", "--ref-mask", "--ref-image")
    write_label_png(tmp_path / "empty.png", np.zeros((20, 30), np.uint8))
    with pytest.raises(PersamError, match="reference mask .*empty.png has no object"):
        references_from_files(image, tmp_path / "empty.png")
