"""DAVIS 2017 evaluation: layout, object weighting, CSV files, vos-benchmark agreement, CLI errors."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest

from persam_video.cli import main
from persam_video.davis.evaluate import evaluate, write_csvs
from persam_video.davis.layout import DavisLayout
from persam_video.errors import PersamError
from persam_video.io.masks import write_label_png

SHAPE = (48, 64)  # F radius ceil(0.008 * 80) = 1


def labels(*rects) -> np.ndarray:
    """A label map with (id, top, bottom, left, right) inclusive rectangles drawn in order."""
    out = np.zeros(SHAPE, np.uint8)
    for k, top, bottom, left, right in rects:
        out[top:bottom + 1, left:right + 1] = k
    return out


def write_davis(root: Path, gts: Dict[str, List[np.ndarray]], results: Dict[str, List[np.ndarray]],
                subset_lines: List[str]) -> Path:
    """Write a DAVIS layout (annotations, subset file) and a results folder; return the latter."""
    (root / "ImageSets" / "2017").mkdir(parents=True)
    (root / "ImageSets" / "2017" / "val.txt").write_text("\n".join(subset_lines) + "\n")
    for folder, maps in ((root / "Annotations" / "480p", gts), (root / "results", results)):
        for seq, frames in maps.items():
            (folder / seq).mkdir(parents=True)
            for t, frame in enumerate(frames):
                write_label_png(folder / seq / f"{t:05d}.png", frame)
    return root / "results"


@pytest.fixture
def weighted(tmp_path) -> Path:
    """Sequence b: 2 objects, object 1 perfect (J=F=1), object 2 never found (J=F=0).
    Sequence a: 1 object, a 10x10 ground truth answered by 10x15 (J=2/3, F=11/15, by hand
    in test_davis_metrics). Result first and last frames are empty: they must not count."""
    gt_b = labels((1, 5, 14, 5, 14), (2, 25, 34, 30, 39))
    res_b = labels((1, 5, 14, 5, 14))
    gt_a, res_a = labels((1, 10, 19, 10, 19)), labels((1, 10, 19, 10, 24))
    empty = np.zeros(SHAPE, np.uint8)
    return write_davis(tmp_path, {"b": [gt_b] * 4, "a": [gt_a] * 4},
                       {"b": [empty, res_b, res_b, empty], "a": [empty, res_a, res_a, empty]},
                       ["b", "a"])


def run_cli(tmp_path: Path, results: Path, *extra: str) -> int:
    """``persam-video davis eval`` on the DAVIS root ``tmp_path``."""
    return main(["davis", "eval", "--davis-root", str(tmp_path), "--subset", "val",
                 "--results", str(results), "--workers", "1", *extra])


def test_means_weight_objects_not_sequences(tmp_path, weighted):
    report = evaluate(tmp_path, "val", weighted, workers=1)
    assert [o.name for o in report.objects] == ["b_1", "b_2", "a_1"]
    scores = report.global_scores()
    assert scores["J-Mean"] == pytest.approx((1 + 0 + 2 / 3) / 3)  # 5/9; per sequence: 7/12
    assert scores["F-Mean"] == pytest.approx((1 + 0 + 11 / 15) / 3)  # 26/45
    assert scores["J&F-Mean"] == pytest.approx(51 / 90)
    assert scores["J-Recall"] == pytest.approx(2 / 3) and scores["F-Recall"] == pytest.approx(2 / 3)
    assert scores["J-Decay"] == 0.0 and scores["F-Decay"] == 0.0
    assert report.frames == 4


def test_csv_files(tmp_path, weighted):
    report = evaluate(tmp_path, "val", weighted, workers=1)
    global_csv, sequence_csv = write_csvs(report, weighted, "val")
    assert global_csv == weighted / "global_results-val.csv"
    assert sequence_csv == weighted / "per-sequence_results-val.csv"
    assert global_csv.read_text() == (
        "J&F-Mean,J-Mean,J-Recall,J-Decay,F-Mean,F-Recall,F-Decay\n"
        "0.567,0.556,0.667,0.000,0.578,0.667,0.000\n")
    assert sequence_csv.read_text() == (
        "Sequence,J-Mean,F-Mean\n"
        "b_1,1.000,1.000\n"
        "b_2,0.000,0.000\n"
        "a_1,0.667,0.733\n")
    assert sorted(p.name for p in weighted.iterdir() if p.is_file()) == [
        "global_results-val.csv", "per-sequence_results-val.csv"]  # no temporary left


def test_void_is_background_and_not_excluded(tmp_path):
    # Ground truth: 10x10 object with a 10x5 void band at its right; the result covers both.
    # Void is background (1 object, not 255) and is not left out: J = 100/150, F = 11/15.
    gt = labels((1, 10, 19, 10, 19), (255, 10, 19, 20, 24))
    res = labels((1, 10, 19, 10, 24))
    results = write_davis(tmp_path, {"v": [gt] * 3}, {"v": [res] * 3}, ["v"])
    (obj,) = evaluate(tmp_path, "val", results, workers=1).objects
    assert obj.object_id == 1
    assert obj.j == pytest.approx([2 / 3]) and obj.f == pytest.approx([11 / 15])


def random_sequence(rng: np.random.Generator, n_objects: int, frames: int):
    """Ground truth of moving ellipses (one per vertical strip, with void specks) and a
    perturbed result (shifted, sometimes missing, with wrong-id specks)."""
    yy, xx = np.mgrid[:SHAPE[0], :SHAPE[1]]
    strip = SHAPE[1] / n_objects
    gts, results = [], []
    for _ in range(frames):
        gt, res = np.zeros(SHAPE, np.uint8), np.zeros(SHAPE, np.uint8)
        for k in range(1, n_objects + 1):
            cy, cx = rng.uniform(10, SHAPE[0] - 10), (k - 0.5) * strip + rng.uniform(-3, 3)
            ry, rx = rng.uniform(4, 12), rng.uniform(3, strip / 2 - 1)
            gt[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = k
            if rng.random() < 0.8:
                cy, cx = cy + rng.normal(0, 2), cx + rng.normal(0, 2)
                res[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= rng.uniform(0.7, 1.3)] = k
        gt[rng.random(SHAPE) < 0.01] = 255
        res[rng.random(SHAPE) < 0.01] = rng.integers(0, n_objects + 1)
        gts.append(gt)
        results.append(res)
    return gts, results


def test_agrees_with_vos_benchmark(tmp_path):
    from vos_benchmark.benchmark import VideoEvaluator

    rng = np.random.default_rng(7)
    sizes = {"s2": 2, "s3": 3}
    data = {seq: random_sequence(rng, n, 7) for seq, n in sizes.items()}
    results = write_davis(tmp_path, {s: d[0] for s, d in data.items()},
                          {s: d[1] for s, d in data.items()}, list(sizes))
    report = evaluate(tmp_path, "val", results, workers=1)
    assert [(o.sequence, o.object_id) for o in report.objects] == [
        ("s2", 1), ("s2", 2), ("s3", 1), ("s3", 2), ("s3", 3)]
    scorer = VideoEvaluator(str(tmp_path / "Annotations" / "480p"), str(results))
    theirs = {seq: scorer(seq)[1:] for seq in sizes}
    for obj in report.objects:  # ids 1..N only: vos-benchmark also scores void (255)
        iou, boundary = theirs[obj.sequence]
        assert obj.j.mean() == pytest.approx(iou[obj.object_id] / 100, abs=1e-6)
        assert obj.f.mean() == pytest.approx(boundary[obj.object_id] / 100, abs=1e-6)
    assert 0.05 < np.mean([o.f.mean() for o in report.objects]) < 0.95  # not a trivial case


def test_process_pool_gives_the_same_scores(tmp_path):
    rng = np.random.default_rng(1)
    data = {seq: random_sequence(rng, 2, 5) for seq in ("p", "q", "r")}
    results = write_davis(tmp_path, {s: d[0] for s, d in data.items()},
                          {s: d[1] for s, d in data.items()}, list(data))
    alone = evaluate(tmp_path, "val", results, workers=1)
    pooled = evaluate(tmp_path, "val", results, workers=2)
    assert [o.name for o in pooled.objects] == [o.name for o in alone.objects]
    for a, b in zip(alone.objects, pooled.objects):
        np.testing.assert_array_equal(a.j, b.j)
        np.testing.assert_array_equal(a.f, b.f)
    (results / "q" / "00002.png").unlink()
    with pytest.raises(PersamError, match="00002.png"):
        evaluate(tmp_path, "val", results, workers=2)


def test_layout(tmp_path):
    (tmp_path / "ImageSets" / "2017").mkdir(parents=True)
    (tmp_path / "ImageSets" / "2017" / "val.txt").write_text("cows\n\nbike\ncows\n")
    frames = tmp_path / "JPEGImages" / "480p" / "cows"
    annotations = tmp_path / "Annotations" / "480p" / "cows"
    frames.mkdir(parents=True)
    annotations.mkdir(parents=True)
    for name in ("00001.png", "00000.jpg", "notes.txt"):
        (frames / name).write_bytes(b"")
    for name in ("00001.png", "00000.png"):
        write_label_png(annotations / name, np.zeros((4, 4), np.uint8))
    layout = DavisLayout(tmp_path)
    assert layout.sequences("val") == ["cows", "bike"]
    assert [p.name for p in layout.frame_paths("cows")] == ["00000.jpg", "00001.png"]
    assert [p.name for p in layout.annotation_paths("cows")] == ["00000.png", "00001.png"]
    assert layout.first_annotation("cows") == annotations / "00000.png"
    with pytest.raises(PersamError, match=r"subset file not found: .*train\.txt \(subsets there: val\)"):
        layout.sequences("train")
    with pytest.raises(PersamError, match="annotations folder not found"):
        layout.annotation_paths("bike")


def test_cli_writes_csvs_and_prints_tables(tmp_path, weighted, capsys):
    assert run_cli(tmp_path, weighted, "--sequences", "a") == 0
    out = capsys.readouterr().out
    assert "J&F-Mean" in out and "a_1" in out and "b_1" not in out
    assert (weighted / "per-sequence_results-val.csv").read_text().splitlines()[1:] == ["a_1,0.667,0.733"]
    assert (weighted / "global_results-val.csv").is_file()


def test_cli_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["davis", "eval", "--help"])
    out = capsys.readouterr().out
    for option in ("--davis-root", "--subset", "--results", "--sequences", "--workers"):
        assert option in out


def break_missing_folder(results: Path) -> str:
    shutil.rmtree(results / "a")
    return f"results folder of sequence a not found: {results / 'a'}"


def break_missing_frame(results: Path) -> str:
    (results / "b" / "00002.png").unlink()
    return f"result mask missing: {results / 'b' / '00002.png'}"


def break_id_above_n(results: Path) -> str:
    write_label_png(results / "a" / "00001.png", labels((2, 0, 3, 0, 3)))
    return f"result {results / 'a' / '00001.png'} holds object id 2 but sequence a has 1 object"


def break_size(results: Path) -> str:
    write_label_png(results / "b" / "00001.png", np.zeros((40, 64), np.uint8))
    return f"result {results / 'b' / '00001.png'} is 64x40 but its annotation"


@pytest.mark.parametrize("breaker", [break_missing_folder, break_missing_frame, break_id_above_n,
                                     break_size])
def test_cli_errors_are_one_line(tmp_path, weighted, capsys, breaker):
    expected = breaker(weighted)
    assert run_cli(tmp_path, weighted) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("persam-video: error: ") and expected in err
    if breaker is break_size:
        assert "is 64x48 (width x height)" in err


@pytest.mark.parametrize("extra, expected", [
    (("--subset", "test-dev"), "subset file not found: {root}/ImageSets/2017/test-dev.txt"),
    (("--sequences", "a,zebra"), "sequence(s) zebra not in subset val"),
])
def test_cli_subset_errors_are_one_line(tmp_path, weighted, capsys, extra, expected):
    assert run_cli(tmp_path, weighted, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert expected.format(root=tmp_path) in err
