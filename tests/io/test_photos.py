"""Reading photos as albums hold them: HEIC/HEIF and AVIF, the files that are not photos, photos too
small or too large, broken files: each a one-line PersamError, never a traceback or a memory blow-up."""
from __future__ import annotations

import builtins

import numpy as np
import pytest
from PIL import Image

from persam_video.errors import PersamError
from persam_video.io.photos import list_photos, read_photo


def picture(height=48, width=64):
    """A smooth picture (codecs keep it close), distinct left and right halves."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // width, y * 255 // height, np.where(x < width // 2, 40, 200)], -1).astype(np.uint8)


def save_heif(path, array):
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.fromarray(array).save(path, quality=95)


@pytest.mark.parametrize("suffix", [".heic", ".heif", ".avif"])
def test_heic_heif_and_avif_photos_are_read(tmp_path, suffix):
    array = picture()
    path = tmp_path / f"phone{suffix}"
    if suffix == ".avif":
        Image.fromarray(array).save(path, quality=95)
    else:
        save_heif(path, array)
    read = read_photo(path)
    assert read.shape == array.shape and read.dtype == np.uint8
    assert np.abs(read.astype(int) - array).mean() < 6  # lossy, but the same picture


def test_a_heic_photo_keeps_its_exif_orientation(tmp_path):
    array = picture()
    stored = np.ascontiguousarray(np.rot90(array, 1))  # what a phone stores; orientation 6 shows it upright
    exif = Image.Exif()
    exif[0x0112] = 6
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.fromarray(stored).save(tmp_path / "turned.heic", quality=95, exif=exif.tobytes())
    read = read_photo(tmp_path / "turned.heic")
    assert read.shape == array.shape
    assert np.abs(read.astype(int) - array).mean() < 6


def test_without_pillow_heif_a_heic_photo_names_the_extra(tmp_path, monkeypatch):
    save_heif(tmp_path / "a.heic", picture())
    real_import = builtins.__import__

    def no_heif(name, *args, **kwargs):
        if name == "pillow_heif":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_heif)
    with pytest.raises(PersamError, match=r"pip install 'persam-video\[heif\]'"):
        read_photo(tmp_path / "a.heic")
    Image.fromarray(picture()).save(tmp_path / "b.png")
    assert read_photo(tmp_path / "b.png").shape == (48, 64, 3)  # other photos need no plugin


@pytest.mark.parametrize("breakage, needle", [
    ("empty", "cannot read the photo"),
    ("truncated", "cannot read the photo"),
    ("one_pixel", "too small: 1x1 pixels"),
])
def test_broken_and_tiny_photos_are_one_line(tmp_path, breakage, needle):
    path = tmp_path / "p.heic"
    if breakage == "empty":
        path.write_bytes(b"")
    elif breakage == "truncated":
        save_heif(tmp_path / "whole.heic", picture())
        data = (tmp_path / "whole.heic").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path = tmp_path / "p.png"
        Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(path)
    with pytest.raises(PersamError, match=needle) as caught:
        read_photo(path)
    assert "\n" not in str(caught.value)


def test_a_photo_over_the_limit_is_refused_from_its_header_before_decoding(tmp_path, monkeypatch):
    """200 MP (20000 x 10000): refused by its size alone; Pillow's decoder is never reached."""
    path = tmp_path / "huge.png"
    Image.new("L", (20000, 10000)).save(path, optimize=False, compress_level=1)
    decoded = []
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self) or None)
    with pytest.raises(PersamError) as caught:
        read_photo(path)
    assert str(caught.value) == (f"the photo {path} is too large: 200000000 pixels (20000x10000), the limit is "
                                 "120000000, set by --max-pixels")
    assert not decoded
    monkeypatch.undo()
    with pytest.raises(PersamError, match="the limit is 1000, set by --max-pixels"):
        read_photo(tmp_path / "huge.png", max_pixels=1000)


def test_a_folder_lists_its_photos_and_the_files_it_skips_with_the_reason(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "b.HEIC", "sub/c.avif", "sub/d.png"):
        (tmp_path / name).write_bytes(b"x")
    for name in ("notes.txt", "clip.mov", "sub/README", ".DS_Store", "sub/.hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    found = list_photos([tmp_path])
    assert [p.relative_to(tmp_path).as_posix() for p in found.photos] == ["a.jpg", "b.HEIC", "sub/c.avif",
                                                                          "sub/d.png"]
    skipped = {p.relative_to(tmp_path).as_posix(): reason for p, reason in found.skipped}
    assert set(skipped) == {"notes.txt", "clip.mov", "sub/README", ".DS_Store", "sub/.hidden.jpg"}
    assert skipped["clip.mov"].startswith("not a photo (.mov;") and skipped["sub/README"] == \
        "not a photo (no file extension)" and skipped[".DS_Store"] == "hidden file"
