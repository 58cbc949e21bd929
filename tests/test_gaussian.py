"""The closed-form KL and NLL against torch.distributions and a Monte Carlo estimate."""

import math

import torch
from torch import distributions as D

from srvp.models import gaussian


def test_kl_matches_torch_distributions_and_monte_carlo():
    g = torch.Generator().manual_seed(0)
    loc_q, loc_p = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    scale_q, scale_p = torch.rand(5, 3, generator=g) + 0.3, torch.rand(5, 3, generator=g) + 0.3
    ours = gaussian.kl_divergence(loc_q, scale_q, loc_p, scale_p)
    ref = D.kl_divergence(D.Normal(loc_q, scale_q), D.Normal(loc_p, scale_p))
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    # Monte Carlo: E_q[log q - log p] with 400k draws per element
    q, p = D.Normal(loc_q.double(), scale_q.double()), D.Normal(loc_p.double(), scale_p.double())
    x = q.sample((400_000,))
    mc = (q.log_prob(x) - p.log_prob(x)).mean(0)
    stderr = (q.log_prob(x) - p.log_prob(x)).std(0) / math.sqrt(400_000)
    assert torch.all((mc - ours.double()).abs() < 5 * stderr + 1e-4)


def test_kl_against_standard_normal_default():
    loc, scale = torch.tensor([0.5, -1.0]), torch.tensor([0.7, 2.0])
    ref = D.kl_divergence(D.Normal(loc, scale), D.Normal(0.0, 1.0))
    torch.testing.assert_close(gaussian.kl_divergence(loc, scale), ref)


def test_nll_matches_torch_distributions():
    g = torch.Generator().manual_seed(1)
    mean, target = torch.rand(4, 6, generator=g), torch.rand(4, 6, generator=g)
    for scale in (1.0, 0.2, 0.71):
        ref = -D.Normal(mean, scale).log_prob(target)
        torch.testing.assert_close(gaussian.gaussian_nll(mean, target, scale), ref)


def test_split_params_softplus_scale_and_sampling_statistics():
    raw = torch.tensor([[1.0, -2.0, 0.0, 3.0]])
    loc, scale = gaussian.split_params(raw)
    torch.testing.assert_close(loc, torch.tensor([[1.0, -2.0]]))
    torch.testing.assert_close(scale, torch.nn.functional.softplus(torch.tensor([[0.0, 3.0]])) + 1e-8)
    torch.manual_seed(0)
    draws = gaussian.sample(raw.expand(200_000, 4))
    torch.testing.assert_close(draws.mean(0), loc[0], atol=0.02, rtol=0)
    torch.testing.assert_close(draws.std(0), scale[0], atol=0.02, rtol=0.01)
    torch.testing.assert_close(gaussian.sample(raw, use_mean=True), loc)
