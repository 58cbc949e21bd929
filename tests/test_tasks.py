"""The task layer (srvp/tasks/): requests are checked when they are made, with the command line's one-line messages,
and the command line builds exactly the request a Python caller would."""

from __future__ import annotations

import dataclasses

import pytest

from srvp.cli.main import build_parser
from srvp.config import StepSize
from srvp.errors import ConfigError
from srvp.tasks.predict import MAX_HORIZON, MAX_SAMPLES, PredictRequest


@pytest.mark.parametrize("values, message", [
    (dict(horizon=0), f"--horizon 0 must be between 1 and {MAX_HORIZON}"),
    (dict(samples=0), f"--samples 0 must be between 1 and {MAX_SAMPLES}"),
    (dict(start=-1), "--start -1 must be 0 or more"),
    (dict(fps=float("nan")), "--fps nan must be a finite number in (0, 1000]"),
    (dict(scale=65), "--scale 65 must be an integer from 1 to 64"),
    (dict(seed=-1), "--seed=-1 must be an integer from 0 to"),
    (dict(interpolate="b.npy", dt=StepSize(2)), "--dt is not used by --interpolate"),
    (dict(interpolate="b.npy", steps=1), "--steps 1 must be between 2 and 100"),
    (dict(swap_content="b.npy", interpolate="c.npy"), "--swap-content and --interpolate are two modes"),
    (dict(metric="lpips"), "--metric 'lpips': choose one of psnr, ssim"),
    (dict(format="avi"), "--format 'avi': choose one of gif, mp4"),
    (dict(dt="1/3.5"), "must be 1/n for a positive integer n"),
])
def test_a_request_is_checked_when_it_is_made(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        PredictRequest("clip.npy", **values)


def test_a_request_is_a_frozen_record_with_the_modes_defaults():
    request = PredictRequest("clip.npy", dt="1/2")
    assert request.dt == StepSize(2) and request.mode == "predict" and request.n_samples == 10
    assert PredictRequest("a.npy", swap_content="b.npy").n_samples == 1
    assert PredictRequest("a.npy", interpolate="b.npy", samples=0).mode == "interpolate"  # samples unused there
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.horizon = 3  # type: ignore[misc]


def test_the_command_lines_defaults_are_the_requests():
    args = build_parser().parse_args(["predict", "--checkpoint", "m", "--input", "clip.npy"])
    from srvp.cli.predict import REQUEST_OPTIONS

    assert PredictRequest(**{name: getattr(args, name) for name in REQUEST_OPTIONS}) == PredictRequest("clip.npy", "m")


@pytest.mark.parametrize("values, message", [
    (dict(preset="nope"), "unknown preset 'nope'"),
    (dict(models=("srvp", "convlstm")), "unknown model 'convlstm'; choose among"),
    (dict(seconds=float("inf")), "--seconds inf must be a positive finite number"),
    (dict(seeds=(1, 1)), "--seeds '1,1': a seed appears twice"),
    (dict(seeds=()), "--seeds : give distinct training seeds"),
    (dict(steps=0), "--steps=0 must be positive"),
    (dict(n_samples=0), "--samples=0 must be positive"),
    (dict(test_dts=("1/2", 0.5)), "--test-dt: the step size 0.5 is given twice"),
])
def test_comparison_settings_are_checked_when_they_are_made(values, message):
    from srvp.tasks.compare import CompareSettings

    with pytest.raises(ConfigError, match=message):
        CompareSettings(**values)


def test_comparison_settings_name_the_given_checkpoints_after_the_models():
    from srvp.tasks.compare import CompareSettings

    settings = CompareSettings(models=["srvp", "svg"], checkpoints={"svg": "a.pt", "mine": "b.pt"}, test_dts=["1/2"])
    assert settings.names == ["srvp", "svg", "mine"] and settings.test_dts == (StepSize(2),)


@pytest.mark.parametrize("command", ["compare", "quickstart"])
def test_help_states_each_default_once(command, capsys):
    """The commands that show their defaults add argparse's "(default: ...)" only where the help says none itself,
    and never "(default: None)" (it used to read "(default: the preset's) (default: None)")."""
    from srvp.cli.main import main

    assert main([command, "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text and "(default: [])" not in text and "(default: False)" not in text
    assert "(default: the preset's) (default" not in text and "as srvp evaluate) (default" not in text
