"""SVG-LP: stochastic video generation with a learned prior (Denton & Fergus, 2018), the image-autoregressive
baseline of the SRVP paper, with the same interface as :class:`srvp.models.srvp.SRVP`.

Notation (batch-first, ``T`` frames, 1-based times as in the papers)::

    h_t = enc(x_t)                      (B, T, frame_dim)   DCGAN / VGG encoder, tanh output (g_dim = 128)
    q(z_t | x_1:t)   = N(mu, exp(logvar))   posterior LSTM fed with h_t,      t = 2..T
    p(z_t | x_1:t-1) = N(mu, exp(logvar))   learned prior LSTM fed with h_t-1, t = 2..T
    g_t = predictor(h_t-1, z_t)          (B, frame_dim)      predictor LSTM, tanh output
    x_t = dec(g_t, skips)                (B, C, H, W)        decoder with skip connections

Training uses teacher forcing, as SVG does: ``h_t-1`` is always the encoding of the ground-truth previous frame
and ``z_t`` comes from the posterior, so every LSTM runs over the whole clip in one call and every frame is decoded
in one batch. Generation is autoregressive: after the conditioning frames each predicted frame is decoded, then
re-encoded to feed the next step (this is the cost that the SRVP paper contrasts with its latent dynamics).

Facts taken from the authors' paper and code (``edenton/svg``: ``train_svg_lp.py``, ``models/lstm.py``):
``g_dim`` 128, ``z_dim`` 10 on SM-MNIST, LSTMs of 256 cells, a 2-layer predictor and 1-layer prior and posterior,
each LSTM preceded by a linear embedding, Gaussian heads giving ``(mu, logvar)``, predictor output ``tanh(linear)``;
loss ``sum_t mean_pixels (x_t - x^_t)^2 + beta * sum_t KL(q || p) / B`` with ``beta = 1e-4``; Adam with lr 2e-3,
batch 100, 15-frame clips (5 conditioning + 10 predicted); N(0, 0.02) initialisation of conv and linear weights
(PyTorch defaults for the LSTM cells).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from srvp.config import ModelConfig, StepSize
from srvp.models import gaussian
from srvp.models.base import VideoPredictor, register_model
from srvp.models.nets import build_frame_decoder, build_frame_encoder, init_conv_weights

LSTMState = tuple[torch.Tensor, torch.Tensor]  # (h, c), each (layers, B, hidden)


def sample_logvar(params: torch.Tensor, use_mean: bool = False) -> torch.Tensor:
    """Reparameterised draw ``mu + exp(logvar / 2) * eps`` from ``(..., 2 nz)`` raw parameters ``[mu, logvar]``."""
    mu, logvar = params.chunk(2, dim=-1)
    if use_mean:
        return mu
    return mu + (0.5 * logvar).exp() * torch.randn_like(mu)


class GaussianLSTM(nn.Module):
    """Linear embedding, stacked LSTM, linear head to ``[mu, logvar]`` (SVG's prior and posterior networks).

    ``(B, T, in_dim)`` and an optional state -> ``(B, T, 2 out_dim)`` and the new state.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 2 * out_dim)  # SVG's separate mu and logvar layers, concatenated

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


class PredictorLSTM(nn.Module):
    """Linear embedding, stacked LSTM, ``tanh(linear)`` output: ``(B, T, in_dim)`` -> ``(B, T, out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int, hidden: int, layers: int):
        super().__init__()
        self.embed = nn.Linear(in_dim, hidden)
        self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, out_dim), nn.Tanh())

    def forward(self, x: torch.Tensor, state: LSTMState | None = None) -> tuple[torch.Tensor, LSTMState]:
        out, state = self.lstm(self.embed(x), state)
        return self.head(out), state


@dataclass
class SVGForwardOutput:
    """What :meth:`SVGLP.forward` computes from a clip of ``T`` frames."""

    frames: torch.Tensor  # (B, T, C, H, W): x_1 (given, never predicted) then the predictions of x_2..x_T
    z: torch.Tensor  # (B, T-1, nz) posterior draws, t = 2..T
    posterior_z_params: torch.Tensor  # (B, T-1, 2 nz) [mu, logvar] of q(z_t | x_1:t)
    prior_z_params: torch.Tensor  # (B, T-1, 2 nz) [mu, logvar] of p(z_t | x_1:t-1)


@dataclass
class SVGConditioning:
    """What generation needs from the conditioning frames, computed once (:meth:`SVGLP.condition`)."""

    frames: torch.Tensor  # (B, n_cond, C, H, W) the conditioning frames themselves
    hx: torch.Tensor  # (B, n_cond, frame_dim) their encodings
    posterior_z_params: torch.Tensor | None  # (B, n_cond-1, 2 nz); None when n_cond = 1
    prior_state: LSTMState | None  # prior LSTM state after h_1..h_{n_cond-1}; None when n_cond = 1
    skips: list[torch.Tensor] | None  # each (B, c, h, w): encoder features of the last conditioning frame
    n_cond: int

    @property
    def batch_size(self) -> int:
        return self.hx.shape[0]

    def repeat(self, n: int) -> SVGConditioning:
        """Each sequence repeated ``n`` times consecutively (batch ``B*n``), to draw ``n`` samples in one pass."""
        rep = lambda t, dim=0: None if t is None else t.repeat_interleave(n, dim=dim)  # noqa: E731
        state = None if self.prior_state is None else (rep(self.prior_state[0], 1), rep(self.prior_state[1], 1))
        skips = None if self.skips is None else [rep(s) for s in self.skips]
        return replace(self, frames=rep(self.frames), hx=rep(self.hx),
                       posterior_z_params=rep(self.posterior_z_params), prior_state=state, skips=skips)


@register_model("svg")
class SVGLP(VideoPredictor):
    """SVG-LP built from a :class:`~srvp.config.ModelConfig` with ``model="svg"`` (registered as ``svg``).

    Fields used: ``architecture``, ``channels``, ``frame_size``, ``filters``, ``frame_dim`` (g_dim), ``noise_dim``
    (z_dim), ``svg_rnn_hidden``, ``svg_predictor_layers``, ``svg_latent_layers``, ``beta_z`` (beta, 1e-4 in SVG),
    ``obs_scale`` (only for the reported Gaussian ``nll``) and ``content_frames`` (read as SVG's ``n_past`` for the
    skip connections in training, see :meth:`training_skip_frames`); ``dt`` must be 1 (a discrete-time model,
    :meth:`step_limit`). The DCGAN and VGG decoders always take skip connections, as in SVG; the mlp architecture
    has none. SRVP's own options (``skip_connections``, ``content``, ``state_dim``, ``transition``, ... the fields
    whose metadata names the srvp family) are refused by :meth:`~srvp.config.ModelConfig.validate` unless left at
    their defaults.
    """

    @classmethod
    def step_limit(cls, config: ModelConfig) -> str:
        """SVG-LP is a discrete-time model: the only step it has is one frame."""
        return "SVG-LP is a discrete-time model (continuous-time prediction is an SRVP feature)"

    def __init__(self, config: ModelConfig):
        super().__init__()
        config.validate()  # a one-line ConfigError for an impossible config (a step below one frame included)
        self.config = c = config
        self.use_skips = c.architecture != "mlp"
        hidden = c.svg_rnn_hidden
        self.frame_encoder = build_frame_encoder(c.architecture, c.channels, c.frame_size, c.frame_dim, c.filters)
        self.frame_decoder = build_frame_decoder(c.architecture, c.channels, c.frame_size, c.frame_dim, c.filters,
                                                 self.use_skips)
        self.posterior = GaussianLSTM(c.frame_dim, c.noise_dim, hidden, c.svg_latent_layers)
        self.prior = GaussianLSTM(c.frame_dim, c.noise_dim, hidden, c.svg_latent_layers)
        self.predictor = PredictorLSTM(c.frame_dim + c.noise_dim, c.frame_dim, hidden, c.svg_predictor_layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """SVG's initialisation: N(0, 0.02) for every conv and linear weight, N(1, 0.02) batch-norm scales, zero
        biases; the LSTM cells keep PyTorch's defaults."""
        for module in (self.frame_encoder, self.frame_decoder, self.posterior, self.prior, self.predictor):
            init_conv_weights(module)

    # ------------------------------------------------------------------------------------------------------------
    # Steps
    # ------------------------------------------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Frames ``(B, T, C, H, W)`` -> encodings ``(B, T, frame_dim)`` and skip features ``(B, T, c, h, w)``
        (deepest first; ``None`` for the mlp architecture)."""
        B, T = x.shape[:2]
        hx, skips = self.frame_encoder(x.reshape(B * T, *x.shape[2:]))
        if not self.use_skips:
            return hx.reshape(B, T, -1), None
        return hx.reshape(B, T, -1), [s.reshape(B, T, *s.shape[1:]) for s in skips]

    def decode(self, g: torch.Tensor, skips: list[torch.Tensor] | None) -> torch.Tensor:
        """Predictor outputs ``(N, frame_dim)`` and skips ``(N, c, h, w)`` -> frames ``(N, C, H, W)`` in [0, 1]."""
        return self.frame_decoder(g, skips)

    def training_skip_frames(self, n_frames: int) -> torch.Tensor:
        """0-based index of the frame whose encoder features are the skips for the prediction of frame ``t``,
        for t = 2..n_frames: ``min(t - 1, n_past)`` in 1-based terms, with ``n_past = content_frames``.

        Decision: skips come from the last ground-truth frame the model has seen when it predicts ``x_t``: the
        previous frame while ``x_t`` is a conditioning frame, then the last conditioning frame ``x_{n_past}``,
        exactly as at test time (skips of the last conditioning frame, kept for the whole future). The authors'
        code differs by one frame: it keeps the features of the frame fed at step ``n_past - 1``, i.e.
        ``x_{n_past - 1}``, the second to last conditioning frame, because the skip is only refreshed while
        ``i < n_past``. We follow the SVG paper's description ("the last ground truth frame") and the task's
        specification (skips from the last conditioning frame).
        """
        t = torch.arange(2, n_frames + 1)
        return torch.clamp(t - 1, max=self.config.content_frames) - 1

    # ------------------------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, dt: StepSize | float | None = None) -> SVGForwardOutput:
        """Teacher-forced pass over a clip ``(B, T, C, H, W)``: predictions of ``x_2..x_T`` from the ground-truth
        previous frames and posterior draws of ``z`` (``dt`` other than 1 is refused by :meth:`step_size`)."""
        self.step_size(dt)
        if x.shape[1] < 2:
            raise ValueError(f"SVG-LP needs clips of at least 2 frames, got {x.shape[1]}")
        hx, skips = self.encode(x)
        post, _ = self.posterior(hx[:, 1:])
        prior, _ = self.prior(hx[:, :-1])
        z = sample_logvar(post)
        frames = self.teacher_forced_frames(x, hx, skips, z)
        return SVGForwardOutput(frames=frames, z=z, posterior_z_params=post, prior_z_params=prior)

    def teacher_forced_frames(self, x: torch.Tensor, hx: torch.Tensor, skips: list[torch.Tensor] | None,
                              z: torch.Tensor) -> torch.Tensor:
        """``x_1`` then the predictions of ``x_2..x_T`` ``(B, T, C, H, W)`` from the encodings ``hx`` ``(B, T,
        frame_dim)`` of the ground-truth previous frames and ``z`` ``(B, T-1, nz)``."""
        B, T = x.shape[:2]
        g, _ = self.predictor(torch.cat([hx[:, :-1], z], dim=-1))
        if skips is not None:
            idx = self.training_skip_frames(T).to(x.device)
            skips = [s[:, idx].reshape(B * (T - 1), *s.shape[2:]) for s in skips]
        pred = self.decode(g.reshape(B * (T - 1), -1), skips).reshape(B, T - 1, *x.shape[2:])
        return torch.cat([x[:, :1].to(pred.dtype), pred], dim=1)

    def loss(self, x: torch.Tensor, out: SVGForwardOutput, kl_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """SVG's objective ``total = mse + beta_z * kl_z`` (``mse``: per-frame mean squared error summed over the
        ``T-1`` predicted frames; ``kl_z``: KL summed over time and dimensions, averaged over the batch).

        Also reported, for comparison with SRVP: ``nll``, the Gaussian negative log-likelihood with scale
        ``obs_scale`` of the predicted frames summed per sequence (frame 1 excluded: SVG never predicts it), and
        ``elbo = -(nll + kl_z)``.
        """
        B = x.shape[0]
        target = x[:, 1:].float()
        pred = out.frames[:, 1:].float()
        mse = (pred - target).pow(2).mean(dim=(0, 2, 3, 4)).sum()
        q_mu, q_logvar = out.posterior_z_params.float().chunk(2, dim=-1)
        p_mu, p_logvar = out.prior_z_params.float().chunk(2, dim=-1)
        kl_z = gaussian.kl_divergence(q_mu, (0.5 * q_logvar).exp(), p_mu, (0.5 * p_logvar).exp()).sum() / B
        nll = gaussian.gaussian_nll(pred, target, self.config.obs_scale).sum() / B
        total = mse + kl_scale * self.config.beta_z * kl_z
        return {"total": total, "mse": mse, "kl_z": kl_z, "nll": nll, "elbo": -(nll + kl_z)}

    def reconstruct(self, x: torch.Tensor, n_cond: int | None = None) -> torch.Tensor:
        """Posterior reconstruction ``(B, T, C, H, W)``: the teacher-forced pass of :meth:`forward` with the mean of
        every posterior ``z_t``; frame 1 is ``x_1`` itself (SVG-LP never draws it). ``n_cond`` is accepted for the
        common interface; the skips follow :meth:`training_skip_frames` (the last frame seen, at most frame
        ``n_past``)."""
        if x.shape[1] < 2:  # only x_1, which SVG-LP takes as given
            return x.clone()
        hx, skips = self.encode(x)
        post, _ = self.posterior(hx[:, 1:])
        return self.teacher_forced_frames(x, hx, skips, sample_logvar(post, use_mean=True))

    # ------------------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------------------

    def condition(self, x_cond: torch.Tensor) -> SVGConditioning:
        """Encode the conditioning frames ``(B, n_cond, C, H, W)`` once and run the posterior (on frames
        2..n_cond) and the prior (on frames 1..n_cond-1) over them; both are deterministic given the frames."""
        n_cond = x_cond.shape[1]
        if n_cond < 1:
            raise ValueError("SVG-LP needs at least one conditioning frame")
        hx, skips = self.encode(x_cond)
        post, prior_state = None, None
        if n_cond > 1:
            post, _ = self.posterior(hx[:, 1:])
            _, prior_state = self.prior(hx[:, :-1])
        return SVGConditioning(frames=x_cond, hx=hx, posterior_z_params=post, prior_state=prior_state,
                               skips=None if skips is None else [s[:, -1] for s in skips], n_cond=n_cond)

    def sample_futures(self, cond: SVGConditioning, horizon: int, n_samples: int = 1,
                       dt: StepSize | float | None = None, use_mean: bool = False, keep_intermediate: bool = False,
                       include_conditioning: bool = False, cond_dt: StepSize | float | None = None) -> torch.Tensor:
        """Draw ``n_samples`` futures of ``horizon`` frames: ``(B, n_samples, horizon, C, H, W)`` in [0, 1].

        Each sample draws its own posterior ``z`` for the conditioning steps (as SVG's generator, which reruns the
        conditioning per sample), then, at each future step, ``z_t`` from the learned prior, a predictor step, a
        decoding, and the re-encoding of that prediction as the next input. ``dt``/``cond_dt`` other than 1 are
        refused by :meth:`step_size`; ``keep_intermediate`` is a no-op (there are no intermediate states).
        With ``include_conditioning`` the conditioning frames themselves come first (SVG does not reconstruct
        them). ``use_mean`` replaces every draw by its mean.
        """
        self.step_size(dt)
        self.step_size(cond_dt, "cond_dt")
        rep = cond.repeat(n_samples) if n_samples > 1 else cond
        pred_state = None
        if rep.posterior_z_params is not None:
            z = sample_logvar(rep.posterior_z_params, use_mean)
            _, pred_state = self.predictor(torch.cat([rep.hx[:, :-1], z], dim=-1))
        prior_state = rep.prior_state
        h_prev = rep.hx[:, -1:]
        frames = []
        for t in range(horizon):
            prior_params, prior_state = self.prior(h_prev, prior_state)
            z = sample_logvar(prior_params, use_mean)
            g, pred_state = self.predictor(torch.cat([h_prev, z], dim=-1), pred_state)
            x = self.decode(g[:, 0], rep.skips)
            frames.append(x)
            if t < horizon - 1:
                h, _ = self.frame_encoder(x)  # autoregression: the prediction is the next input
                h_prev = h.unsqueeze(1)
        out = torch.stack(frames, dim=1) if frames else rep.frames[:, :0]
        if include_conditioning:
            out = torch.cat([rep.frames.to(out.dtype), out], dim=1)
        return out.reshape(cond.batch_size, n_samples, *out.shape[1:])
