"""Alpha video (ProRes 4444, VP9 .webm), a matte as H.264 and COCO/YouTube-VIS files, each read back."""
from __future__ import annotations

import json

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
from conftest import run_cli, write_frame_folder
from pycocotools.coco import COCO

from persam_video.export.coco import decode_rle
from persam_video.io.masks import write_label_png

SIZE = (48, 64)
N = 5


def labels_for(t: int) -> np.ndarray:
    """Object 1 a moving rectangle, object 2 a fixed one that is gone in the last frame."""
    labels = np.zeros(SIZE, np.uint8)
    labels[8:30, 4 + 4 * t:24 + 4 * t] = 1
    if t < N - 1:
        labels[32:44, 40:60] = 2
    return labels


@pytest.fixture
def clip(tmp_path):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (N, 6, 8, 3), dtype=np.uint8)  # smooth pictures: chroma subsampling keeps them
    frames = np.stack([cv2.resize(s, SIZE[::-1], interpolation=cv2.INTER_LINEAR) for s in small])
    video = write_frame_folder(tmp_path / "frames", frames)
    masks = tmp_path / "masks"
    masks.mkdir()
    for t in range(N):
        write_label_png(masks / f"{t:05d}.png", labels_for(t))
    return video, masks, frames


def decode(path, pix_fmt, decoder=None):
    """Every frame of a video file as (H, W, C) uint8, decoded by the bundled ffmpeg."""
    channels = {"rgba": 4, "gray": 1}[pix_fmt]
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt=pix_fmt, bpp=channels,
                                        input_params=["-c:v", decoder] if decoder else None)
    meta = next(reader)
    w, h = meta["size"]
    return np.stack([np.frombuffer(raw, np.uint8).reshape(h, w, channels) for raw in reader])


@pytest.mark.parametrize("fmt, suffix, decoder, tolerance", [
    ("prores", ".mov", None, 2),           # 10-bit alpha: exact up to rounding
    ("webm", ".webm", "libvpx-vp9", 40),    # VP9's alpha is lossy: right side of the middle everywhere
])
def test_alpha_video_decodes_to_the_masks(clip, tmp_path, capsys, fmt, suffix, decoder, tolerance):
    video, masks, frames = clip
    out = tmp_path / f"cut{suffix}"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "cutout", "--format", fmt,
                            "--objects", "1", "--fps", "10"], capsys)
    assert code == 0, err
    assert fmt in err
    back = decode(out, "rgba", decoder)
    assert back.shape == (N, *SIZE, 4)
    for t in range(N):
        want = np.where(labels_for(t) == 1, 255, 0)
        assert np.abs(back[t, ..., 3].astype(int) - want).max() <= tolerance, (fmt, t)
        assert ((back[t, ..., 3] > 127) == (want > 0)).all()
        colour = np.abs(back[t, ..., :3].astype(int) - frames[t]).mean()
        assert colour < 12  # lossy, but the frame's colours


def test_matte_mp4_is_a_luma_key(clip, tmp_path, capsys):
    video, masks, _ = clip
    out = tmp_path / "key.mp4"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "matte", "--format", "mp4",
                            "--quiet"], capsys)
    assert code == 0, err
    back = decode(out, "gray")[..., 0].astype(int)
    for t in range(N):
        inside = labels_for(t) > 0
        assert back[t][inside].min() > 200 and back[t][~inside].max() < 60, t


def test_coco_export_reads_back_to_the_masks(clip, tmp_path, capsys):
    video, masks, _ = clip
    out = tmp_path / "annotations"
    code, _, err = run_cli(["export", video, "--masks", masks, "--out", out, "--kind", "coco", "--quiet"], capsys)
    assert code == 0, err
    api = COCO(str(out / "coco.json"))
    assert sorted(api.getCatIds()) == [1, 2]
    images = sorted(api.loadImgs(api.getImgIds()), key=lambda image: image["file_name"])
    assert [image["file_name"] for image in images] == [f"{t:05d}.jpg" for t in range(N)]
    for t, image in enumerate(images):
        anns = api.loadAnns(api.getAnnIds(imgIds=image["id"]))
        assert sorted(a["category_id"] for a in anns) == ([1, 2] if t < N - 1 else [1])
        for ann in anns:
            np.testing.assert_array_equal(api.annToMask(ann).astype(bool), labels_for(t) == ann["category_id"])
    vis = json.loads((out / "youtube_vis.json").read_text())
    assert vis["videos"][0]["length"] == N
    tracks = {a["category_id"]: a["segmentations"] for a in vis["annotations"]}
    assert tracks[2][N - 1] is None
    for object_id, rles in tracks.items():
        for t, rle in enumerate(rles):
            if rle is not None:
                np.testing.assert_array_equal(decode_rle(rle), labels_for(t) == object_id)
