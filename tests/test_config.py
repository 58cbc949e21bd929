"""Configs: presets, JSON round trip, command-line overrides and one-line errors for impossible values."""

import argparse
import dataclasses
import json

import pytest

from srvp.config import PRESETS, RunConfig, StepSize, add_config_arguments, apply_overrides, derive_preset, preset
from srvp.errors import ConfigError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid_and_round_trip_through_json(name, tmp_path):
    cfg = preset(name)
    cfg.to_json(tmp_path / "c.json")
    assert RunConfig.from_json(tmp_path / "c.json") == cfg


def test_paper_hyperparameters():
    kth, bair, sm = preset("kth"), preset("bair"), preset("smmnist")
    assert (kth.model.dt, kth.model.residual_gain, kth.model.obs_scale, kth.train.batch_size) == (0.5, 1.2, 0.2, 100)
    assert (kth.model.state_dim, kth.model.content_frames, kth.data.cond_frames) == (50, 3, 10)
    assert (bair.model.channels, bair.model.content_frames, bair.data.cond_frames, bair.model.dt) == (3, 2, 2, 0.5)
    assert (sm.model.beta_z, sm.model.state_dim, sm.train.batch_size, sm.train.lr) == (2.0, 20, 128, 3e-4)
    assert (sm.model.inference_hidden, sm.model.forward_hidden, sm.model.forward_layers) == (256, 512, 4)


def test_a_derived_preset_is_its_base_with_the_stated_changes_and_leaves_the_base_alone():
    base = json.dumps(PRESETS["smmnist"], sort_keys=True)
    derived = derive_preset("smmnist", data={"dataset": "mmnist", "test_seq_len": 100}, train={"lr": 1e-4})
    assert json.dumps(PRESETS["smmnist"], sort_keys=True) == base
    differs = {(section, key) for section, values in derived.items() for key, value in values.items()
               if PRESETS["smmnist"][section].get(key, "unset") != value}
    assert differs == {("data", "dataset"), ("data", "test_seq_len"), ("train", "lr")}
    mmnist = preset("mmnist")
    assert (mmnist.data.dataset, mmnist.data.test_seq_len, mmnist.train.steps) == ("mmnist", 100, 900_000)
    assert mmnist.model == preset("smmnist").model
    with pytest.raises(ValueError, match="no such preset"):
        derive_preset("nope")
    with pytest.raises(ValueError, match="a section other than"):
        derive_preset("smmnist", modle={"filters": 8})


def test_the_preset_docstring_lists_every_preset():
    if preset.__doc__ is None:  # python -OO
        pytest.skip("docstrings stripped")
    assert preset.__doc__.split("Presets: ")[1].rstrip(".").split(", ") == [f"``{name}``" for name in PRESETS]


@pytest.mark.parametrize("text,n", [("1", 1), ("0.5", 2), ("1/4", 4), ("0.2", 5)])
def test_dt_parsing(text, n):
    assert StepSize.parse(text).n == n


@pytest.mark.parametrize("text", ["0.3", "0", "-1", "2", "abc", "1/0", "nan"])
def test_impossible_dt_is_rejected(text):
    with pytest.raises(ConfigError, match="dt"):
        StepSize.parse(text)


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(argv)


def test_command_line_overrides_only_given_options():
    argv = ["--state-dim", "7", "--dt", "1/4", "--content", "false", "--skip-connections", "false"]
    cfg = apply_overrides(preset("kth"), _parse(argv))
    assert (cfg.model.state_dim, cfg.model.dt, cfg.model.content) == (7, 0.25, False)
    assert cfg.model.obs_scale == 0.2 and cfg.train.batch_size == 100  # untouched preset values stay


@pytest.mark.parametrize("argv,message", [
    (["--dt", "0.3"], "dt"),
    (["--state-dim", "0"], "state_dim"),
    (["--state-dim", "x"], "integer"),
    (["--transition", "lstm"], "transition"),
    (["--transition", "gru", "--dt", "0.5"], "gru"),
    (["--skip-connections", "true", "--content", "false"], "skip_connections"),
    (["--architecture", "dcgan", "--frame-size", "32"], "frame_size"),
    (["--precision", "fp8"], "precision"),
    (["--content", "maybe"], "true or false"),
    (["--decay-steps", "5", "--steps", "2"], "decay_steps"),
])
def test_bad_values_give_one_line_errors(argv, message):
    with pytest.raises(ConfigError, match=message) as info:
        apply_overrides(preset("smmnist"), _parse(argv))
    assert "\n" not in str(info.value)


def test_unknown_keys_and_bad_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"state_dimm": 3}}))
    with pytest.raises(ConfigError, match="state_dimm"):
        RunConfig.from_json(bad)
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        RunConfig.from_json(bad)
    bad.write_text(json.dumps({"optim": {}}))
    with pytest.raises(ConfigError, match="unknown section"):
        RunConfig.from_json(bad)
    with pytest.raises(ConfigError, match="not found"):
        RunConfig.from_json(tmp_path / "missing.json")


def test_a_key_given_twice_in_a_json_file_is_refused(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"train": {"steps": 10, "lr": 0.001, "steps": 20}}')
    with pytest.raises(ConfigError, match="'steps' appears twice") as error:
        RunConfig.from_json(path)
    assert str(path) in str(error.value)


def test_file_values_are_validated_after_the_command_line_overrides(tmp_path):
    """preset -> file -> flags, validated once: a file with steps=2 is fine when the flags make it consistent."""
    from srvp.cli.train import add_arguments, build_config

    path = tmp_path / "c.json"
    path.write_text('{"train": {"steps": 2}}')
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    cfg = build_config(parser.parse_args(["--config", str(path), "--decay-steps", "1"]))
    assert (cfg.train.steps, cfg.train.decay_steps) == (2, 1)
    with pytest.raises(ConfigError, match="decay_steps=100000 exceeds steps=2"):
        build_config(parser.parse_args(["--config", str(path)]))


def test_saved_data_paths_resolve_from_any_folder(tmp_path, monkeypatch):
    from srvp.cli.train import absolute_data_paths

    monkeypatch.chdir(tmp_path)
    cfg = preset("cpu")
    cfg.data.data_dir, cfg.data.test_set = "data", "sets/test.npz"
    absolute_data_paths(cfg)
    assert cfg.data.data_dir == str(tmp_path / "data") and cfg.data.test_set == str(tmp_path / "sets/test.npz")
    assert cfg.data.digits == "auto"


def _bounded_fields():
    from srvp.config import DataConfig, ModelConfig, TrainConfig

    for section, cls in (("model", ModelConfig), ("data", DataConfig), ("train", TrainConfig)):
        for f in dataclasses.fields(cls):
            if "bound" in f.metadata:
                yield section, f.name, f.metadata["bound"]


@pytest.mark.parametrize("section,name,bound", list(_bounded_fields()))
def test_numeric_bounds_come_from_field_metadata(section, name, bound):
    """Every field with a ``bound`` in its metadata refuses a value just outside it, naming the field."""
    bad = {"positive": 0, "non-negative": -1, "unit": 1.0, "seed": 2**32}[bound]
    data = preset("svg-cpu" if name.startswith("svg_") else "cpu").to_dict()  # a model that uses the option
    data[section][name] = type(data[section][name])(bad)
    with pytest.raises(ConfigError, match=rf"{name}=.* must be"):
        RunConfig.from_dict(data, "test")


def test_an_option_of_another_model_family_is_refused():
    """SVG-LP has no content variable, transition or state size; SRVP has no SVG LSTMs: setting one is an error,
    not a silently ignored value."""
    svg = preset("svg-cpu").to_dict()
    svg["model"]["content"] = False
    with pytest.raises(ConfigError, match="content=False is an option of the srvp model; the svg model does not"):
        RunConfig.from_dict(svg, "test")
    srvp = preset("cpu").to_dict()
    srvp["model"]["svg_rnn_hidden"] = 128
    with pytest.raises(ConfigError, match="svg_rnn_hidden=128 is an option of the svg model; the srvp model"):
        RunConfig.from_dict(srvp, "test")
    for name in PRESETS:  # every preset uses only its own family's options
        preset(name).validate(name)
