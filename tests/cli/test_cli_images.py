"""`persam-video images`: label PNGs at each photo's size, the summary, exports, EXIF, one-line errors."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image

from persam_video.demo_clip import make_clip
from persam_video.io.masks import read_label_png, write_label_png

SIZE = (90, 120)


@pytest.fixture(scope="module")
def album(tmp_path_factory):
    """A reference (photo 0 of a clip, its two objects) and an album of three photos of two sizes."""
    root = tmp_path_factory.mktemp("album")
    clip = make_clip(seed=8, n_frames=4, size=SIZE, n_objects=2)
    Image.fromarray(clip.frames[0]).save(root / "ref.png")
    write_label_png(root / "ref_mask.png", clip.labels[0])
    (root / "photos" / "more").mkdir(parents=True)
    Image.fromarray(clip.frames[1]).save(root / "photos" / "a.jpg", quality=95)
    Image.fromarray(clip.frames[2]).save(root / "photos" / "more" / "b.png")
    big = make_clip(seed=9, n_frames=1, size=(100, 150), n_objects=1).frames[0]
    Image.fromarray(big).save(root / "photos" / "c.webp", lossless=True)
    return root


def model_args(checkpoint):
    return ["--checkpoint", checkpoint, "--model-type", "small", "--device", "cpu", "--quiet"]


def images(root, out, checkpoint, *extra):
    return ["images", "--ref-image", root / "ref.png", "--ref-mask", root / "ref_mask.png", *extra, "--out", out,
            *model_args(checkpoint)]


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_photo_gets_a_label_png_at_its_size_and_summary_rows(album, small_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(images(album, out, small_checkpoint, album / "photos", "--export", "white"), capsys)
    assert code == 0, err
    assert read_label_png(out / "a.png").shape == SIZE and read_label_png(out / "b.png").shape == SIZE
    assert read_label_png(out / "c.png").shape == (100, 150)
    assert set(np.unique(read_label_png(out / "a.png"))) <= {0, 1, 2}
    rows = read_rows(out / "summary.csv")
    assert [(r["photo"].rsplit("/", 1)[-1], r["object"]) for r in rows] == [
        ("a.jpg", "1"), ("a.jpg", "2"), ("c.webp", "1"), ("c.webp", "2"), ("b.png", "1"), ("b.png", "2")]
    for row in rows:
        labels = read_label_png(out / f"{row['photo'].rsplit('/', 1)[-1].rsplit('.', 1)[0]}.png")
        assert int(row["area"]) == int((labels == int(row["object"])).sum())
        exported = out / "white" / f"{row['photo'].rsplit('/', 1)[-1].rsplit('.', 1)[0]}_{row['object']}.png"
        assert exported.exists() == (row["found"] == "1")


def test_two_workers_write_the_same_files_as_one(album, small_checkpoint, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, workers in ((one, "1"), (two, "2")):
        code, _, err = run_cli(images(album, out, small_checkpoint, album / "photos", "--method", "persam-f",
                                      "--fit-iterations", "20", "--export", "matte", "--workers", workers), capsys)
        assert code == 0, err
    files = sorted(p.relative_to(one) for p in one.rglob("*.png"))
    assert len(files) >= 3 and files == sorted(p.relative_to(two) for p in two.rglob("*.png"))
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(one / "summary.csv")]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(two / "summary.csv")] == strip


def test_an_unreadable_photo_is_reported_and_the_others_go_on(album, small_checkpoint, tmp_path, capsys):
    broken = tmp_path / "in" / "broken.jpg"
    broken.parent.mkdir()
    broken.write_bytes(b"\xff\xd8\xff not really a jpeg")
    out = tmp_path / "out"
    code, _, err = run_cli(images(album, out, small_checkpoint, broken, album / "photos" / "a.jpg"), capsys)
    assert code == 1 and "1 photo(s) could not be read" in err and "Traceback" not in err
    rows = read_rows(out / "summary.csv")
    assert rows[0]["error"].startswith("cannot read the photo") and (out / "a.png").exists()


def test_an_exif_rotated_photo_is_segmented_as_it_is_shown(album, small_checkpoint, tmp_path, capsys):
    upright = np.asarray(Image.open(album / "photos" / "more" / "b.png").convert("RGB"))
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # what a phone stores
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to show
    stored.save(tmp_path / "phone.png", exif=exif)
    Image.fromarray(upright).save(tmp_path / "plain.png")
    out = tmp_path / "out"
    code, _, err = run_cli(images(album, out, small_checkpoint, tmp_path / "phone.png", tmp_path / "plain.png"),
                           capsys)
    assert code == 0, err
    assert read_label_png(out / "phone.png").shape == SIZE
    assert np.array_equal(read_label_png(out / "phone.png"), read_label_png(out / "plain.png"))


@pytest.mark.parametrize("breakage, needle", [
    ("size", "reference mask"),
    ("empty", "has no object"),
    ("no_photos", "holds no photo"),
    ("out_is_file", "cannot write to output folder"),
    ("pairs", "give them in pairs"),
    ("same_stem", "two photos would write a.png"),
    ("workers", "--workers must be at least 1"),
])
def test_bad_input_is_one_line(album, small_checkpoint, tmp_path, capsys, breakage, needle):
    photos = [album / "photos" / "a.jpg"]
    ref_mask = album / "ref_mask.png"
    out = tmp_path / "out"
    extra = []
    if breakage == "size":
        ref_mask = tmp_path / "small.png"
        write_label_png(ref_mask, np.ones((10, 10), np.uint8))
    elif breakage == "empty":
        ref_mask = tmp_path / "empty.png"
        write_label_png(ref_mask, np.zeros(SIZE, np.uint8))
    elif breakage == "no_photos":
        (tmp_path / "nothing").mkdir()
        photos = [tmp_path / "nothing"]
    elif breakage == "out_is_file":
        out.write_text("a file")
    elif breakage == "pairs":
        extra = ["--ref-image", album / "ref.png"]
    elif breakage == "workers":
        extra = ["--workers", "0"]
    else:
        (tmp_path / "x").mkdir()
        Image.open(album / "photos" / "a.jpg").save(tmp_path / "x" / "a.png")
        photos.append(tmp_path / "x" / "a.png")
    args = ["images", "--ref-image", album / "ref.png", "--ref-mask", ref_mask, *extra, *photos, "--out", out,
            *model_args(small_checkpoint)]
    code, _, err = run_cli(args, capsys)
    assert_one_line_error(code, err, needle)
    assert breakage == "out_is_file" or not (out / "summary.csv").exists()


def test_a_killed_run_goes_on_where_it_was_with_the_same_files(album, small_checkpoint, tmp_path, capsys):
    import json
    import signal
    import subprocess
    import sys
    import time

    from conftest import REPO

    folder = tmp_path / "many"
    folder.mkdir()
    frames = make_clip(seed=12, n_frames=12, size=SIZE, n_objects=2).frames
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"p{i:02d}.png")
    whole, resumed = tmp_path / "whole", tmp_path / "resumed"
    assert run_cli(images(album, whole, small_checkpoint, folder), capsys)[0] == 0
    command = [sys.executable, "-m", "persam_video", *map(str, images(album, resumed, small_checkpoint, folder))]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    progress = resumed / ".persam-images.json"
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and process.poll() is None:
            try:
                if len(json.loads(progress.read_text())["done"]) >= 3:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    before = len(json.loads(progress.read_text())["done"])
    assert 3 <= before < len(frames), before
    stamps = {p: p.stat().st_mtime_ns for p in resumed.glob("p*.png")}
    code, _, err = run_cli(images(album, resumed, small_checkpoint, folder), capsys)
    assert code == 0, err
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p.stem in
               {name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name in json.loads(progress.read_text())["done"]})
    written = {p.name: p.read_bytes() for p in resumed.glob("*.png")}
    assert {p.name: p.read_bytes() for p in whole.glob("*.png")} == written
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(whole / "summary.csv")]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in read_rows(resumed / "summary.csv")] == strip
    assert not list(resumed.glob(".*.tmp*"))


def test_an_album_as_it_comes_heic_avif_bad_photos_and_other_files(album, small_checkpoint, tmp_path, capsys):
    """HEIC and AVIF photos are segmented; a 0-byte HEIC, a truncated HEIC, a 1x1 photo and one over
    --max-pixels are one line each in the summary and the others go on; a folder's other files are
    listed as skipped with the reason."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    folder = tmp_path / "phone"
    folder.mkdir()
    frame = np.asarray(Image.open(album / "photos" / "a.jpg").convert("RGB"))
    Image.fromarray(frame).save(folder / "a.heic", quality=95)
    Image.fromarray(frame).save(folder / "b.avif", quality=95)
    (folder / "empty.heic").write_bytes(b"")
    (folder / "cut.heic").write_bytes((folder / "a.heic").read_bytes()[:200])
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(folder / "dot.png")
    Image.fromarray(np.zeros((200, 200, 3), np.uint8)).save(folder / "big.png")
    (folder / "clip.mov").write_bytes(b"not a photo")
    (folder / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    code, _, err = run_cli(images(album, out, small_checkpoint, folder, "--max-pixels", "30000"), capsys)
    assert code == 1 and "4 photo(s) could not be read" in err and "Traceback" not in err
    rows = read_rows(out / "summary.csv")
    by_name = {}
    for row in rows:
        by_name.setdefault(row["photo"].rsplit("/", 1)[-1], []).append(row)
    assert [r["skipped"] for r in by_name["clip.mov"]] == ["not a photo (.mov; photos are .jpg .jpeg .png .webp "
                                                           ".bmp .tif .tiff .gif .avif .heic .heif)"]
    assert by_name["notes.txt"][0]["skipped"].startswith("not a photo (.txt;")
    assert by_name["empty.heic"][0]["error"].startswith("cannot read the photo")
    assert by_name["cut.heic"][0]["error"].startswith("cannot read the photo")
    assert "too small: 1x1 pixels" in by_name["dot.png"][0]["error"]
    assert by_name["big.png"][0]["error"].endswith("too large: 40000 pixels (200x200), the limit is 30000, "
                                                   "set by --max-pixels")
    assert all("\n" not in r["error"] for r in rows)
    for name in ("a", "b"):
        assert read_label_png(out / f"{name}.png").shape == SIZE
        assert [r["error"] for r in by_name[f"{name}.heic" if name == "a" else f"{name}.avif"]] == ["", ""]
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]  # nothing for the failed ones


def test_coco_file_reads_back_with_pycocotools_as_the_label_pngs(album, small_checkpoint, tmp_path, capsys):
    from pycocotools.coco import COCO

    out, coco_path = tmp_path / "out", tmp_path / "masks.json"
    code, _, err = run_cli(images(album, out, small_checkpoint, album / "photos", "--coco", coco_path), capsys)
    assert code == 0, err
    coco = COCO(str(coco_path))
    assert sorted(coco.getCatIds()) == [1, 2]
    images_by_file = {info["file_name"].rsplit("/", 1)[-1]: info for info in coco.dataset["images"]}
    assert sorted(images_by_file) == ["a.jpg", "b.png", "c.webp"]
    annotated = 0
    for file_name, info in images_by_file.items():
        labels = read_label_png(out / f"{file_name.rsplit('.', 1)[0]}.png")
        assert (info["height"], info["width"]) == labels.shape
        for k in (1, 2):
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[info["id"]], catIds=[k]))
            expected = labels == k
            assert len(anns) == int(expected.any())
            if anns:
                annotated += 1
                assert np.array_equal(coco.annToMask(anns[0]).astype(bool), expected)
    assert annotated >= 3


def test_presence_auto_drops_the_photos_of_the_other_group_and_says_its_threshold(small_checkpoint, tmp_path,
                                                                                  capsys):
    """A reference object, 3 photos with it and 3 of another clip without it: the summary gives each
    row the object's threshold, and the photos found absent have no pixel of it in their PNG."""
    clip = make_clip(seed=21, n_frames=4, size=SIZE, n_objects=1)
    other = make_clip(seed=33, n_frames=3, size=SIZE, n_objects=1)
    Image.fromarray(clip.frames[0]).save(tmp_path / "ref.png")
    write_label_png(tmp_path / "ref_mask.png", clip.labels[0])
    folder = tmp_path / "album"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(clip.frames[i + 1]).save(folder / f"with{i}.png")
        Image.fromarray(other.frames[i]).save(folder / f"without{i}.png")
    out = tmp_path / "out"
    code, _, err = run_cli(images(tmp_path, out, small_checkpoint, folder, "--presence", "auto", "--export",
                                  "matte"), capsys)
    assert code == 0, err
    rows = read_rows(out / "summary.csv")
    similarities = [float(r["similarity"]) for r in rows]
    assert len({r["presence_threshold"] for r in rows}) == 1
    threshold = rows[0]["presence_threshold"]
    from persam_video.photos.presence import otsu_threshold

    expected = otsu_threshold(similarities)
    assert threshold == ("" if expected is None else f"{expected:.4f}")
    for row in rows:
        name = row["photo"].rsplit("/", 1)[-1].rsplit(".", 1)[0]
        labels = read_label_png(out / f"{name}.png")
        assert int(row["area"]) == int((labels == 1).sum())
        assert (out / "matte" / f"{name}_1.png").exists() == (row["found"] == "1")
        if expected is not None and float(row["similarity"]) < expected:
            assert row["found"] == "0" and not (labels == 1).any()
    code, _, err = run_cli(images(tmp_path, tmp_path / "bad", small_checkpoint, folder, "--presence", "sometimes"),
                           capsys)
    assert_one_line_error(code, err, "presence must be a ratio in [0, 1] or auto")
