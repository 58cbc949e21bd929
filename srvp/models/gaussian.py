"""Diagonal Gaussians parameterised by a raw vector ``[loc, raw_scale]`` with ``scale = softplus(raw) + 1e-8``
(the authors' parameterisation), and their closed-form KL divergence and negative log-likelihood."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MIN_SCALE = 1e-8


def split_params(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(..., 2d)`` raw parameters -> ``loc`` and positive ``scale``, each ``(..., d)``."""
    loc, raw_scale = raw.chunk(2, dim=-1)
    return loc, F.softplus(raw_scale) + MIN_SCALE


def sample(raw: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
    """Reparameterised draw ``loc + scale * eps`` (or the mean) from raw parameters ``(..., 2d)``."""
    loc, scale = split_params(raw)
    if use_mean:
        return loc
    return loc + scale * torch.randn_like(loc)


def kl_divergence(loc_q: torch.Tensor, scale_q: torch.Tensor, loc_p: torch.Tensor | float = 0.0,
                  scale_p: torch.Tensor | float = 1.0) -> torch.Tensor:
    """Elementwise KL(N(loc_q, scale_q^2) || N(loc_p, scale_p^2)) in closed form:
    ``log(s_p/s_q) + (s_q^2 + (m_q - m_p)^2) / (2 s_p^2) - 1/2``."""
    loc_p = torch.as_tensor(loc_p, dtype=loc_q.dtype, device=loc_q.device)
    scale_p = torch.as_tensor(scale_p, dtype=loc_q.dtype, device=loc_q.device)
    var_ratio = (scale_q / scale_p).pow(2)
    mahalanobis = ((loc_q - loc_p) / scale_p).pow(2)
    return 0.5 * (var_ratio + mahalanobis - 1.0 - var_ratio.log())


def gaussian_nll(mean: torch.Tensor, target: torch.Tensor, scale: float) -> torch.Tensor:
    """Elementwise ``-log N(target; mean, scale^2)``."""
    return 0.5 * ((target - mean) / scale).pow(2) + math.log(scale) + 0.5 * math.log(2 * math.pi)
