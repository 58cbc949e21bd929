"""SRVP's mathematics: content invariance, Euler steps, variants, loss terms, sampling API, overfitting."""

import pytest
import torch
from torch import distributions as D

from srvp.config import ModelConfig
from srvp.models import gaussian
from srvp.models.srvp import SRVP
from tests.conftest import tiny_model_config


def _clip(B=2, T=6, C=1, S=64, seed=0):
    return torch.rand(B, T, C, S, S, generator=torch.Generator().manual_seed(seed))


def test_content_variable_is_permutation_invariant():
    torch.manual_seed(0)
    model = SRVP(tiny_model_config(content_frames=4)).eval()
    hx = torch.randn(3, 4, 16)
    w = model.infer_content(hx, random_frames=False)
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
        torch.testing.assert_close(model.infer_content(hx[:, perm], random_frames=False), w)
    # in training mode k distinct frames are drawn; with k = T that is every frame, in some order
    torch.testing.assert_close(model.infer_content(hx, random_frames=True), w, rtol=1e-5, atol=1e-6)
    # and it changes when a frame's content changes
    hx2 = hx.clone()
    hx2[:, 0] += 1
    assert not torch.allclose(model.infer_content(hx2, random_frames=False), w)


def test_random_content_frames_are_distinct_frames_of_the_clip():
    torch.manual_seed(0)
    model = SRVP(tiny_model_config(content_frames=2))
    hx = torch.arange(5.0).repeat(64, 1).unsqueeze(-1).expand(64, 5, 16).contiguous()  # frame t encodes t
    seen = set()
    for _ in range(20):
        # sum of content_proj over the chosen frames is linear in nothing simple; recover the chosen frames by
        # brute force over all pairs of distinct frames
        w = model.infer_content(hx, random_frames=True)
        for b in range(4):
            matches = [(i, j) for i in range(5) for j in range(i + 1, 5)
                       if torch.allclose(model.infer_content(hx[b:b + 1, [i, j]], random_frames=False), w[b:b + 1],
                                         atol=1e-6)]
            assert matches, "w must come from two distinct frames of the clip"
            seen.add(matches[0])
    assert len(seen) > 3  # the choice is random


def test_half_step_states_are_two_euler_half_steps_with_the_same_z():
    torch.manual_seed(0)
    model = SRVP(tiny_model_config()).eval()
    y1 = torch.randn(2, 4)
    q_z = torch.randn(2, 3, 6)
    roll = model.rollout(y1, 4, 0.5, q_z, use_mean=True, keep_intermediate=True)
    assert roll.y.shape == (2, 7, 4) and roll.residuals.shape == (2, 6, 4)
    y = y1
    for t in range(3):
        z = q_z[:, t, :3]  # posterior mean
        half = y + 0.5 * model.transition(torch.cat([y, z], -1))
        full = half + 0.5 * model.transition(torch.cat([half, z], -1))
        torch.testing.assert_close(roll.y[:, 2 * t + 1], half)
        torch.testing.assert_close(roll.y[:, 2 * t + 2], full)
        # the prior on z_t depends on the state at the previous integer time only
        torch.testing.assert_close(roll.prior_z_params[:, t], model.prior_z(y))
        y = full
    without = model.rollout(y1, 4, 0.5, q_z, use_mean=True)
    torch.testing.assert_close(without.y, roll.y[:, ::2])


def test_dt_must_be_inverse_integer():
    model = SRVP(tiny_model_config())
    with pytest.raises(Exception, match="1/n"):
        model.rollout(torch.zeros(1, 4), 3, 0.3)


@pytest.mark.parametrize("transition", ["residual", "mlp", "gru", "deterministic"])
@pytest.mark.parametrize("content", [True, False])
def test_forward_and_loss_shapes_for_every_variant(transition, content):
    torch.manual_seed(0)
    model = SRVP(tiny_model_config(transition=transition, content=content))
    x = _clip(B=2, T=5)
    out = model(x)
    assert out.frames.shape == x.shape and out.y.shape == (2, 5, 4)
    assert out.residuals.shape == (2, 4, 4)
    assert (out.w is None) == (not content)
    if transition == "deterministic":
        assert out.z is None and out.posterior_z_params is None
    else:
        assert out.z.shape == (2, 4, 3) and out.prior_z_params.shape == (2, 4, 6)
    losses = model.loss(x, out)
    assert set(losses) >= {"total", "nll", "kl_y", "kl_z", "residual", "elbo"}
    assert all(torch.isfinite(v) for v in losses.values())
    losses["total"].backward()
    futures = model.predict(x[:, :3], horizon=4, n_samples=3)
    assert futures.shape == (2, 3, 4, 1, 64, 64)
    assert futures.min() >= 0 and futures.max() <= 1


@pytest.mark.parametrize("architecture,frame_size,channels,skips", [("vgg", 64, 3, True), ("dcgan", 64, 1, True),
                                                                    ("mlp", 16, 1, False)])
def test_architectures(architecture, frame_size, channels, skips):
    torch.manual_seed(0)
    model = SRVP(tiny_model_config(architecture=architecture, frame_size=frame_size, channels=channels,
                                   skip_connections=skips, filters=4 if architecture != "mlp" else 32))
    x = _clip(B=2, T=4, C=channels, S=frame_size)
    out = model(x)
    assert out.frames.shape == x.shape
    assert model.predict(x[:, :2], 3, n_samples=2, dt=0.5, keep_intermediate=True).shape == \
        (2, 2, 6, channels, frame_size, frame_size)


def test_loss_terms_match_independent_computation():
    torch.manual_seed(0)
    cfg = tiny_model_config(obs_scale=0.3, beta_y=0.7, beta_z=2.0, residual_penalty=0.5)
    model = SRVP(cfg)
    x = _clip(B=3, T=4)
    out = model(x)
    losses = model.loss(x, out)
    nll = -D.Normal(out.frames, 0.3).log_prob(x).sum() / 3
    q_y = D.Normal(*gaussian.split_params(out.y1_params))
    kl_y = D.kl_divergence(q_y, D.Normal(0.0, 1.0)).sum() / 3
    kl_z = D.kl_divergence(D.Normal(*gaussian.split_params(out.posterior_z_params)),
                           D.Normal(*gaussian.split_params(out.prior_z_params))).sum() / 3
    res = torch.linalg.vector_norm(out.residuals, dim=-1).sum() / 3
    for name, ref in [("nll", nll), ("kl_y", kl_y), ("kl_z", kl_z), ("residual", res)]:
        torch.testing.assert_close(losses[name], ref, rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(losses["total"], nll + 0.7 * kl_y + 2.0 * kl_z + 0.5 * res, rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(losses["elbo"], -(nll + kl_y + kl_z), rtol=1e-5, atol=1e-3)


def test_residual_transition_reconstructs_from_posterior_z_and_y1():
    """forward() = decode(rollout(y1 ~ q(y1|x_1:k), z_t ~ q(z_t|x_1:t))) with means: checked step by step."""
    torch.manual_seed(0)
    model = SRVP(tiny_model_config()).eval()
    x = _clip(B=2, T=4)
    cond = model.condition(x)
    frames = model.sample_futures(cond, 0, use_mean=True, include_conditioning=True)[:, 0]
    hx, _ = model.encode(x)
    y = model.posterior_y1(hx[:, :2].reshape(2, -1))[:, :4]
    lstm, _ = model.posterior_z_lstm(hx)
    states = [y]
    for t in range(1, 4):
        z = model.posterior_z(lstm[:, t])[:, :3]
        y = y + model.transition(torch.cat([y, z], -1))
        states.append(y)
    w = model.content_out(model.content_proj(hx[:, -2:]).sum(1))
    ref = model.frame_decoder(torch.cat([w.repeat_interleave(4, 0), torch.stack(states, 1).reshape(8, 4)], 1))
    torch.testing.assert_close(frames, ref.reshape(2, 4, 1, 64, 64))


def test_prediction_encodes_conditioning_frames_once_and_batches_samples():
    torch.manual_seed(0)
    model = SRVP(tiny_model_config())
    calls = []
    model.frame_encoder.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    decoded = []
    model.frame_decoder.register_forward_hook(lambda m, i, o: decoded.append(i[0].shape[0]))
    out = model.predict(_clip(B=2, T=5), horizon=7, n_samples=10)
    assert out.shape == (2, 10, 7, 1, 64, 64)
    assert calls == [2 * 5]  # one encoder pass over the conditioning frames
    assert decoded == [2 * 10 * 7]  # one decoder pass over all samples and frames
    assert model.training  # predict() restores the mode


def test_intermediate_frames_and_means_are_consistent():
    torch.manual_seed(0)
    model = SRVP(tiny_model_config()).eval()
    x = _clip(B=2, T=3)
    cond = model.condition(x)
    fine = model.sample_futures(cond, 4, dt=0.25, use_mean=True, keep_intermediate=True)
    coarse = model.sample_futures(cond, 4, dt=0.25, use_mean=True)
    assert fine.shape[2] == 16 and coarse.shape[2] == 4
    torch.testing.assert_close(fine[:, :, 3::4], coarse)
    # means are deterministic; samples are not
    torch.testing.assert_close(model.sample_futures(cond, 4, use_mean=True), model.sample_futures(cond, 4,
                                                                                                 use_mean=True))
    a, b = model.sample_futures(cond, 4, n_samples=2)[:, 0], model.sample_futures(cond, 4, n_samples=2)[:, 1]
    assert not torch.allclose(a, b)


def test_tiny_model_overfits_one_clip():
    from srvp.data.idx import load_embedded_digits
    from srvp.data.moving_mnist import MovingMNIST

    torch.manual_seed(0)
    clip = MovingMNIST(load_embedded_digits("train")[:50], seq_len=6, num_digits=1, seed=3)[0]
    x = clip.float().div(255).unsqueeze(0).repeat(4, 1, 1, 1, 1)
    model = SRVP(ModelConfig(filters=8, frame_dim=32, state_dim=8, noise_dim=4, inference_hidden=32,
                             forward_hidden=32, content_frames=2, obs_scale=0.1))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    first = None
    for _ in range(150):
        opt.zero_grad()
        out = model(x)
        loss = model.loss(x, out)
        loss["total"].backward()
        opt.step()
        mse = float((out.frames.detach() - x).pow(2).mean())
        first = first if first is not None else (float(loss["total"].detach()), mse)
    final_loss, final_mse = float(loss["total"].detach()), mse
    assert final_mse < first[1] / 10, (first, final_mse)
    assert final_loss < first[0] / 5, (first, final_loss)


def test_predict_returns_a_plain_tensor_unless_gradients_are_asked_for():
    torch.manual_seed(0)
    model = SRVP(tiny_model_config())
    x = torch.rand(2, 3, 1, 64, 64)
    futures = model.predict(x, horizon=2, n_samples=2)
    assert not futures.requires_grad and futures.numpy().shape == (2, 2, 2, 1, 64, 64)
    model.predict(x, horizon=2, requires_grad=True).sum().backward()
    assert model.frame_decoder.blocks[-1].weight.grad is not None
