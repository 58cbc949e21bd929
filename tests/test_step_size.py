"""``dt`` as one parsed value (``srvp.config.StepSize``) with one support check in the model contract
(``VideoPredictor.check_step``) and one message, whichever way the step arrives: a config file, the command line, the
Python API or the model itself (issue 25, item 3)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from srvp.api import Predictor
from srvp.cli.main import main
from srvp.config import ModelConfig, RunConfig, StepSize, add_config_arguments, apply_overrides, distinct_steps, preset
from srvp.errors import ConfigError
from srvp.models import SRVP, SVGLP, build_model
from tests.conftest import tiny_model_config
from tests.test_predict import moving_square, save_tiny_checkpoint


@pytest.mark.parametrize("text, n, label", [("1", 1, "1"), ("1/1", 1, "1"), ("0.5", 2, "1/2"), ("1/2", 2, "1/2"),
                                            ("1/3", 3, "1/3"), ("0.25", 4, "1/4"), ("0.2", 5, "1/5")])
def test_a_step_is_parsed_once_into_n_dt_and_label(text, n, label):
    step = StepSize.parse(text)
    assert step == StepSize(n) and step.n == n and step.label == label and str(step) == label
    assert step.dt == 1 / n and StepSize.from_dt(step.dt) == step and StepSize.of(text) == step
    assert StepSize.of(step) is step and StepSize.of(1 / n) == step
    assert StepSize.argument(text) == step


@pytest.mark.parametrize("text", ["0.3", "0", "-1/2", "2", "abc", "1/0", "nan", "1/3.5", ""])
def test_what_is_not_one_over_n_is_a_one_line_error(text):
    with pytest.raises(ConfigError, match="dt=") as info:
        StepSize.parse(text)
    assert "\n" not in str(info.value)
    with pytest.raises(argparse.ArgumentTypeError, match="dt="):
        StepSize.argument(text)


@pytest.mark.parametrize("n", [0, -2, 1.5, True, "2"])
def test_a_step_needs_a_positive_integer_number_of_euler_steps(n):
    with pytest.raises(ConfigError, match="positive integer"):
        StepSize(n)


def test_a_step_is_frozen_and_hashable():
    step = StepSize(2)
    with pytest.raises(AttributeError):
        step.n = 3  # type: ignore[misc]
    assert len({StepSize(2), StepSize.parse("0.5"), StepSize.parse("1/2")}) == 1


def test_steps_given_twice_on_the_command_line_are_refused_whatever_their_spelling():
    assert distinct_steps([StepSize(1), StepSize(2)]) == [StepSize(1), StepSize(2)] and distinct_steps(None) is None
    with pytest.raises(ConfigError, match="--test-dt: the step size 0.5 is given twice"):
        distinct_steps([StepSize.parse("1/2"), StepSize(3), StepSize.parse("0.5")], "--test-dt")


def test_the_config_produces_its_step():
    assert preset("kth").model.step_size == StepSize(2) and preset("smmnist").model.step_size == StepSize(1)
    cfg = RunConfig.from_dict({"model": {"dt": "1/4"}})  # text in a config file is read as a step too
    assert cfg.model.dt == 0.25 and cfg.model.step_size == StepSize(4)


def _unsupported(cls, config: ModelConfig, step: str = "1/2") -> str:
    with pytest.raises(ConfigError) as info:
        cls.check_step(config, step)
    return str(info.value)


def test_svg_lp_with_dt_one_half_is_refused_when_its_config_is_validated():
    """It passed validation before (the refusal came only when the model was built)."""
    message = _unsupported(SVGLP, ModelConfig(model="svg"))
    assert message == "dt=0.5: SVG-LP is a discrete-time model (continuous-time prediction is an SRVP feature), " \
                      "so only dt=1 is possible"
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({"model": {"model": "svg", "dt": 0.5}}, "svg.json")
    assert str(info.value) == f"svg.json: {message}"
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    with pytest.raises(ConfigError) as info:
        apply_overrides(preset("svg-cpu"), parser.parse_args(["--dt", "1/2"]))
    assert str(info.value) == f"command line: {message}"
    with pytest.raises(ConfigError) as info:
        ModelConfig(model="svg", dt=0.5).validate()
    assert str(info.value) == f"model config: {message}"
    apply_overrides(preset("svg-cpu"), parser.parse_args(["--dt", "1"]))  # dt = 1 is SVG-LP's one step


def test_every_model_says_which_steps_it_accepts_through_the_contract():
    residual, gru = tiny_model_config(), tiny_model_config(transition="gru")
    assert SRVP.check_step(residual, "1/3") == StepSize(3) and SRVP.check_step(residual) == StepSize(1)
    assert SRVP.check_step(gru, 1.0) == StepSize(1) and SVGLP.check_step(ModelConfig(model="svg")) == StepSize(1)
    assert _unsupported(SRVP, gru) == "dt=0.5: the gru transition replaces the state instead of taking an Euler " \
                                      "step, so only dt=1 is possible"
    assert build_model(residual).supports_dt and not build_model(gru).supports_dt
    assert not build_model(ModelConfig(model="svg", filters=4, frame_dim=16, svg_rnn_hidden=8)).supports_dt


def test_an_unsupported_step_is_the_same_message_from_the_model_the_api_and_the_command_line(tmp_path, capsys):
    checkpoint = save_tiny_checkpoint(tmp_path / "gru.pt", transition="gru")
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    message = _unsupported(SRVP, predictor.model.config)
    clip = moving_square(10)
    x = predictor.prepare(clip)[:, :3]  # (1, 3, C, 64, 64)
    with pytest.raises(ConfigError) as info:
        predictor.predict(x, 2, dt=0.5)
    assert str(info.value) == message
    with pytest.raises(ConfigError) as info:
        predictor.model.sample_futures(predictor.model.condition(x), 2, dt=StepSize(2))
    assert str(info.value) == message
    np.save(tmp_path / "clip.npy", clip)
    for command in (["predict", "--input", str(tmp_path / "clip.npy"), "--out", str(tmp_path / "out")],
                    ["evaluate", "--out", str(tmp_path / "eval")]):
        assert main([command[0], "--checkpoint", str(checkpoint), *command[1:], "--dt", "1/2"]) == 2
        assert capsys.readouterr().err.splitlines() == [f"srvp {command[0]}: error: {message}"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "eval").exists()
