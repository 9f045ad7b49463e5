import os
import threading
import time

import decord
import imageio.v3 as iio
import imageio_ffmpeg
import numpy as np
import pytest
from PIL import Image

from persam_video.errors import PersamError
from persam_video.io.frames import Frame, open_frames, prefetch

N = 12


def clip(n, h=64, w=96):
    """A textured square moving over a noise background, all in 16 colours (so gifs are exact)."""
    rng = np.random.default_rng(0)
    palette = rng.integers(0, 256, (16, 3), dtype=np.uint8)
    background = rng.integers(0, 16, (h, w))
    side = h // 4
    texture = rng.integers(0, 16, (side, side))
    for t in range(n):
        labels = background.copy()
        y, x = (3 * t) % (h - side), (5 * t) % (w - side)
        labels[y:y + side, x:x + side] = texture
        yield palette[labels]


def write_video(path, images, h=64, w=96):
    """Lossless H.264 in RGB (libx264rgb, qp 0): decord decodes it bit-exactly."""
    writer = imageio_ffmpeg.write_frames(str(path), (w, h), codec="libx264rgb", pix_fmt_out="rgb24",
                                         output_params=["-qp", "0", "-preset", "ultrafast"],
                                         macro_block_size=1, quality=None)
    writer.send(None)
    for image in images:
        writer.send(image)
    writer.close()
    return path


def write_folder(folder, images, ext=".png"):
    folder.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:05d}{ext}")
    return folder


@pytest.fixture(scope="module")
def expected():
    return np.stack(list(clip(N)))


@pytest.fixture(scope="module")
def sources(tmp_path_factory, expected):
    root = tmp_path_factory.mktemp("clips")
    iio.imwrite(root / "clip.gif", expected, loop=0, duration=40)
    return {"video": write_video(root / "clip.mp4", expected),
            "folder": write_folder(root / "frames", expected),
            "gif": root / "clip.gif"}


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "persam-frames-prefetch"]


@pytest.mark.parametrize("kind", ["video", "folder", "gif"])
def test_every_format_gives_the_same_frames(sources, expected, kind):
    source = open_frames(sources[kind])
    assert len(source) == N
    assert source.size == (64, 96)
    assert source.names() == [f"{i:05d}" for i in range(N)]
    got = list(source.frames())
    assert [f.index for f in got] == list(range(N))
    assert [f.name for f in got] == source.names()
    for frame in got:
        assert frame.image.dtype == np.uint8 and frame.image.shape == (64, 96, 3)
        np.testing.assert_array_equal(frame.image, expected[frame.index])


def test_imageio_is_the_fallback_when_decord_cannot_open(sources, expected, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("decord says no")

    monkeypatch.setattr(decord, "VideoReader", refuse)  # frames.py imports decord when it opens a video
    source = open_frames(sources["video"])
    assert type(source).__name__ == "_ImageioSource"
    assert len(source) == N
    np.testing.assert_array_equal(np.stack([f.image for f in source.frames()]), expected)


@pytest.mark.parametrize("kind", ["video", "folder", "gif"])
def test_frames_from_start_and_read_one(sources, expected, kind):
    source = open_frames(sources[kind])
    got = list(source.frames(start=5))
    assert [(f.index, f.name) for f in got] == [(i, f"{i:05d}") for i in range(5, N)]
    np.testing.assert_array_equal(got[0].image, expected[5])
    assert list(source.frames(start=N)) == []
    frame = source.read(7)
    assert (frame.index, frame.name) == (7, "00007")
    np.testing.assert_array_equal(frame.image, expected[7])
    with pytest.raises(IndexError):
        source.read(N)


def test_video_decode_error_names_the_frame_after_delivering_earlier_ones(sources, monkeypatch):
    real = imageio_ffmpeg.read_frames

    def broken_at_six(*args, **kwargs):
        stream = real(*args, **kwargs)
        yield next(stream)  # the metadata
        for index, raw in enumerate(stream):
            if index == 6:
                stream.close()
                raise RuntimeError("corrupt packet")
            yield raw

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", broken_at_six)
    got = []
    with pytest.raises(PersamError, match=r"cannot decode frame 6 \(00006\) of .*clip.mp4: corrupt packet"):
        for frame in open_frames(sources["video"]).frames():
            got.append(frame.index)
    assert got == [0, 1, 2, 3, 4, 5]


def test_a_stream_that_ends_early_is_an_error(sources, monkeypatch):
    real = imageio_ffmpeg.read_frames

    def short(*args, **kwargs):
        stream = real(*args, **kwargs)
        yield next(stream)
        for index, raw in enumerate(stream):
            if index == 4:
                stream.close()
                return
            yield raw

    monkeypatch.setattr(imageio_ffmpeg, "read_frames", short)
    with pytest.raises(PersamError, match=r"cannot decode frame 4 \(00004\).*ended after 4 of"):
        list(open_frames(sources["video"]).frames())


def rss_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_memory_stays_flat_over_a_long_video(tmp_path):
    n, h, w = 500, 240, 320
    path = write_video(tmp_path / "long.mp4", clip(n, h, w), h, w)
    whole_clip = n * h * w * 3  # 115 MB
    source = open_frames(path)
    assert source.size == (h, w) and source.read(0).index == 0  # as the pipeline does before streaming
    rss = {0: rss_bytes()}
    for count, frame in enumerate(source.frames(), 1):
        time.sleep(0.004)  # a consumer slower than the decoder, like the model (decord ran ahead here)
        if count in (50, n):
            rss[count] = rss_bytes()
    assert frame.index == n - 1
    assert rss[50] - rss[0] < whole_clip / 2, f"RSS grew {(rss[50] - rss[0]) / 1e6:.1f} MB over 50 frames"
    assert rss[n] - rss[50] < whole_clip / 10, f"RSS grew {(rss[n] - rss[50]) / 1e6:.1f} MB over 450 frames"


def test_breaking_early_stops_the_reader_thread(sources):
    for frame in open_frames(sources["video"]).frames():
        assert prefetch_threads()
        if frame.index == 1:
            break
    assert prefetch_threads() == []


def test_prefetch_reads_a_bounded_number_ahead():
    produced = []

    def numbers():
        for i in range(100):
            produced.append(i)
            yield i

    stream = prefetch(numbers(), depth=3)
    assert next(stream) == 0
    time.sleep(0.2)
    assert len(produced) <= 1 + 3 + 1  # taken, queued, waiting to be queued
    stream.close()
    assert prefetch_threads() == []


def test_prefetch_forwards_the_producer_exception_after_earlier_items():
    def failing():
        yield 1
        yield 2
        raise ValueError("bad frame")

    got = []
    with pytest.raises(ValueError, match="bad frame"):
        for item in prefetch(failing(), depth=4):
            got.append(item)
    assert got == [1, 2]
    assert prefetch_threads() == []


def test_missing_path(tmp_path):
    with pytest.raises(PersamError, match="video not found: .*nothing.mp4"):
        open_frames(tmp_path / "nothing.mp4")


def test_corrupt_video(tmp_path):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(PersamError, match="cannot open video .*corrupt.mp4: ") as error:
        open_frames(path)
    assert "\n" not in str(error.value)


def test_folder_without_images(tmp_path):
    (tmp_path / "notes.txt").write_text("no frames here")
    with pytest.raises(PersamError, match="no JPEG or PNG frames"):
        open_frames(tmp_path)


def test_folder_with_different_frame_sizes(tmp_path, expected):
    folder = write_folder(tmp_path / "frames", expected[:3])
    Image.fromarray(expected[3][:32]).save(folder / "00003.png")
    with pytest.raises(PersamError, match="differ in size: 00000.png is 64x96, 00003.png is 32x96"):
        open_frames(folder)


@pytest.mark.parametrize("damage", ["truncated", "random bytes"])
def test_corrupt_jpeg_fails_when_reached_and_names_the_frame(tmp_path, expected, damage):
    folder = write_folder(tmp_path / "frames", expected[:5], ext=".jpg")
    bad = folder / "00002.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2] if damage == "truncated" else os.urandom(len(data)))
    source = open_frames(folder)
    got = []
    with pytest.raises(PersamError, match=r"cannot decode frame 2 \(00002\) of .*frames: ") as error:
        for frame in source.frames():
            got.append(frame)
    assert [f.name for f in got] == ["00000", "00001"]
    assert "\n" not in str(error.value)
    assert prefetch_threads() == []


def test_grey_and_rgba_frames_become_rgb(tmp_path, expected):
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(expected[0][:, :, 0]).save(folder / "a.png")
    Image.fromarray(np.dstack([expected[1], np.full((64, 96), 128, np.uint8)])).save(folder / "b.png")
    grey, rgba = open_frames(folder).frames()
    np.testing.assert_array_equal(grey.image, np.repeat(expected[0][:, :, :1], 3, axis=2))
    np.testing.assert_array_equal(rgba.image, expected[1])
    assert isinstance(grey, Frame) and (grey.name, rgba.name) == ("a", "b")
