"""tools/train_small_sam.py: steps, resume, export, the prompt mixes, the data-parallel workers."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import load_tool


def _trainer(monkeypatch, tmp_path):
    module = load_tool("train_small_sam")
    monkeypatch.setattr(module, "RUNS_DIR", tmp_path / "runs")
    return module


def test_trainer_steps_resume_and_export(monkeypatch, tmp_path):
    import csv

    import torch

    from persam_video.model.loading import load_sam, sha256_of
    from persam_video.model.small import SMALL_CONFIG

    trainer = _trainer(monkeypatch, tmp_path)
    tiny = ["--steps", "2", "--img-size", "64", "--images", "1", "--prompts", "2", "--max-objects", "2",
            "--threads", "1", "--warmup", "1", "--bar-interval", "60"]
    assert trainer.main(["--run", "a"] + tiny) == 0
    rows = list(csv.DictReader(open(tmp_path / "runs" / "a" / "loss.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["loss"])) and float(r["loss"]) > 0 for r in rows)
    # the same schedule stopped after one step and resumed gives the same weights
    assert trainer.main(["--run", "b", "--stop-after", "1"] + tiny) == 0
    assert torch.load(tmp_path / "runs" / "b" / "last.pt", weights_only=False)["step"] == 1
    assert trainer.main(["--run", "b", "--resume", "--threads", "1"]) == 0
    a = torch.load(tmp_path / "runs" / "a" / "last.pt", weights_only=False)
    b = torch.load(tmp_path / "runs" / "b" / "last.pt", weights_only=False)
    assert b["step"] == 2
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    # export: a plain state_dict at the shipped size, with its digest, that load_sam accepts
    dest = tmp_path / "weights" / "small_sam.pth"
    assert trainer.main(["--run", "a", "--export", "--export-to", str(dest), "--threads", "1"]) == 0
    assert dest.with_suffix(".sha256").read_text().split()[0] == sha256_of(dest)
    again = tmp_path / "again" / "other.pth"  # the same weights exported again: the same bytes
    assert trainer.main(["--run", "a", "--export", "--export-to", str(again), "--threads", "1"]) == 0
    assert sha256_of(again) == sha256_of(dest)
    assert dest.stat().st_size < 25e6
    model = load_sam("small", dest, device="cpu", progress=False)
    assert model.image_encoder.img_size == SMALL_CONFIG.img_size
    state = torch.load(dest, weights_only=True)
    assert state["image_encoder.pos_embed"].shape[1] == SMALL_CONFIG.img_size // 16


def test_resize_state_dict_interpolates_positions(monkeypatch, tmp_path):
    trainer = _trainer(monkeypatch, tmp_path)
    small = trainer.build_at(64).state_dict()
    big = trainer.build_at(128)
    resized = trainer.resize_state_dict(small, big.state_dict())
    big.load_state_dict(resized, strict=True)
    assert resized["image_encoder.pos_embed"].shape == (1, 8, 8, 192)


def test_size_schedule_and_loss_warmup(monkeypatch, tmp_path):
    trainer = _trainer(monkeypatch, tmp_path)
    assert trainer.parse_schedule("2000:256,0:128,4150:512") == [(0, 128), (2000, 256), (4150, 512)]
    with pytest.raises(SystemExit):
        trainer.parse_schedule("10:128")
    assert trainer.loss_weights(0, 100) == (1.0, 0.0)  # BCE + dice first
    assert trainer.loss_weights(500, 100) == (20.0, 2.0)  # then SAM's 20 * focal + dice
    assert trainer.loss_weights(None, 100) == (20.0, 2.0)


def test_trainer_init_from_weights_and_extend_a_run(monkeypatch, tmp_path):
    import csv

    import torch

    trainer = _trainer(monkeypatch, tmp_path)
    tiny = ["--img-size", "64", "--images", "1", "--prompts", "2", "--max-objects", "2",
            "--threads", "1", "--warmup", "1", "--bar-interval", "60"]
    assert trainer.main(["--run", "a", "--steps", "2"] + tiny) == 0
    first = torch.load(tmp_path / "runs" / "a" / "last.pt", weights_only=False)["model"]
    weights = tmp_path / "a.pth"
    torch.save(first, weights)
    # --init: a new run that starts from those weights (0 steps taken: exactly them)
    assert trainer.main(["--run", "b", "--steps", "2", "--init", str(weights), "--stop-after", "0",
                         "--seed", "1"] + tiny) == 0
    started = torch.load(tmp_path / "runs" / "b" / "last.pt", weights_only=False)
    assert started["step"] == 0
    assert all(torch.equal(v, started["model"][k]) for k, v in first.items())
    # --extend-to: a resumed run gets more steps and a stretched learning-rate schedule
    assert trainer.main(["--run", "c", "--steps", "3", "--stop-after", "2"] + tiny) == 0
    with pytest.raises(SystemExit):
        trainer.main(["--run", "c", "--resume", "--extend-to", "2", "--threads", "1"])
    assert trainer.main(["--run", "c", "--resume", "--extend-to", "5", "--threads", "1"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "runs" / "c" / "loss.csv")))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4, 5]
    lr_3 = float(rows[2]["lr"])  # the third step, taken after the extension
    assert lr_3 == pytest.approx(trainer.lr_at(2, 5, 4e-4, 1), rel=1e-2)
    assert lr_3 > trainer.lr_at(2, 3, 4e-4, 1) * 1.1  # not the old, shorter cosine
    # --prompt-mix is part of the run: a resumed run keeps it (same weights as one go)
    for run, stop in (("d", []), ("e", ["--stop-after", "1"])):
        assert trainer.main(["--run", run, "--steps", "2", "--prompt-mix", "tracker"] + stop + tiny) == 0
    assert trainer.main(["--run", "e", "--resume", "--threads", "1"]) == 0
    d, e = (torch.load(tmp_path / "runs" / r / "last.pt", weights_only=False)["model"] for r in "de")
    assert all(torch.equal(v, e[k]) for k, v in d.items())
    assert not all(torch.equal(v, first[k]) for k, v in d.items())  # (the mix changes the data)


def test_tracker_prompt_mix_sends_persam_prompts_and_trains_every_output(monkeypatch, tmp_path):
    import torch

    trainer = _trainer(monkeypatch, tmp_path)
    rng = np.random.default_rng(0)
    masks = []
    for y0, x0, r in ((20, 30, 8), (60, 70, 12), (5, 100, 6)):
        yy, xx = np.mgrid[:96, :128]
        masks.append(np.hypot(yy - y0, xx - x0) <= r)
    first = trainer.first_prompts(rng, masks, (96, 128), 512, {"persam": 1.0})
    for prompt, mask in zip(first, masks):
        x0, y0, x1, y1 = trainer._box(mask)
        bx0, by0, bx1, by1 = prompt.box
        assert 0 <= bx0 <= x0 + 3 and 0 <= by0 <= y0 + 3 and x1 - 3 <= bx1 <= 127 and y1 - 3 <= by1 <= 95
        cx, cy, label = prompt.points[-1]  # the widened box's centre, labelled positive
        assert (cx, cy, label) == ((bx0 + bx1) // 2, (by0 + by1) // 2, 1)
        assert 2 <= len(prompt.points) <= 3 and all(p[2] == 1 for p in prompt.points)
        assert prompt.multimask and prompt.every_output
    widened = [trainer._widened_box(np.random.default_rng(i), (40.0, 40.0, 60.0, 60.0), (512, 512), 512)
               for i in range(200)]
    margins = np.array([[40 - b[0], 40 - b[1], b[2] - 60, b[3] - 60] for b in widened])
    assert margins.mean() > 8 and margins.max() > 20  # looser than SAM's box noise (10 % of the side)
    refined = trainer.refine_prompts(rng, first, masks, [m.copy() for m in masks], (96, 128), 512)
    assert all(p.every_output for p in refined)
    assert not any(p.every_output for p in trainer.first_prompts(rng, masks, (96, 128), 512))  # "sam" mix
    # "tracker-whole": its one-point prompts train all three outputs on the object
    whole = trainer.first_prompts(rng, masks * 20, (96, 128), 512, trainer.PROMPT_MIXES["tracker-whole"])
    single = [p for p in whole if len(p.points) == 1 and p.box is None]
    assert len(single) >= 5 and all(p.multimask and p.every_output for p in single)
    plain = trainer.first_prompts(rng, masks * 20, (96, 128), 512, trainer.PROMPT_MIXES["tracker"])
    assert not any(p.every_output for p in plain if len(p.points) == 1 and p.box is None)
    # losses: a flagged prompt trains the mean of outputs 1..3, an unflagged one its best output
    gt = torch.zeros(2, 8, 8)
    gt[:, 2:6, 2:6] = 1
    low = torch.full((2, 4, 8, 8), -5.0)
    low[:, 1, 2:6, 2:6] = 5.0  # output 1 is right, outputs 2 and 3 are empty
    iou = torch.zeros(2, 4)
    multi = torch.tensor([True, True])
    f, d, _, _ = trainer.prompt_losses(low, iou, gt, multi, every=torch.tensor([False, True]))
    assert d[0] < 0.05 and d[1] > 0.5 and f[1] > f[0]


def test_iou_weight_scales_only_the_iou_term_and_survives_resume(monkeypatch, tmp_path):
    import torch

    trainer = _trainer(monkeypatch, tmp_path)
    torch.manual_seed(0)
    model = trainer.build_at(64)
    parts = []
    for weight in (1.0, 7.0):
        rng = np.random.default_rng([5, 3])  # the same data for both weights
        parts.append(trainer.train_step(model, rng, 64, 2, 1, 2, 1.0, 0.0, trainer.MODES, iou_weight=weight))
    (a, b) = parts
    assert torch.allclose(a["iou_mse"], b["iou_mse"]) and a["iou_mse"] > 0
    assert torch.allclose(b["loss"] - a["loss"], 6.0 * a["iou_mse"], atol=1e-6)
    tiny = ["--img-size", "64", "--images", "1", "--prompts", "2", "--max-objects", "2", "--threads", "1",
            "--warmup", "1", "--bar-interval", "60"]
    assert trainer.main(["--run", "w", "--steps", "2", "--iou-weight", "3", "--stop-after", "1"] + tiny) == 0
    seen = []
    real_step = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda *a, **k: seen.append(a[9]) or real_step(*a, **k))
    assert trainer.main(["--run", "w", "--resume", "--threads", "1"]) == 0
    assert seen == [3.0]


def test_clip_frames_for_training_are_resized_like_the_predictor_and_prompted_from_the_last_frame(
        monkeypatch, tmp_path):
    import torch

    trainer = _trainer(monkeypatch, tmp_path)
    rgb, labels, prev = trainer.render_clip_sample(np.random.default_rng(3), 128, 4)
    again = trainer.render_clip_sample(np.random.default_rng(3), 128, 4)
    assert np.array_equal(rgb, again[0]) and np.array_equal(labels, again[1]) and np.array_equal(prev, again[2])
    h, w = rgb.shape[:2]
    assert max(h, w) == 128 and (h, w) in {(72, 128), (96, 128)}  # a video frame's aspect, longest side 128
    assert labels.shape == prev.shape == (128, 128)
    assert not labels[h:].any() and not labels[:, w:].any() and labels.max() >= 1
    assert not np.array_equal(labels, prev)  # the objects moved between the two frames
    # the tracker's prompt is built on the previous frame's box
    yy, xx = np.mgrid[:96, :128]
    now, before = np.hypot(yy - 50, xx - 80) <= 10, np.hypot(yy - 50, xx - 40) <= 10
    for i in range(20):
        (prompt,) = trainer.first_prompts(np.random.default_rng(i), [now], (96, 128), 512, {"persam": 1.0}, [before])
        x0, _, x1, _ = prompt.box
        assert x0 <= 33 and 47 <= x1 <= 80  # the old box (30..50) widened; the new one (70..90) would not fit
    # --loose-box: some of those boxes are much wider than the margin
    def margins(loose: float) -> np.ndarray:
        boxes = [trainer._widened_box(np.random.default_rng(i), (200.0, 200.0, 300.0, 300.0), (512, 512), 512, loose)
                 for i in range(200)]
        return np.array([200 - b[0] for b in boxes])
    assert margins(0.0).max() < 30 and margins(1.0).mean() > margins(0.0).mean() + 8
    # a step on clip frames trains; the run keeps the two options when resumed
    torch.manual_seed(0)
    out = trainer.train_step(trainer.build_at(64), np.random.default_rng([1, 1]), 64, 2, 1, 2, 1.0, 0.0,
                             trainer.PROMPT_MIXES["tracker"], 1.0, 1.0, 0.5)
    assert torch.isfinite(out["loss"]) and out["loss"] > 0
    tiny = ["--img-size", "64", "--images", "1", "--prompts", "2", "--max-objects", "2", "--threads", "1",
            "--warmup", "1", "--bar-interval", "60"]
    assert trainer.main(["--run", "c", "--steps", "2", "--clip-share", "0.5", "--loose-box", "0.3",
                         "--stop-after", "1"] + tiny) == 0
    seen = []
    real_step = trainer.train_step
    monkeypatch.setattr(trainer, "train_step", lambda *a, **k: seen.append(a[10:12]) or real_step(*a, **k))
    assert trainer.main(["--run", "c", "--resume", "--threads", "1"]) == 0
    assert seen == [(0.5, 0.3)]
    for bad in (["--clip-share", "1.5"], ["--loose-box", "-0.1"]):  # shares are probabilities
        with pytest.raises(SystemExit):
            trainer.parse_args(bad)


def test_a_step_with_nothing_to_train_on_changes_nothing(monkeypatch, tmp_path):
    import torch

    trainer = _trainer(monkeypatch, tmp_path)
    empty = (np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), np.uint8))
    monkeypatch.setattr(trainer, "render_sample", lambda *a: empty)
    torch.manual_seed(0)
    out = trainer.train_step(trainer.build_at(64), np.random.default_rng(0), 64, 2, 2, 2)
    assert out["loss"].item() == 0.0 and out["images"] == 0  # (weight 0 when processes average gradients)
    out["loss"].backward()  # (a zero step, not a crash: clip frames can have every object out of view)
    # ... and the clip frames drawn for training always show an object
    calls = []
    real = trainer._clip_frame

    def first_empty(rng, size, max_objects):
        calls.append(1)
        rgb, labels, prev = real(rng, size, max_objects)
        return (rgb, labels * 0, prev) if len(calls) == 1 else (rgb, labels, prev)

    monkeypatch.setattr(trainer, "_clip_frame", first_empty)
    _, labels, _ = trainer.render_clip_sample(np.random.default_rng(1), 64, 2)
    assert len(calls) == 2 and labels.max() >= 1


def test_data_parallel_workers_average_their_gradients_and_resume(monkeypatch, tmp_path):
    """--workers 2: each process trains its own image of the step ((seed, step, rank) data),
    the update is AdamW on the mean of their gradients; a resumed run keeps its worker count."""
    import csv
    import subprocess
    import sys

    import torch

    trainer = _trainer(monkeypatch, tmp_path)
    with pytest.raises(SystemExit, match="multiple of --workers"):
        trainer.main(["--run", "odd", "--workers", "2", "--images", "3", "--steps", "1"])
    script = str(trainer.ROOT / "tools" / "train_small_sam.py")
    tiny = ["--steps", "2", "--img-size", "64", "--images", "2", "--prompts", "2", "--max-objects", "2",
            "--warmup", "1", "--lr", "1e-3", "--bar-interval", "60", "--seed", "3"]
    base = [sys.executable, script, "--runs-dir", str(tmp_path / "runs"), "--run", "dp", "--threads", "1"]
    subprocess.run(base + ["--workers", "2", "--stop-after", "1"] + tiny, check=True, capture_output=True)
    subprocess.run(base + ["--resume"], check=True, capture_output=True)  # no --workers: the run's 2
    got = torch.load(tmp_path / "runs" / "dp" / "last.pt", weights_only=False)
    assert got["step"] == 2 and got["args"]["workers"] == 2
    logged = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "runs" / "dp" / "loss.csv"))]

    # the same two steps in this process, rank by rank
    torch.manual_seed(3)
    model = trainer.build_at(64).train()
    params = list(model.parameters())
    opt = trainer.make_optimizer(model, 1e-3, 0.05)
    expected_losses = []
    for step in range(2):
        for group in opt.param_groups:
            group["lr"] = trainer.lr_at(step, 2, 1e-3, 1)
        per_rank, losses = [], []
        for rank in range(2):
            opt.zero_grad(set_to_none=True)
            loss = trainer.train_step(model, np.random.default_rng([3, step, rank]), 64, 2, 1, 2,
                                      *trainer.loss_weights(step, 300))["loss"]
            loss.backward()
            losses.append(loss.item())
            per_rank.append([None if p.grad is None else p.grad.clone() for p in params])
        for i, p in enumerate(params):
            grads = [g[i] for g in per_rank]
            p.grad = None if all(g is None for g in grads) else \
                sum(g if g is not None else torch.zeros_like(p) for g in grads) / 2
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        expected_losses.append(sum(losses) / 2)
    np.testing.assert_allclose(logged, expected_losses, rtol=1e-4)
    for key, value in model.state_dict().items():
        # AdamW moves every weight by about lr per step whatever its gradient's size, and makes
        # float noise of the summation order count where a gradient is ~0 (attention key
        # biases): 1e-4 is a tenth of one step's move; one process's gradient alone is off by ~1e-3
        torch.testing.assert_close(got["model"][key], value, rtol=0, atol=1e-4, msg=key)


_AVERAGE_SCRIPT = """
import os, sys, torch, torch.distributed as dist, torch.multiprocessing as mp
sys.path.insert(0, os.path.join({root!r}, "tools"))
import train_small_sam as trainer

CASES = [(1.0, 1.0), (2.0, 1.0), (1.0, 0.0)]  # (rank 0's weight, rank 1's)

def run(rank, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    results = []
    for weights in CASES:
        model = torch.nn.Linear(3, 2)
        model.weight.grad = torch.full((2, 3), float(rank + 1))  # rank 0: ones, rank 1: twos
        if rank == 0:
            model.bias.grad = torch.tensor([4.0, 8.0])  # rank 1 has none for the bias
        total = trainer.average_gradients(model, weights[rank])
        results.append((total, model.weight.grad, model.bias.grad))
    if rank == 0:
        torch.save(results, out)
    dist.destroy_process_group()

if __name__ == "__main__":
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    mp.start_processes(run, args=(port, sys.argv[1]), nprocs=2, join=True, start_method="spawn")
"""


def test_average_gradients_weights_processes_by_the_images_they_trained_on(tmp_path):
    """Two gloo processes: the mean gradient weighted by each process's trained images, so a
    process whose images had nothing to train on does not halve the other's gradient."""
    import subprocess
    import sys

    import torch

    trainer = load_tool("train_small_sam")
    script = tmp_path / "average.py"
    script.write_text(_AVERAGE_SCRIPT.format(root=str(trainer.ROOT)))
    subprocess.run([sys.executable, str(script), str(tmp_path / "out.pt")], check=True, capture_output=True,
                   timeout=120)
    expected = [  # (total weight, weight's gradient, bias's gradient: 0 where a process has none)
        (2.0, 1.5, [2.0, 4.0]),          # weights 1, 1: the plain mean
        (3.0, 4 / 3, [8 / 3, 16 / 3]),   # 2, 1: rank 0 trained on two images, rank 1 on one
        (1.0, 1.0, [4.0, 8.0]),          # 1, 0: rank 1 had nothing: rank 0's gradient, not half of it
    ]
    for (total, weight_grad, bias_grad), got in zip(expected, torch.load(tmp_path / "out.pt")):
        assert got[0] == total
        torch.testing.assert_close(got[1], torch.full((2, 3), weight_grad))
        torch.testing.assert_close(got[2], torch.tensor(bias_grad))
