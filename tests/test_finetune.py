"""Staged recipes: ``--init-from`` (weights only, checked against the run's model options) and the frame-autoencoder
stage (its objective written out by hand, its place in the step sequence, exact resume across the switch)."""

from __future__ import annotations

import pytest
import torch

from srvp.config import ModelConfig
from srvp.errors import CheckpointError, SrvpError
from srvp.models import gaussian
from srvp.models.srvp import SRVP
from srvp.pretrained import init_weights, load_pretrained
from srvp.training.autoencoder import FrameAutoencoder
from srvp.training.checkpoint import read_checkpoint
from srvp.training.trainer import Trainer, train
from tests.conftest import tiny_model_config
from tests.test_training import _srvp, tiny_run


def _predict(source, seed: int = 5) -> torch.Tensor:
    model = load_pretrained(source).model
    x = torch.rand(2, 3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(seed)
    return model.predict(x, horizon=3, n_samples=2)


@pytest.fixture(scope="module")
def source_run(tmp_path_factory):
    """A tiny trained run whose last.pt is the source of the fine-tuning tests."""
    out = tmp_path_factory.mktemp("source") / "run"
    train(tiny_run(out, steps=4), progress=False)
    return out


def test_init_from_then_zero_steps_predicts_bit_identically_to_the_source(source_run, tmp_path):
    result = _srvp("train", "--init-from", str(source_run / "last.pt"), "--steps", "0", "--decay-steps", "0",
                   "--out-dir", str(tmp_path / "ft"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert torch.equal(_predict(tmp_path / "ft" / "best.pt"), _predict(source_run / "last.pt"))
    saved = read_checkpoint(tmp_path / "ft" / "best.pt")["config"]
    # without --preset the source's configuration is the base; the run records where its weights came from
    assert saved["model"] == read_checkpoint(source_run / "last.pt")["config"]["model"]
    assert saved["train"]["init_from"] == str(source_run / "last.pt") and saved["train"]["steps"] == 0


def test_the_training_history_follows_the_weights_through_continuations_and_the_hub_layout(source_run, tmp_path):
    from srvp.pretrained import save_pretrained

    source = load_pretrained(source_run / "last.pt")
    assert [h["steps"] for h in source.history] == [4] and source.history[0]["train_cpu_seconds"] > 0
    cfg = tiny_run(tmp_path / "ft", steps=2, decay_steps=0, init_from=str(source_run / "last.pt"))
    train(cfg, progress=False, init_weights=init_weights(cfg.train.init_from, cfg.model))
    tuned = load_pretrained(tmp_path / "ft" / "last.pt")
    assert [(h["steps"], h["init_from"]) for h in tuned.history] == [(4, ""), (2, str(source_run / "last.pt"))]
    assert tuned.history[1]["recipe"]["planned_steps"] == 2 and tuned.history[1]["recipe"]["lr"] == cfg.train.lr
    save_pretrained(tuned.model, tuned.config, tmp_path / "hub", step=tuned.step, history=tuned.history)
    assert load_pretrained(tmp_path / "hub").history == tuned.history


def test_init_from_trains_from_the_source_weights_with_a_fresh_optimiser(source_run, tmp_path):
    source = read_checkpoint(source_run / "last.pt")
    cfg = tiny_run(tmp_path / "ft", steps=2, init_from=str(source_run / "last.pt"))
    trainer = Trainer(cfg, progress=False, init_weights=init_weights(cfg.train.init_from, cfg.model)).setup()
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(v, source["model"][k]), k
    assert trainer.step == 0 and not trainer.optimizer.state  # no optimiser state carried over


def test_init_from_a_mismatched_architecture_is_one_line(source_run, tmp_path):
    result = _srvp("train", "--preset", "cpu", "--init-from", str(source_run / "last.pt"), "--out-dir",
                   str(tmp_path / "ft"), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "does not match the run's model options" in lines[0] and "filters=16 vs 4" in lines[0]
    assert not (tmp_path / "ft").exists()
    # objective weights and the step size may change: they do not change what the weights mean
    tuned = ModelConfig(**{**tiny_model_config().__dict__, "obs_scale": 0.5, "beta_z": 3.0, "dt": 0.5})
    assert init_weights(source_run / "last.pt", tuned).state_dict.keys() == SRVP(tuned).state_dict().keys()
    with pytest.raises(CheckpointError, match="state_dim=5 vs 4"):
        init_weights(source_run / "last.pt", tiny_model_config(state_dim=5))


def test_init_from_the_authors_folder_and_without_weights(shared_dir, tmp_path):
    folder = shared_dir / "data" / "official-srvp" / "dcgan-mmnist"
    loaded = load_pretrained(folder)
    weights = init_weights(folder, loaded.config.model).state_dict
    for k, v in loaded.model.state_dict().items():
        assert torch.equal(weights[k], v), k
    cfg = tiny_run(tmp_path / "run", init_from=str(folder))
    with pytest.raises(SrvpError, match="its weights were not given"):
        Trainer(cfg, progress=False).setup()


def test_frame_autoencoder_objective_by_hand():
    """Window t: y_t ~ q(y | h(x_t..x_t+k-1)) through the model's q(y_1) network, x_t ~ N(g(y_t, w), scale^2)."""
    torch.manual_seed(0)
    model = SRVP(tiny_model_config(content_frames=2, obs_scale=0.3, beta_y=0.7)).double()
    x = torch.rand(2, 4, 1, 64, 64, dtype=torch.float64)
    torch.manual_seed(1)
    losses = FrameAutoencoder(model)(x, kl_scale=0.5)
    torch.manual_seed(1)  # the same draws: the content frames first, then the states
    hx = model.frame_encoder(x.reshape(8, 1, 64, 64))[0].reshape(2, 4, -1)
    w = model.infer_content(hx, random_frames=True)
    nll, kl = 0.0, 0.0
    params = torch.stack([model.posterior_y1(torch.cat([hx[:, t], hx[:, t + 1]], dim=1)) for t in range(3)], 1)
    y = gaussian.sample(params)
    # one decoder batch of the 2 x 3 windows, as the stage decodes them (batch norm in training mode)
    frames = model.frame_decoder(torch.cat([w.repeat_interleave(3, 0), y.reshape(6, -1)], dim=1), None)
    frames = frames.reshape(2, 3, 1, 64, 64)
    for t in range(3):
        nll = nll + ((x[:, t] - frames[:, t]) ** 2 / (2 * 0.09) + torch.log(torch.tensor(0.3)) +
                     0.5 * torch.log(torch.tensor(2 * torch.pi))).sum() / 2
        loc, raw = params[:, t].chunk(2, dim=-1)
        scale = torch.nn.functional.softplus(raw) + 1e-8
        kl = kl + (0.5 * (scale ** 2 + loc ** 2 - 1) - scale.log()).sum() / 2
    # the stage sums its terms in float32 (as the model's loss does)
    assert losses["nll"].item() == pytest.approx(nll.item(), rel=1e-6)
    assert losses["kl_y"].item() == pytest.approx(kl.item(), rel=1e-6)
    assert losses["total"].item() == pytest.approx((nll + 0.5 * 0.7 * kl).item(), rel=1e-6)


def test_the_autoencoder_stage_trains_the_frame_networks_only_then_the_whole_model(tmp_path):
    cfg = tiny_run(tmp_path / "run", steps=4, autoencoder_steps=2, decay_steps=0)
    trainer = Trainer(cfg, progress=False).setup()
    x = torch.rand(2, cfg.data.seq_len, 1, 64, 64)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    terms = trainer.train_step(x)
    assert set(terms) == {"total", "nll", "kl_y", "grad_norm"}
    after = trainer.model.state_dict()
    moved = {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}
    assert moved == {"frame_encoder", "frame_decoder", "content_proj", "content_out", "posterior_y1"}
    trainer.step = 2  # the full objective from autoencoder_steps on
    assert {"kl_z", "residual", "elbo"} <= set(trainer.train_step(x))
    assert "posterior_z_lstm" in {k.split(".")[0] for k in before if not torch.equal(before[k], after[k])}


def test_a_staged_run_stopped_in_its_first_stage_resumes_bit_identically(tmp_path):
    def staged(name):
        return tiny_run(tmp_path / name, steps=6, autoencoder_steps=3, decay_steps=0, checkpoint_interval=2)

    train(staged("full"), progress=False)
    first = Trainer(staged("cut"), progress=False)
    first.callbacks.append(lambda t: t.request_stop() if t.step == 2 else None)  # inside the stage
    first.fit()
    assert first.stopped_early and first.step == 2
    train(staged("cut"), resume=True, progress=False)
    full = read_checkpoint(tmp_path / "full" / "last.pt")["model"]
    resumed = read_checkpoint(tmp_path / "cut" / "last.pt")["model"]
    for k in full:
        assert torch.equal(full[k], resumed[k]), k


def test_autoencoder_steps_are_refused_for_svg_and_beyond_the_run():
    from srvp.config import RunConfig
    from srvp.errors import ConfigError

    with pytest.raises(ConfigError, match="is an SRVP recipe"):
        RunConfig.from_dict({"model": {"model": "svg"}, "train": {"autoencoder_steps": 5}})
    with pytest.raises(ConfigError, match="exceeds steps"):
        RunConfig.from_dict({"train": {"steps": 4, "decay_steps": 0, "autoencoder_steps": 5}})


def test_the_clip_length_curriculum_trains_on_the_first_frames_then_whole_clips(tmp_path, monkeypatch):
    cfg = tiny_run(tmp_path / "run", steps=4, decay_steps=0, short_clip_steps=2, short_clip_len=2)
    seen = []
    original = Trainer.train_step

    def recording(self, x):
        seen.append(x.clone())
        return original(self, x)

    monkeypatch.setattr(Trainer, "train_step", recording)
    train(cfg, progress=False)
    assert [x.shape[1] for x in seen] == [2, 2, cfg.data.seq_len, cfg.data.seq_len]
    short = seen[0]
    seen.clear()  # the short clips are the first frames of the clips the run would otherwise see
    train(tiny_run(tmp_path / "plain", steps=1, decay_steps=0), progress=False)
    assert seen[0].shape[1] == cfg.data.seq_len and torch.equal(seen[0][:, :2], short)


def test_the_curriculum_length_is_checked():
    from srvp.config import RunConfig
    from srvp.errors import ConfigError

    with pytest.raises(ConfigError, match="short_clip_len=1 must be between"):
        RunConfig.from_dict({"train": {"short_clip_steps": 5, "short_clip_len": 1}})
