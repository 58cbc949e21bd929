"""Requests that cannot fit in memory, or would run for hours by mistake, are refused at once with one line that
says what to lower, before anything is allocated."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from srvp.api import Predictor
from srvp.cli.main import main
from srvp.errors import ConfigError
from srvp.runtime import available_memory, frame_activations, generation_bytes, training_bytes
from tests.conftest import tiny_model_config
from tests.test_predict import save_tiny_checkpoint
from tests.test_training import tiny_run


def test_estimates_grow_with_the_request_and_count_every_layer():
    from srvp.models import build_model

    model = build_model(tiny_model_config())
    per_frame, pair, frame = frame_activations(model)
    assert frame == 64 * 64 and pair >= frame and per_frame > pair
    assert generation_bytes(model, 1, 20, 10) == pytest.approx(20 * generation_bytes(model, 1, 1, 10), rel=1e-6)
    assert training_bytes(model, 8, 10) > training_bytes(model, 4, 10) > 0
    state = torch.get_rng_state()
    frame_activations(model)
    assert torch.equal(state, torch.get_rng_state())  # measuring draws no random number


def test_an_impossible_prediction_is_refused_before_any_work(tmp_path):
    predictor = Predictor.from_checkpoint(save_tiny_checkpoint(tmp_path / "c.pt"), device="cpu")
    clip = torch.rand(1, 3, 1, 64, 64)
    samples = int(available_memory(torch.device("cpu")) // generation_bytes(predictor.model, 1, 1, 100)) * 4
    start = time.perf_counter()
    with pytest.raises(ConfigError, match="GiB of memory.*lower the number of samples") as error:
        predictor.predict(clip, horizon=100, n_samples=samples)
    assert time.perf_counter() - start < 5 and "\n" not in str(error.value)


def test_the_command_line_bounds_samples_and_horizon(tmp_path, capsys):
    checkpoint = save_tiny_checkpoint(tmp_path / "c.pt")
    clip = tmp_path / "clip.npy"
    np.save(clip, np.zeros((6, 64, 64), np.uint8))
    for option, value in (("--samples", "100000"), ("--horizon", "10000000")):
        assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(clip), option, value,
                     "--out", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and option in err and not (tmp_path / "out").exists()


def test_a_training_batch_that_cannot_fit_is_refused_before_the_first_step(tmp_path):
    from srvp.models import build_model

    model = build_model(tiny_model_config())
    batch = int(available_memory(torch.device("cpu")) // training_bytes(model, 1, 4)) * 4
    with pytest.raises(ConfigError, match="lower --batch-size"):
        from srvp.training.trainer import Trainer

        Trainer(tiny_run(tmp_path, batch_size=batch), progress=False).fit()
    assert not (tmp_path / "checkpoints").exists()
