"""Start-up: the segment command never imports torchvision (segment_anything's package __init__
pulls it in, with torch._dynamo: about 1.2 s), yet ``from segment_anything import ...`` still works.

Each check runs in a fresh interpreter, since this test process has imported both long ago."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import REPO, write_seed
from PIL import Image

HEAVY = ("torchvision", "torch._dynamo", "segment_anything.predictor", "segment_anything.automatic_mask_generator")


def fresh_python(code: str, env_extra: dict = None) -> dict:
    """Run ``code`` in a new interpreter; it prints one JSON line, returned parsed."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PERSAM_VIDEO_EAGER_IMPORTS"}
    env.update(env_extra or {})
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


LOADED = f"json.dumps({{name: name in sys.modules for name in {HEAVY!r}}})"


@pytest.mark.parametrize("method", ["persam", "persam-f"])
def test_segment_command_imports_no_torchvision(tmp_path, method):
    """The whole segment command with the bundled model, in-process in a fresh interpreter, up to
    its last mask: neither torchvision nor SamPredictor's module is imported, nor torch._dynamo
    (which torch.optim's optimiser classes import: PerSAM-F's fit calls AdamW's functional form)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(frames / f"{i:05d}.jpg")
    seed = np.zeros((72, 96), np.uint8)
    seed[20:50, 30:60] = 1
    write_seed(tmp_path / "seed.png", seed)
    args = ["segment", str(frames), "--mask", str(tmp_path / "seed.png"), "--out", str(tmp_path / "out"),
            "--method", method, "--quiet", "--threads", "1", "--fit-iterations", "20"]
    loaded = fresh_python(f"""
        import json, sys
        from persam_video.cli import main
        assert main({args!r}) == 0
        print({LOADED})
    """)
    assert sorted((tmp_path / "out").glob("*.png")), "the command wrote no mask"
    assert not loaded["torchvision"] and not loaded["segment_anything.predictor"], loaded
    assert not loaded["segment_anything.automatic_mask_generator"], loaded
    assert not loaded["torch._dynamo"], loaded


def test_segment_anything_names_still_import_after_persam_video():
    """A user of the library who imports persam_video first still gets segment_anything's own names."""
    got = fresh_python("""
        import json, sys
        import persam_video
        import segment_anything
        before = {name: name in sys.modules for name in ("torchvision", "segment_anything.predictor")}
        from segment_anything import SamPredictor, sam_model_registry
        build_sam = sys.modules["segment_anything.build_sam"]  # the package's name build_sam is a function
        from persam_video.model.sam_import import init_deferred
        print(json.dumps({"before": before, "after": "torchvision" in sys.modules, "deferred": init_deferred(),
                          "class": SamPredictor.__module__, "same": sam_model_registry is build_sam.sam_model_registry,
                          "generator": segment_anything.SamAutomaticMaskGenerator.__name__}))
    """)
    assert got["before"] == {"torchvision": False, "segment_anything.predictor": False}
    assert got["after"] and not got["deferred"]
    assert got["class"] == "segment_anything.predictor" and got["same"]
    assert got["generator"] == "SamAutomaticMaskGenerator"


def test_deferred_init_runs_once_and_reports_missing_names():
    """Threads asking at once all get the real class after one run of __init__; a missing name is an
    AttributeError; a star-import before any use sees the package's names."""
    got = fresh_python("""
        import json, sys, threading
        from persam_video.model.sam_import import defer_package_init, init_deferred
        import segment_anything
        deferred = init_deferred()
        found = []
        threads = [threading.Thread(target=lambda: found.append(segment_anything.SamPredictor)) for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        try:
            segment_anything.no_such_name
            missing = "no error"
        except AttributeError as exc:
            missing = str(exc)
        print(json.dumps({"deferred": deferred, "classes": len(set(found)), "count": len(found), "missing": missing,
                          "again": defer_package_init()}))
    """)
    assert got["deferred"] and got["classes"] == 1 and got["count"] == 4
    assert "no_such_name" in got["missing"]
    assert got["again"] is False
    star = fresh_python("""
        import json
        import persam_video
        namespace = {}
        exec("from segment_anything import *", namespace)
        print(json.dumps(sorted(k for k in ("SamPredictor", "sam_model_registry") if k in namespace)))
    """)
    assert star == ["SamPredictor", "sam_model_registry"]


def test_eager_imports_switch_turns_the_hook_off():
    """$PERSAM_VIDEO_EAGER_IMPORTS=1: segment_anything is imported the ordinary way."""
    got = fresh_python("""
        import json, sys
        import persam_video
        from persam_video.model.sam_import import init_deferred
        print(json.dumps({"deferred": init_deferred(), "torchvision": "torchvision" in sys.modules}))
    """, env_extra={"PERSAM_VIDEO_EAGER_IMPORTS": "1"})
    assert got == {"deferred": False, "torchvision": True}
