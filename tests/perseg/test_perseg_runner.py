"""`perseg run`: every photo of every object (the reference's too), markers, reruns, --eval."""
from __future__ import annotations

import numpy as np
from conftest import assert_one_line_error, run_cli
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.io.masks import read_label_png, write_label_png

SIZE = (80, 110)


def write_perseg(root):
    for i, name in enumerate(("bear", "mug")):
        clip = make_clip(seed=30 + i, n_frames=3, size=SIZE, n_objects=1)
        (root / "Images" / name).mkdir(parents=True)
        (root / "Annotations" / name).mkdir(parents=True)
        for t in range(3):
            Image.fromarray(clip.frames[t]).save(root / "Images" / name / f"{t:02d}.jpg", quality=95)
            write_label_png(root / "Annotations" / name / f"{t:02d}.png", clip.labels[t])


def args(root, out, checkpoint, *extra):
    return ["perseg", "run", "--root", root, "--out", out, "--checkpoint", checkpoint, "--model-type", "small",
            "--device", "cpu", "--quiet", *extra]


def test_every_photo_is_written_then_scored_and_a_rerun_skips(small_checkpoint, tmp_path, capsys):
    write_perseg(tmp_path / "PerSeg")
    out = tmp_path / "out"
    code, stdout, err = run_cli(args(tmp_path / "PerSeg", out, small_checkpoint, "--eval", "--coco",
                                     tmp_path / "perseg.json"), capsys)
    assert code == 0, err
    from pycocotools.coco import COCO

    coco = COCO(str(tmp_path / "perseg.json"))
    assert {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())} == {1: "bear", 2: "mug"}
    for info in coco.dataset["images"]:
        name, photo = info["file_name"].split("/")
        labels = read_label_png(out / name / photo.replace(".jpg", ".png")) > 0
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]]))
        assert [a["category_id"] for a in anns] == ([1 + ("bear", "mug").index(name)] if labels.any() else [])
        assert not anns or np.array_equal(coco.annToMask(anns[0]).astype(bool), labels)
    assert len(coco.dataset["images"]) == 6
    for name in ("bear", "mug"):
        written = sorted(p.name for p in (out / name).glob("*.png"))
        assert written == ["00.png", "01.png", "02.png"]
        assert read_label_png(out / name / "01.png").shape == SIZE
        assert set(np.unique(read_label_png(out / name / "01.png"))) <= {0, 1}
        assert (out / name / ".done").is_file()
    assert "mIoU:" in stdout and "bear" in stdout and "mug" in stdout
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.png")}
    code, _, err = run_cli(args(tmp_path / "PerSeg", out, small_checkpoint), capsys)
    assert code == 0 and {p: p.stat().st_mtime_ns for p in out.rglob("*.png")} == stamps
    code, _, err = run_cli(args(tmp_path / "PerSeg", out, small_checkpoint, "--presence", "0.5", "--objects", "mug"),
                           capsys)
    assert code == 0
    assert (out / "mug" / "01.png").stat().st_mtime_ns != stamps[out / "mug" / "01.png"]  # other settings: redone
    assert (out / "bear" / "01.png").stat().st_mtime_ns == stamps[out / "bear" / "01.png"]


def test_a_missing_reference_is_one_line(small_checkpoint, tmp_path, capsys):
    write_perseg(tmp_path / "PerSeg")
    (tmp_path / "PerSeg" / "Annotations" / "mug" / "00.png").unlink()
    code, _, err = run_cli(args(tmp_path / "PerSeg", tmp_path / "out", small_checkpoint, "--objects", "mug"), capsys)
    assert_one_line_error(code, err, "object mug has no reference mask")
