"""Options are defined once (TrackerOptions / ModelSpec fields); every command's flags come from them."""
from __future__ import annotations

from dataclasses import asdict, fields

import pytest

from persam_video import cli
from persam_video.cli import davis as davis_cli
from persam_video.cli import demo as demo_cli
from persam_video.cli import segment as segment_cli
from persam_video.cli.common import flag_name
from persam_video.model.loading import ModelSpec
from persam_video.options import OptionError, TrackerOptions, option_fields


def other_value(name, default, meta):
    """A valid value different from the default, and the flag words that set it."""
    if isinstance(default, bool):
        return True, [flag_name(name)]
    if meta.get("choices"):
        value = next(c for c in meta["choices"] if c != default)
        return value, [flag_name(name), value]
    value = {"topk": 3, "redetect_ratio": 0.5, "quality_gate": 0.7, "box_growth": 2.5, "fit_lr": 0.001}.get(name)
    if value is None:
        value = default + 4
    return value, [flag_name(name), str(value)]


def all_changed():
    """Every TrackerOptions field set to a non-default value: (expected options, argv words)."""
    values, argv = {}, []
    for name, default, meta in option_fields(TrackerOptions):
        values[name], words = other_value(name, default, meta)
        argv += words
    return TrackerOptions(**values), argv


def test_every_field_has_help_and_the_defaults_are_the_public_recipe():
    for name, _default, meta in option_fields(TrackerOptions):
        assert meta["help"], name
    plain = TrackerOptions()
    assert (plain.method, plain.topk, plain.margin, plain.anchor, plain.box_clip) == ("persam-f", 1, 10,
                                                                                      "box-centre", False)


@pytest.mark.parametrize("command", [["segment", "v.mp4", "--mask", "m.png", "--out", "o"],
                                     ["demo"],
                                     ["davis", "run", "--davis-root", "D", "--out", "o"]])
def test_every_field_has_a_flag_on_every_tracking_command(command):
    expected, argv = all_changed()
    args = cli.build_parser().parse_args(command + argv)
    from persam_video.cli.common import model_spec, tracker_options
    assert tracker_options(args) == expected
    assert len(fields(TrackerOptions)) == len(asdict(expected))
    defaults = cli.build_parser().parse_args(command)
    assert tracker_options(defaults) == TrackerOptions()
    assert model_spec(defaults) == ModelSpec()


def test_segment_flags_reach_the_tracker(monkeypatch, tmp_path):
    expected, argv = all_changed()
    seen = {}

    def spy(video, out, prompts, options, model, **kwargs):
        seen["options"] = options
        raise SystemExit(0)

    monkeypatch.setattr(segment_cli, "segment_video", spy)
    monkeypatch.setattr(segment_cli, "open_frames", lambda *a, **k: None)
    monkeypatch.setattr(segment_cli, "build_prompts", lambda *a, **k: None)
    monkeypatch.setattr(segment_cli, "load_model", lambda *a, **k: None)
    with pytest.raises(SystemExit):
        cli.main(["segment", "v.mp4", "--mask", "m.png", "--out", str(tmp_path / "o")] + argv)
    assert seen["options"] == expected


def test_davis_run_hands_the_options_to_the_runner(monkeypatch, tmp_path):
    expected, argv = all_changed()
    seen = {}

    def spy(davis_root, subset, sequences, out, options, model, **kwargs):
        seen.update(options=options, model=model)
        raise SystemExit(0)

    monkeypatch.setattr(davis_cli, "run_davis", spy)
    with pytest.raises(SystemExit):
        cli.main(["davis", "run", "--davis-root", "D", "--out", str(tmp_path / "o"), "--model-type", "vit_b",
                  "--device", "cpu"] + argv)
    assert seen["options"] == expected
    assert seen["model"] == ModelSpec(model_type="vit_b", checkpoint=None, device="cpu")


def test_demo_flags_reach_the_tracker(monkeypatch, tmp_path):
    expected, argv = all_changed()
    seen = {}

    def spy(args, progress=True):
        seen["options"] = demo_cli.tracker_options(args)
        raise SystemExit(0)

    monkeypatch.setattr(demo_cli, "load_model", spy)
    with pytest.raises(SystemExit):
        cli.main(["demo", "--out", str(tmp_path / "d")] + argv)
    assert seen["options"] == expected


def test_a_library_error_names_the_option_and_the_cli_names_the_flag(capsys, tmp_path):
    with pytest.raises(OptionError) as info:
        TrackerOptions(margin=-1)
    assert "--" not in str(info.value) and "margin" in str(info.value)
    code = cli.main(["segment", "v.mp4", "--mask", "m.png", "--out", str(tmp_path / "o"), "--margin", "-1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "persam-video: error: --margin must be a number of pixels >= 0, not -1"
