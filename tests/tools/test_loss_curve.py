"""tools/loss_curve.py: training runs laid end to end, windows, CSV and PNG."""
from __future__ import annotations

import pytest
from conftest import load_tool


def test_loss_curve_lays_runs_end_to_end(tmp_path):
    import csv

    curve = load_tool("loss_curve")
    fields = ["step", "loss", "focal", "dice", "iou_mse", "time", "lr", "img_size"]
    for run, n, size, base in (("r1", 30, 256, 1.0), ("r2", 20, 512, 0.5)):
        (tmp_path / run).mkdir()
        with open(tmp_path / run / "loss.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            for s in range(1, n + 1):
                w.writerow({"step": s, "loss": base + 0.001 * s, "focal": 0.1, "dice": base / 2, "iou_mse": 0.01,
                            "time": 2.0 * s, "lr": 1e-4, "img_size": size})
    chain = curve.read_chain(["r1", "r2"], tmp_path)
    assert list(chain["step"]) == list(range(1, 51))
    assert chain["minutes"][-1] == pytest.approx((60 + 40) / 60)
    rows = curve.windows(chain, 10)
    assert [r["steps"] for r in rows] == ["1-10", "11-20", "21-30", "31-40", "41-50"]
    assert rows[0]["loss"] == pytest.approx(1.0055) and rows[3]["img_size"] == 512 and rows[3]["run"] == "r2"
    out_csv, out_png = tmp_path / "out" / "c.csv", tmp_path / "out" / "c.png"
    assert curve.main(["r1", "r2", "--runs-dir", str(tmp_path), "--every", "25", "--csv", str(out_csv),
                       "--csv-every", "10", "--png", str(out_png)]) == 0
    assert len(list(csv.DictReader(open(out_csv)))) == 5
    from PIL import Image
    with Image.open(out_png) as image:
        assert image.size == (900, 420)
    with pytest.raises(SystemExit):
        curve.read_chain(["missing"], tmp_path)
