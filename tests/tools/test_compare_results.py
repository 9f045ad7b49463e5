"""tools/compare_results.py: the J&F difference of two evaluations with a paired bootstrap."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import load_tool


def _tool():
    return load_tool("compare_results")


def _csv(path: Path, rows) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    out = path / "per-sequence_results-val.csv"
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Sequence", "J-Mean", "F-Mean"])
        writer.writerows(rows)
    return out


def test_difference_and_interval(tmp_path, capsys):
    tool = _tool()
    a_rows = [("s1_1", 0.5, 0.3), ("s1_2", 0.2, 0.2), ("s2_1", 0.6, 0.8), ("s3_1", 0.1, 0.3)]
    # B: every object exactly 0.1 better -> the difference is 0.1 whatever sequences are drawn
    b_rows = [(n, j + 0.1, f + 0.1) for n, j, f in a_rows]
    a, b = _csv(tmp_path / "a", a_rows), _csv(tmp_path / "b", b_rows)
    r = tool.paired_bootstrap(tool.read_objects([a]), tool.read_objects([tmp_path / "b"]))
    assert r["sequences"] == 3 and r["objects"] == 4
    assert r["a"] == pytest.approx((0.4 + 0.2 + 0.7 + 0.2) / 4)  # the global J&F: mean over objects
    assert r["diff"] == pytest.approx(0.1) and r["low"] == pytest.approx(0.1) and r["high"] == pytest.approx(0.1)
    # one sequence much better, the others a little worse: the interval spans zero
    mixed = [("s1_1", 0.45, 0.25), ("s1_2", 0.15, 0.15), ("s2_1", 0.55, 0.75), ("s3_1", 0.9, 0.9)]
    r = tool.paired_bootstrap(tool.read_objects([a]), tool.read_objects([_csv(tmp_path / "m", mixed)]))
    assert r["low"] < 0 < r["diff"] < r["high"]
    # sets pooled by comma; the same sequence names in two sets stay two sequences
    assert tool.main([f"{a},{a}", f"{b},{b}"]) == 0
    assert "6 sequences, 8 objects" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        tool.paired_bootstrap(tool.read_objects([a]), tool.read_objects([_csv(tmp_path / "x", a_rows[:2])]))
    with pytest.raises(SystemExit):
        tool.read_objects([tmp_path / "missing"])
    with pytest.raises(SystemExit):
        tool.main([str(a), str(b), "--draws", "0"])
