"""``--presence auto``: Otsu's threshold over a collection's similarities, and absent objects taken
out of the label PNGs and exports."""
from __future__ import annotations

import numpy as np
import pytest

from persam_video.errors import PersamError
from persam_video.io.masks import read_label_png, write_label_png
from persam_video.photos.collection import _drop_absent
from persam_video.photos.presence import decide_presence, otsu_threshold, presence_value


def test_otsu_splits_two_groups_between_them():
    present = [0.93, 0.95, 0.96, 0.97, 0.99]
    absent = [0.61, 0.66, 0.70, 0.72]
    threshold = otsu_threshold(present + absent)
    assert threshold == pytest.approx((0.72 + 0.93) / 2)


def test_otsu_leaves_one_group_whole():
    rng = np.random.default_rng(0)
    assert otsu_threshold(rng.normal(0.95, 0.01, 40)) is None  # the object in every photo: nothing dropped
    assert otsu_threshold([0.9]) is None and otsu_threshold([0.8, 0.8, 0.8]) is None


def test_presence_values():
    assert presence_value("auto") == "auto" and presence_value("0.99") == 0.99 and presence_value(0.5) == 0.5
    for bad in ("1.5", "often", -0.1):
        with pytest.raises(PersamError):
            presence_value(bad)


def test_decide_presence_turns_the_low_group_absent_per_object(tmp_path):
    rows = [{"photo": f"p{i}.jpg", "object": k, "found": 1, "score": "0.9000", "similarity": f"{s:.4f}", "area": 5}
            for i, (s1, s2) in enumerate([(0.95, 0.5), (0.96, 0.9), (0.6, 0.91), (0.97, 0.52)])
            for k, s in ((1, s1), (2, s2))]
    rows.insert(0, {"photo": "broken.jpg", "error": "cannot read the photo broken.jpg"})
    decided = decide_presence(rows)
    assert decided[0] == rows[0]
    found = {(r["photo"], r["object"]): r["found"] for r in decided[1:]}
    assert found == {("p0.jpg", 1): 1, ("p0.jpg", 2): 0, ("p1.jpg", 1): 1, ("p1.jpg", 2): 1,
                     ("p2.jpg", 1): 0, ("p2.jpg", 2): 1, ("p3.jpg", 1): 1, ("p3.jpg", 2): 0}
    assert {r["presence_threshold"] for r in decided[1:] if r["object"] == 2} == {"0.7100"}
    assert all(r["area"] == 0 and r["score"] == "0.0000" for r in decided[1:] if r["found"] == 0)

    labels = np.zeros((6, 6), np.uint8)
    labels[:3], labels[3:] = 1, 2
    write_label_png(tmp_path / "p0.png", labels)
    (tmp_path / "matte").mkdir()
    for k in (1, 2):
        (tmp_path / "matte" / f"p0_{k}.png").write_bytes(b"x")
    _drop_absent([r for r in decided if r.get("photo") == "p0.jpg"], {"p0.jpg": "p0"}, tmp_path, "matte")
    assert set(np.unique(read_label_png(tmp_path / "p0.png"))) == {0, 1}
    assert (tmp_path / "matte" / "p0_1.png").exists() and not (tmp_path / "matte" / "p0_2.png").exists()
