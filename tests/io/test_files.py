"""Every file and folder the commands write has the mode open() and mkdir() give under the umask."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from conftest import load_tool

from persam_video.cli import main
from persam_video.io.files import atomic_write, process_umask, write_csv


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request):
    before = os.umask(request.param)
    yield request.param
    os.umask(before)


def wrong_modes(root: Path, mask: int) -> list:
    """``path mode`` for each file not 0666 & ~mask and each folder not 0777 & ~mask under ``root``."""
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        if mode != expected:
            wrong.append(f"{path.relative_to(root)} {oct(mode)} (expected {oct(expected)})")
    return wrong


def test_umask_is_read_without_changing_it(umask):
    assert process_umask() == umask
    assert process_umask() == umask  # reading it left it as it was


def test_atomic_write_gives_the_usual_mode(umask, tmp_path):
    atomic_write(tmp_path / "a.txt", lambda tmp: Path(tmp).write_text("x"))
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o666 & ~umask


def test_commands_write_files_with_the_usual_mode(umask, small_checkpoint, tmp_path):
    model = ["--checkpoint", str(small_checkpoint), "--model-type", "small", "--device", "cpu"]
    out = tmp_path / "out"
    demo = out / "demo"
    assert main(["demo", "--out", str(demo), "--frames", "4", "--fit-iterations", "5", "--quiet", *model]) == 0
    assert main(["export", str(demo / "clip.mp4"), "--masks", str(demo / "masks"), "--out",
                 str(out / "cutouts"), "--kind", "cutout", "--quiet"]) == 0
    assert main(["segment", str(demo / "clip.mp4"), "--mask", str(demo / "ground_truth" / "00000.png"),
                 "--out", str(out / "segment"), "--method", "persam", "--save-state", str(out / "state.pt"),
                 "--quiet", *model]) == 0
    davis = load_tool("synthetic").write_davis_dataset(tmp_path / "davis", seed=1, n_sequences=1, n_frames=3,
                                                       size=(48, 64), objects=(1, 1))
    assert davis
    assert main(["davis", "run", "--davis-root", str(tmp_path / "davis"), "--subset", "val", "--out",
                 str(out / "davis"), "--method", "persam", "--eval", "--quiet", *model]) == 0
    written = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert {"overlay.mp4", "00000.png", ".done", "state.pt"} <= set(written), written
    assert any(name.endswith(".csv") for name in written), written
    assert wrong_modes(out, umask) == []


def test_write_csv_writes_the_header_every_row_and_the_asked_line_ends(tmp_path):
    rows = [{"clip": "a", "error": ""}, {"clip": "b,c", "error": "ü failed"}, {"clip": "d"}]
    write_csv(tmp_path / "lf.csv", ("clip", "error"), rows)
    assert (tmp_path / "lf.csv").read_bytes() == 'clip,error\na,\n"b,c",ü failed\nd,\n'.encode()
    write_csv(tmp_path / "crlf.csv", ("clip", "error"), rows[:1], line_end="\r\n")
    assert (tmp_path / "crlf.csv").read_bytes() == b"clip,error\r\na,\r\n"
    with pytest.raises(ValueError):  # a field the header lacks is a programming error, not a silent drop
        write_csv(tmp_path / "bad.csv", ("clip",), [{"clip": "a", "other": 1}])
    assert not (tmp_path / "bad.csv").exists()
