"""COCO and YouTube-VIS files read back with pycocotools give the masks they were made from."""
from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from persam_video.errors import PersamError
from persam_video.export.coco import CocoFile, YouTubeVisFile, decode_rle


def _labels(seed: int, shape=(37, 53)) -> np.ndarray:
    """A label map with objects 1 and 3 as random blobs (object 2 never present)."""
    rng = np.random.default_rng(seed)
    labels = np.zeros(shape, np.uint8)
    labels[rng.random(shape) > 0.7] = 1
    y, x = rng.integers(0, shape[0] - 10), rng.integers(0, shape[1] - 12)
    labels[y:y + 10, x:x + 12] = 3
    return labels


def test_coco_file_round_trips_through_pycocotools(tmp_path):
    frames = {f"img{i}.jpg": _labels(i) for i in range(3)}
    coco = CocoFile(object_ids=[1, 2, 3], names={1: "cat"})
    for name, labels in frames.items():
        coco.add(name, labels)
    path = coco.write(tmp_path / "masks.json")
    api = COCO(str(path))
    assert sorted(api.getCatIds()) == [1, 2, 3]
    assert api.loadCats(1)[0]["name"] == "cat" and api.loadCats(2)[0]["name"] == "object 2"
    for image in api.loadImgs(api.getImgIds()):
        labels = frames[image["file_name"]]
        anns = api.loadAnns(api.getAnnIds(imgIds=image["id"]))
        assert sorted(a["category_id"] for a in anns) == [1, 3]  # an absent object gets no annotation
        for ann in anns:
            mask = api.annToMask(ann).astype(bool)
            np.testing.assert_array_equal(mask, labels == ann["category_id"])
            assert ann["area"] == int(mask.sum())
            x, y, w, h = ann["bbox"]
            assert mask[int(y):int(y + h), int(x):int(x + w)].sum() == mask.sum()


def test_youtube_vis_file_keeps_one_rle_per_frame_and_none_where_absent(tmp_path):
    frames = [_labels(i) for i in range(4)]
    frames[2][frames[2] == 3] = 0
    vis = YouTubeVisFile(object_ids=[1, 3])
    for i, labels in enumerate(frames):
        vis.add(f"{i:05d}.jpg", labels)
    document = json.loads(vis.write(tmp_path / "clip.json").read_text())
    assert document["videos"][0]["length"] == 4
    tracks = {a["category_id"]: a for a in document["annotations"]}
    assert tracks[3]["segmentations"][2] is None and tracks[3]["areas"][2] is None
    for object_id, track in tracks.items():
        for labels, rle in zip(frames, track["segmentations"]):
            if rle is not None:
                np.testing.assert_array_equal(decode_rle(rle), labels == object_id)


def test_frames_of_another_size_and_bad_ids_are_one_line_errors(tmp_path):
    vis = YouTubeVisFile(object_ids=[1])
    vis.add("a", np.zeros((4, 5), np.uint8))
    with pytest.raises(PersamError, match="5x4"):
        vis.add("b", np.zeros((5, 5), np.uint8))
    with pytest.raises(PersamError, match="between 1 and 254"):
        CocoFile(object_ids=[0]).document()
    with pytest.raises(PersamError, match="does not exist"):
        CocoFile(object_ids=[1]).write(tmp_path / "missing" / "x.json")
