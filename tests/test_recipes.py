"""Training recipes: learning-rate warm-up and cosine schedule, KL annealing, gradient clipping, weight average and
the training clock. They change how the model is trained, never what it computes."""

import pytest
import torch

from srvp.config import RunConfig, preset
from srvp.errors import ConfigError
from srvp.models import build_model
from srvp.training.checkpoint import CheckpointManager, read_checkpoint
from srvp.training.trainer import Trainer, ema_model, kl_factor, lr_factor, train
from tests.conftest import tiny_model_config
from tests.test_training import tiny_run


def test_cosine_schedule_after_warmup_equals_pytorchs_cosine_annealing():
    steps, warmup = 50, 10
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps - warmup, eta_min=0.0)
    for step in range(warmup, steps + 1):
        assert lr_factor(step, steps, 0, warmup, "cosine") == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        reference.step()
    assert [lr_factor(s, steps, 0, warmup, "cosine") for s in range(warmup)] == [(s + 1) / warmup
                                                                                 for s in range(warmup)]


def test_warmup_then_the_papers_schedule():
    assert [lr_factor(s, 10, 4, warmup_steps=2) for s in (0, 1, 2, 5, 6, 7, 9, 10)] == [0.5, 1, 1, 1, 1, 0.75,
                                                                                           0.25, 0]


def test_kl_annealing_weight_and_loss():
    assert [kl_factor(s, 4) for s in (0, 1, 3, 4, 100)] == [0.25, 0.5, 1, 1, 1]
    assert kl_factor(0, 0) == 1.0
    torch.manual_seed(0)
    model = build_model(tiny_model_config(beta_z=2.0, beta_y=1.5)).train()
    x = torch.rand(2, 4, 1, 64, 64)
    out = model(x)
    full, half = model.loss(x, out), model.loss(x, out, kl_scale=0.5)
    expected = half["nll"] + 0.5 * (1.5 * half["kl_y"] + 2.0 * half["kl_z"]) + half["residual"]
    assert torch.allclose(half["total"], expected)
    assert torch.allclose(full["total"] - half["total"], 0.5 * (1.5 * full["kl_y"] + 2.0 * full["kl_z"]), atol=1e-2)
    assert torch.equal(full["elbo"], half["elbo"])  # the ELBO itself is never annealed


def test_weight_average_equals_a_hand_computed_average():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    decay = 0.9
    ema = ema_model(model, decay)
    expected = {k: v.clone().float() for k, v in model.state_dict().items()}
    for n in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(4, 3))  # batch norm statistics move too
        ema.update_parameters(model)
        if n == 0:  # the first update copies the weights
            expected = {k: v.clone().float() for k, v in model.state_dict().items()}
            continue
        d = min(decay, (1 + n) / (10 + n))
        for k, v in model.state_dict().items():
            expected[k] = v.float() if not v.is_floating_point() else d * expected[k] + (1 - d) * v
    for k, v in ema.module.state_dict().items():
        assert torch.allclose(v.float(), expected[k], atol=1e-6), k


def test_recipe_options_train_resume_and_ship_the_average(tmp_path):
    cfg = tiny_run(tmp_path / "run", steps=6, decay_steps=0, lr_schedule="cosine", warmup_steps=2,
                   kl_warmup_steps=3, grad_clip=1.0, ema_decay=0.9, adam_beta2=0.99, adam_eps=1e-6)
    trainer = Trainer(cfg, progress=False, callbacks=[lambda t: t.request_stop() if t.step == 3 else None])
    trainer.fit()
    assert trainer.step == 3 and trainer.train_seconds > 0
    assert trainer.optimizer.param_groups[0]["betas"] == (0.9, 0.99)
    assert trainer.optimizer.param_groups[0]["eps"] == 1e-6
    saved = read_checkpoint(CheckpointManager(tmp_path / "run" / "checkpoints").latest_good()[1])
    assert saved["extra"]["train_seconds"] == pytest.approx(trainer.train_seconds)

    resumed = Trainer(cfg, resume=True, progress=False)
    resumed.fit()
    assert resumed.step == 6 and resumed.train_seconds > trainer.train_seconds
    last = read_checkpoint(tmp_path / "run" / "last.pt")
    for k, v in resumed.ema.module.state_dict().items():  # last.pt holds the average, not the raw weights
        assert torch.equal(last["model"][k], v), k
    raw = resumed.model.state_dict()
    assert any(not torch.equal(raw[k], v) for k, v in last["model"].items() if v.is_floating_point())

    reference = Trainer(tiny_run(tmp_path / "ref", steps=6, decay_steps=0, lr_schedule="cosine", warmup_steps=2,
                                 kl_warmup_steps=3, grad_clip=1.0, ema_decay=0.9, adam_beta2=0.99, adam_eps=1e-6),
                        progress=False)
    reference.fit()
    for k, v in reference.ema.module.state_dict().items():  # stopping and resuming changes nothing
        assert torch.equal(v, resumed.ema.module.state_dict()[k]), k


def test_gradient_clipping_bounds_the_norm(tmp_path):
    trainer = Trainer(tiny_run(tmp_path, grad_clip=1e-3), progress=False).setup()
    torch.manual_seed(0)
    trainer.train_step(torch.rand(2, 4, 1, 64, 64))
    norm = torch.nn.utils.get_total_norm([p.grad for p in trainer.model.parameters() if p.grad is not None])
    assert float(norm) == pytest.approx(1e-3, rel=1e-3)


def test_resume_without_the_average_is_refused(tmp_path):
    train(tiny_run(tmp_path, steps=2), progress=False)
    with pytest.raises(Exception, match="weight average"):
        Trainer(tiny_run(tmp_path, steps=4, ema_decay=0.9), resume=True, progress=False).fit()


@pytest.mark.parametrize("train_overrides, message", [
    ({"lr_schedule": "cosine", "decay_steps": 10}, "belongs to the linear-decay schedule"),
    ({"ema_decay": 1.0}, "ema_decay"),
    ({"adam_beta2": 1.0}, "adam_beta2"),
    ({"warmup_steps": 990, "decay_steps": 20, "steps": 1000}, "exceed"),
    ({"grad_clip": -1.0}, "grad_clip"),
    ({"kl_warmup_steps": -1}, "kl_warmup_steps"),
    ({"frame_lr_scale": 0.0}, "frame_lr_scale"),
])
def test_impossible_recipes_are_config_errors(train_overrides, message):
    data = preset("cpu").to_dict()
    data["train"].update(train_overrides)
    with pytest.raises(ConfigError, match=message):
        RunConfig.from_dict(data)


def test_every_preset_keeps_the_papers_terms():
    """Recipes are training choices: no SRVP preset changes beta_y or the residual penalty (the paper's 1)."""
    from srvp.config import PRESETS

    for name in PRESETS:
        cfg = preset(name)
        if cfg.model.model == "srvp":
            assert cfg.model.beta_y == 1.0 and cfg.model.residual_penalty == 1.0, name


def test_frame_networks_learn_at_their_own_rate(tmp_path):
    """Adam's first update moves every parameter with a gradient by about its group's learning rate (m / sqrt(v) is
    +-1), so with frame_lr_scale 4 the frame encoder and decoder move about 4 times as far as the rest."""
    moves = {}
    for scale in (1.0, 4.0):
        trainer = Trainer(tiny_run(tmp_path / str(scale), warmup_steps=0, lr_schedule="cosine", decay_steps=0,
                                   steps=100, lr=1e-3, frame_lr_scale=scale), progress=False).setup()
        before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
        torch.manual_seed(0)
        trainer.train_step(torch.rand(2, 4, 1, 64, 64))
        moved = {n: (p.detach() - before[n]).abs() for n, p in trainer.model.named_parameters()}
        frame = torch.cat([m[m > 0] for n, m in moved.items() if n.startswith(("frame_encoder.", "frame_decoder."))])
        rest = torch.cat([m[m > 0] for n, m in moved.items() if not n.startswith(("frame_encoder.", "frame_decoder."))])
        moves[scale] = (float(frame.median()), float(rest.median()))
        assert len(trainer.optimizer.param_groups) == (1 if scale == 1.0 else 2)
    assert moves[1.0][0] == pytest.approx(1e-3, rel=0.05) and moves[1.0][1] == pytest.approx(1e-3, rel=0.05)
    assert moves[4.0][0] == pytest.approx(4e-3, rel=0.05) and moves[4.0][1] == pytest.approx(1e-3, rel=0.05)


def test_resume_with_another_frame_lr_scale_is_refused(tmp_path):
    train(tiny_run(tmp_path, steps=2), progress=False)
    with pytest.raises(Exception, match="frame_lr_scale"):
        Trainer(tiny_run(tmp_path, steps=4, frame_lr_scale=2.0), resume=True, progress=False).fit()
