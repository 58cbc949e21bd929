"""SVG-LP (srvp.models.svg): interface, autoregression (versus SRVP's latent dynamics), KL, and a tiny overfit."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from srvp.config import ModelConfig, preset
from srvp.errors import ConfigError
from srvp.models import build_model
from srvp.models.srvp import SRVP
from srvp.models.svg import SVGLP


def small_svg(**overrides) -> SVGLP:
    fields = dict(model="svg", architecture="dcgan", filters=8, frame_dim=32, noise_dim=4, svg_rnn_hidden=32,
                  beta_z=1e-4, content_frames=3)
    cfg = ModelConfig(**{**fields, **overrides})
    return build_model(cfg)


def default_init(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """PyTorch's default initialisation everywhere, then batch-norm statistics set to those of one training pass on
    ``x``, in evaluation mode. SVG's N(0, 0.02) weights and unit running variances make an untrained model almost
    blind to z and to its inputs (outputs ~0.5 everywhere), which would hide the dependencies the tests look for."""
    for m in model.modules():
        if m is not model and hasattr(m, "reset_parameters"):
            m.reset_parameters()
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one pass the running statistics are that pass's
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def moving_square(n_frames: int = 8, size: int = 64) -> torch.Tensor:
    """One clip ``(1, n_frames, 1, size, size)``: a bright 12x12 square moving diagonally."""
    x = torch.zeros(1, n_frames, 1, size, size)
    for t in range(n_frames):
        x[0, t, 0, 8 + 4 * t: 20 + 4 * t, 6 + 3 * t: 18 + 3 * t] = 1.0
    return x


def test_build_and_shapes():
    torch.manual_seed(0)
    model = small_svg()
    assert isinstance(model, SVGLP)
    x = torch.rand(2, 6, 1, 64, 64)
    out = model(x)
    assert out.frames.shape == x.shape
    assert torch.equal(out.frames[:, 0], x[:, 0])  # frame 1 is given, never predicted
    assert out.posterior_z_params.shape == out.prior_z_params.shape == (2, 5, 8)
    assert out.z.shape == (2, 5, 4)
    terms = model.loss(x, out)
    assert {"total", "mse", "nll", "kl_z", "elbo"} <= set(terms)
    assert all(v.ndim == 0 and torch.isfinite(v) for v in terms.values())
    # mse as SVG computes it: per-frame mean squared error, summed over the predicted frames
    expected_mse = sum(((out.frames[:, t] - x[:, t]) ** 2).mean() for t in range(1, 6))
    torch.testing.assert_close(terms["mse"], expected_mse)
    torch.testing.assert_close(terms["total"], terms["mse"] + 1e-4 * terms["kl_z"])
    terms["total"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    model.train()
    futures = model.predict(x[:, :4], horizon=5, n_samples=3)
    assert model.training  # predict restores the mode
    assert futures.shape == (2, 3, 5, 1, 64, 64)
    assert futures.min() >= 0 and futures.max() <= 1
    model.eval()
    with torch.no_grad():
        cond = model.condition(x[:, :4])
        with_cond = model.sample_futures(cond, 5, n_samples=2, include_conditioning=True, dt=1.0, cond_dt=1)
    assert with_cond.shape == (2, 2, 9, 1, 64, 64)
    assert torch.equal(with_cond[:, 1, :4], x[:, :4])
    with pytest.raises(ConfigError, match="dt=0.5"):
        model.sample_futures(cond, 5, dt=0.5)
    with pytest.raises(ConfigError, match="discrete-time"):
        model(x, dt=0.5)
    with pytest.raises(ConfigError, match="dt=0.5"):
        small_svg(dt=0.5)


def test_samples_are_batched_per_sequence_and_differ():
    """Samples of one sequence differ; with use_mean they all equal the single mean prediction."""
    torch.manual_seed(1)
    x = torch.rand(2, 4, 1, 64, 64)
    model = default_init(small_svg(noise_dim=16), x)
    with torch.no_grad():
        cond = model.condition(x)
        mean1 = model.sample_futures(cond, 4, n_samples=1, use_mean=True)
        mean3 = model.sample_futures(cond, 4, n_samples=3, use_mean=True)
        random3 = model.sample_futures(cond, 4, n_samples=3)
    torch.testing.assert_close(mean3, mean1.expand_as(mean3), atol=1e-5, rtol=0)
    assert (random3[:, 0] - random3[:, 1]).abs().max() > 1e-4


def test_mlp_architecture_without_skips():
    cfg = ModelConfig(model="svg", architecture="mlp", frame_size=16, filters=32, frame_dim=8, noise_dim=3,
                      svg_rnn_hidden=16, content_frames=2)
    model = build_model(cfg)
    x = torch.rand(3, 5, 1, 16, 16)
    assert model.loss(x, model(x))["total"].isfinite()
    assert model.predict(x[:, :2], 3, n_samples=2).shape == (3, 2, 3, 1, 16, 16)


def test_training_pass_is_causal():
    """Teacher forcing: the prediction of x_t depends on x_1..x_t only (x_t through the posterior)."""
    torch.manual_seed(2)
    x = torch.rand(1, 6, 1, 64, 64)
    model = default_init(small_svg(), x)  # evaluation mode: frames do not interact through batch statistics
    x_changed = x.clone()
    x_changed[:, 4] = torch.rand_like(x[:, 4])  # change frame 5
    torch.manual_seed(3)
    a = model(x).frames
    torch.manual_seed(3)
    b = model(x_changed).frames
    torch.testing.assert_close(a[:, :4], b[:, :4], atol=0, rtol=0)
    assert (a[:, 4:] - b[:, 4:]).abs().amax(dim=(0, 2, 3, 4)).min() > 1e-4  # frames 5 and 6 change


def _perturb_decoder_output(module: torch.nn.Module, perturb):
    """Wrap ``module.forward`` so that ``perturb(call_index, output)`` can change its output."""
    original = module.forward
    calls = {"n": 0}

    def forward(*args, **kwargs):
        out = perturb(calls["n"], original(*args, **kwargs))
        calls["n"] += 1
        return out

    module.forward = forward
    return calls


def test_svg_feeds_its_predictions_back():
    """Changing the k-th generated frame (at the decoder's output) changes every later frame, not earlier ones."""
    torch.manual_seed(4)
    x = torch.rand(2, 3, 1, 64, 64)
    model = default_init(small_svg(), x)
    k, horizon = 2, 5
    with torch.no_grad():
        cond = model.condition(x)
        torch.manual_seed(5)
        base = model.sample_futures(cond, horizon, n_samples=2)
        calls = _perturb_decoder_output(model.frame_decoder, lambda i, out: out + 0.25 if i == k else out)
        torch.manual_seed(5)
        changed = model.sample_futures(cond, horizon, n_samples=2)
    assert calls["n"] == horizon  # one decoding per generated frame
    torch.testing.assert_close(changed[:, :, :k], base[:, :, :k], atol=0, rtol=0)
    torch.testing.assert_close(changed[:, :, k], base[:, :, k] + 0.25)
    per_frame = (changed - base).abs().amax(dim=(0, 1, 3, 4, 5))
    assert (per_frame[k + 1:] > 1e-5).all(), per_frame


def test_srvp_does_not_feed_its_predictions_back():
    """SRVP decodes latent states: changing the k-th generated frame leaves all others untouched."""
    torch.manual_seed(6)
    cfg = ModelConfig(filters=8, frame_dim=16, state_dim=6, noise_dim=4, inference_hidden=16, forward_hidden=16,
                      content_frames=2)
    x = torch.rand(2, 3, 1, 64, 64)
    model = default_init(SRVP(cfg), x)
    k, horizon, samples = 2, 5, 2

    def perturb(_, out):
        out = out.clone()
        out.view(-1, horizon, *out.shape[1:])[:, k] += 0.25
        return out

    with torch.no_grad():
        cond = model.condition(x)
        torch.manual_seed(7)
        base = model.sample_futures(cond, horizon, n_samples=samples)
        calls = _perturb_decoder_output(model.frame_decoder, perturb)
        torch.manual_seed(7)
        changed = model.sample_futures(cond, horizon, n_samples=samples)
    assert calls["n"] == 1  # every frame decoded at once from the latent trajectory
    torch.testing.assert_close(changed[:, :, k], base[:, :, k] + 0.25)
    others = [t for t in range(horizon) if t != k]
    torch.testing.assert_close(changed[:, :, others], base[:, :, others], atol=0, rtol=0)


def test_kl_matches_monte_carlo():
    """The loss's KL(q || p) between the [mu, logvar] Gaussians equals E_q[log q(z) - log p(z)] (Monte Carlo with
    torch.distributions), within 5 standard errors."""
    torch.manual_seed(8)
    model = small_svg()
    x = torch.rand(2, 4, 1, 64, 64)
    out = model(x)
    gen = torch.Generator().manual_seed(9)
    post = torch.randn(out.posterior_z_params.shape, generator=gen)
    prior = torch.randn(out.prior_z_params.shape, generator=gen) * 0.8
    out = dataclasses.replace(out, posterior_z_params=post, prior_z_params=prior)
    kl = model.loss(x, out)["kl_z"].item()

    q_mu, q_logvar = post.double().chunk(2, dim=-1)
    p_mu, p_logvar = prior.double().chunk(2, dim=-1)
    q = torch.distributions.Normal(q_mu, (0.5 * q_logvar).exp())
    p = torch.distributions.Normal(p_mu, (0.5 * p_logvar).exp())
    z = q.sample((40_000,))
    per_draw = (q.log_prob(z) - p.log_prob(z)).sum(dim=(2, 3)).mean(dim=1)  # sum over t, dims; mean over batch
    estimate, stderr = per_draw.mean().item(), per_draw.std().item() / per_draw.numel() ** 0.5
    assert kl > 1.0  # a non-trivial divergence
    assert abs(kl - estimate) < 5 * stderr, (kl, estimate, stderr)


def test_overfits_one_clip():
    torch.manual_seed(10)
    model = small_svg()
    x = moving_square(n_frames=6)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    losses = []
    for _ in range(150):
        terms = model.loss(x, model(x))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        losses.append(terms["mse"].item())
    assert losses[-1] < losses[0] / 20, (losses[0], losses[-1])


def test_svg_presets_build():
    for name in ("svg-smmnist", "svg-mmnist", "svg-cpu"):
        cfg = preset(name)
        assert cfg.model.model == "svg" and cfg.model.beta_z == 1e-4 and cfg.model.noise_dim == 10
        assert cfg.model.content_frames == cfg.data.cond_frames
