"""`srvp import-official`: the authors' checkpoints, converted through the command line, reproduce the outputs
the official code produced (vectors.npz, written by the authors' code with distribution means) to 1e-4."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from srvp.api import Predictor
from srvp.cli.main import main
from srvp.training.checkpoint import load_checkpoint, read_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"
OFFICIAL = SHARED / "data" / "official-srvp"
FOLDERS = sorted(p.name for p in OFFICIAL.iterdir() if p.is_dir()) if OFFICIAL.is_dir() else []
TOLERANCE = 1e-4


def time_first_to_batch_first(array: np.ndarray) -> torch.Tensor:
    """The official vectors are (T, B, C, H, W); ours (B, T, C, H, W)."""
    return torch.from_numpy(array).transpose(0, 1)


def test_official_folders_present():
    if not OFFICIAL.is_dir():
        pytest.skip(f"{OFFICIAL} is absent (the shared folder is expected next to the checkout)")
    assert FOLDERS, f"{OFFICIAL} holds no checkpoint folders"


@pytest.mark.parametrize("name", FOLDERS)
def test_imported_checkpoint_reproduces_official_outputs(name, tmp_path, capsys):
    folder = OFFICIAL / name
    out = tmp_path / "ours.pt"
    rc = main(["import-official", "--state-dict", str(folder / "model.pt"), "--config", str(folder / "config.json"),
               "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    assert "wrote" in capsys.readouterr().out

    model = load_checkpoint(out).model
    options = json.loads((folder / "config.json").read_text())
    assert model.config.dt == pytest.approx(1.0 / options["n_euler_steps"])
    assert model.config.frame_size == options["nx"] and model.config.channels == options["nc"]
    state = read_checkpoint(out)
    assert state["step"] == 0 and "optimizer" not in state

    vectors = np.load(folder / "vectors.npz")
    x_cond = time_first_to_batch_first(vectors["x_cond"])
    expected = {k: time_first_to_batch_first(vectors[k]) for k in ("reconstruction", "prediction",
                                                                     "prediction_half_dt")}
    horizon = expected["prediction"].shape[1]
    with torch.no_grad():
        reconstruction = model.sample_futures(model.condition(x_cond), 0, use_mean=True,
                                              include_conditioning=True)[:, 0]
        prediction = model.predict(x_cond, horizon, use_mean=True)[:, 0].clamp(0, 1)
        half = model.predict(x_cond, horizon, use_mean=True, dt=model.config.dt / 2)[:, 0].clamp(0, 1)
    for key, ours in (("reconstruction", reconstruction), ("prediction", prediction), ("prediction_half_dt", half)):
        assert ours.shape == expected[key].shape, key
        assert (ours - expected[key]).abs().max().item() < TOLERANCE, key

    # The same numbers through the high-level API (which also accepts uint8 and decodes intermediate states).
    predictor = Predictor.from_checkpoint(out, device="cpu")
    assert torch.allclose(predictor.reconstruct(x_cond), expected["reconstruction"], atol=TOLERANCE, rtol=0)
    assert torch.allclose(predictor.predict(x_cond, horizon, use_mean=True)[:, 0], expected["prediction"],
                          atol=TOLERANCE, rtol=0)
    n = round(1 / model.config.dt) * 2
    fine = predictor.predict(x_cond, horizon, use_mean=True, dt=model.config.dt / 2, keep_intermediate=True)
    assert fine.shape[2] == horizon * n
    assert torch.allclose(fine[:, 0, n - 1::n], expected["prediction_half_dt"], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", FOLDERS[:1])
def test_import_rejects_config_that_does_not_match_weights(name, tmp_path, capsys):
    folder = OFFICIAL / name
    options = json.loads((folder / "config.json").read_text())
    options["ny"] = options["ny"] + 3  # the state size no longer matches the weights
    bad_config = tmp_path / "config.json"
    bad_config.write_text(json.dumps(options))
    out = tmp_path / "ours.pt"
    rc = main(["import-official", "--state-dict", str(folder / "model.pt"), "--config", str(bad_config),
               "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "do not match" in err and "with other shapes" in err and str(bad_config) in err
    assert not out.exists()


@pytest.mark.parametrize("name", FOLDERS[:1])
def test_import_rejects_missing_option_and_truncated_weights(name, tmp_path, capsys):
    folder = OFFICIAL / name
    options = json.loads((folder / "config.json").read_text())
    del options["nz"]
    no_nz = tmp_path / "config.json"
    no_nz.write_text(json.dumps(options))
    out = tmp_path / "ours.pt"
    assert main(["import-official", "--state-dict", str(folder / "model.pt"), "--config", str(no_nz),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nz" in err

    truncated = tmp_path / "model.pt"
    truncated.write_bytes((folder / "model.pt").read_bytes()[:5000])
    assert main(["import-official", "--state-dict", str(truncated), "--config", str(folder / "config.json"),
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(truncated) in err and "truncated or corrupt" in err
    assert not out.exists()


@pytest.mark.parametrize("name", FOLDERS[:1])
def test_import_rejects_state_dict_with_missing_parameter(name, tmp_path, capsys):
    folder = OFFICIAL / name
    state = torch.load(folder / "model.pt", weights_only=True)
    dropped = sorted(state)[0]
    del state[dropped]
    partial = tmp_path / "model.pt"
    torch.save(state, partial)
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    rc = main(["import-official", "--state-dict", str(partial), "--config", str(tmp_path / "config.json"),
               "--out", str(tmp_path / "ours.pt")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "1 missing" in err


@pytest.mark.parametrize("name,dataset,protocol", [("dcgan-mmnist", "smmnist", (5, 25)), ("vgg-kth", "kth", (10, 40)),
                                                   ("vgg-bair", "bair", (2, 30))])
def test_the_paper_protocol_travels_with_an_imported_model(name, dataset, protocol):
    """The authors' files say the training clip length (15, 20, 12); the test clips of the paper are longer
    (SM-MNIST 5 -> 20, KTH 10 -> 30, BAIR 2 -> 28): the import sets the dataset's protocol, not the training
    length."""
    from srvp.models.official import config_from_official

    if not OFFICIAL.is_dir():
        pytest.skip(f"{OFFICIAL} is absent")
    options = json.loads((OFFICIAL / name / "config.json").read_text())
    cfg = config_from_official(options)
    assert cfg.data.dataset == dataset and (cfg.data.cond_frames, cfg.data.test_seq_len) == protocol
    assert cfg.data.seq_len == options["seq_len"]  # training clips as the authors trained
    # conditioned otherwise than the paper: no protocol to borrow, predict as far as it was trained
    other = config_from_official({**options, "nt_cond": protocol[0] + 1})
    assert other.data.test_seq_len == max(protocol[0] + 2, options["seq_len"])


def test_evaluate_says_which_protocol_it_runs(tmp_path, capsys):
    if not OFFICIAL.is_dir():
        pytest.skip(f"{OFFICIAL} is absent")
    out = tmp_path / "ours.pt"
    folder = OFFICIAL / "dcgan-mmnist"
    assert main(["import-official", "--state-dict", str(folder / "model.pt"), "--config", str(folder / "config.json"),
                 "--out", str(out)]) == 0
    rc = main(["evaluate", "--checkpoint", str(out), "--samples", "2", "--max-sequences", "2", "--no-progress",
               "--no-elbo", "--out", str(tmp_path / "eval")])
    assert rc == 0
    err = capsys.readouterr().err
    assert "5 conditioning -> 20 predicted frames, best of 2 samples (the paper's smmnist protocol)" in err
