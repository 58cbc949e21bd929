"""Stochastic Latent Residual Video Prediction (Franceschi et al.), Sections 3.1-3.3 of the paper.

Notation (shapes are batch-first; ``T`` frames, ``n = 1/dt`` Euler steps per frame)::

    x_t  frames          (B, T, C, H, W) in [0, 1]
    h(x) frame encodings (B, T, frame_dim)
    w    content         (B, inference_hidden)      w = c(sum_i proj(h(x_i))), permutation invariant
    y_t  latent states   (B, T, state_dim)          y_1 ~ q(y_1 | x_1:k)
    z_t  auxiliaries     (B, T-1, noise_dim)        q(z_t | x_1:t) by an LSTM, prior p(z_t | y_{t-1})
    y_{t-1+(s+1)dt} = y_{t-1+s dt} + dt * f(y_{t-1+s dt}, z_t),   s = 0..n-1   (z_t constant on the interval)
    x_t ~ N(g(y_t, w), obs_scale^2)

Each step of the mathematics is one method: :meth:`encode`, :meth:`infer_content`, :meth:`infer_y1`,
:meth:`infer_z`, :meth:`rollout` (prior and transition), :meth:`decode`; :meth:`forward` chains them for training
and :meth:`loss` returns every term of the objective. :meth:`condition` and :meth:`sample_futures` (or
:meth:`predict`, which chains them) generate futures, encoding the conditioning frames once for all samples.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from srvp.config import ModelConfig, euler_steps
from srvp.models import gaussian
from srvp.models.base import VideoPredictor
from srvp.models.nets import MLP, build_frame_decoder, build_frame_encoder, init_conv_weights, init_orthogonal


@dataclass
class ForwardOutput:
    """What :meth:`SRVP.forward` infers from a clip of ``T`` frames."""

    frames: torch.Tensor  # (B, T', C, H, W) decoded means g(y, w), T' = T or (T-1)n+1 with intermediate states
    y: torch.Tensor  # (B, T', ny)
    y1_params: torch.Tensor  # (B, 2 ny) raw parameters of q(y_1 | x_1:k)
    z: torch.Tensor | None  # (B, T-1, nz)
    posterior_z_params: torch.Tensor | None  # (B, T-1, 2 nz) raw parameters of q(z_t | x_1:t), t = 2..T
    prior_z_params: torch.Tensor | None  # (B, T-1, 2 nz) raw parameters of p(z_t | y_{t-1})
    residuals: torch.Tensor  # (B, (T-1) n, ny) every state increment y_{s+dt} - y_s
    w: torch.Tensor | None  # (B, content_dim)


@dataclass
class Conditioning:
    """Everything generation needs from the conditioning frames, computed once (:meth:`SRVP.condition`)."""

    y1_params: torch.Tensor  # (B, 2 ny)
    posterior_z_params: torch.Tensor | None  # (B, n_cond - 1, 2 nz)
    w: torch.Tensor | None  # (B, content_dim)
    skips: list[torch.Tensor] | None  # each (B, c, h, w): features of the last conditioning frame
    n_cond: int

    @property
    def batch_size(self) -> int:
        return self.y1_params.shape[0]

    def repeat(self, n: int) -> Conditioning:
        """Each sequence repeated ``n`` times consecutively (batch ``B*n``), to draw ``n`` samples in one pass."""
        rep = lambda t: None if t is None else t.repeat_interleave(n, dim=0)  # noqa: E731
        skips = None if self.skips is None else [rep(s) for s in self.skips]
        return replace(self, y1_params=rep(self.y1_params), posterior_z_params=rep(self.posterior_z_params),
                       w=rep(self.w), skips=skips)


class SRVP(VideoPredictor):
    """The SRVP model; all configuration is in ``config`` (:class:`srvp.config.ModelConfig`)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        ny, nz = c.state_dim, c.noise_dim if c.stochastic else 0
        content_dim = c.inference_hidden if c.content else 0
        self.frame_encoder = build_frame_encoder(c.architecture, c.channels, c.frame_size, c.frame_dim, c.filters)
        self.frame_decoder = build_frame_decoder(c.architecture, c.channels, c.frame_size, content_dim + ny,
                                                 c.filters, c.skip_connections)
        if c.content:
            # w = content_out(sum_i content_proj(h(x_i))): a Deep Sets network, invariant to the order of frames.
            self.content_proj = nn.Sequential(nn.Linear(c.frame_dim, content_dim), nn.ReLU())
            self.content_out = nn.Sequential(nn.Linear(content_dim, content_dim), nn.Tanh())
        self.posterior_y1 = MLP(c.frame_dim * c.content_frames, c.inference_hidden, 2 * ny, c.inference_layers,
                                c.activation)
        if c.stochastic:
            self.posterior_z_lstm = nn.LSTM(c.frame_dim, c.inference_hidden, num_layers=1, batch_first=True)
            self.posterior_z = nn.Linear(c.inference_hidden, 2 * nz)
            self.prior_z = MLP(ny, c.forward_hidden, 2 * nz, c.forward_layers, c.activation)
        if c.transition == "gru":
            self.transition = nn.GRUCell(nz, ny)
        else:
            self.transition = MLP(ny + nz, c.forward_hidden, ny, c.forward_layers, c.activation)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The paper's initialisation: normal(0, 0.02) for the frame networks, orthogonal with
        ``residual_gain`` for f, PyTorch defaults elsewhere."""
        init_conv_weights(self.frame_encoder)
        init_conv_weights(self.frame_decoder)
        if self.config.transition != "gru":
            init_orthogonal(self.transition, self.config.residual_gain)

    # ------------------------------------------------------------------------------------------------------------
    # The steps of the model
    # ------------------------------------------------------------------------------------------------------------

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """Frames ``(B, T, C, H, W)`` -> encodings ``(B, T, frame_dim)`` and, with skip connections, per-layer
        features ``(B, T, c, h, w)`` (deepest first)."""
        B, T = x.shape[:2]
        hx, skips = self.frame_encoder(x.reshape(B * T, *x.shape[2:]))
        hx = hx.reshape(B, T, -1)
        if not self.config.skip_connections:
            return hx, None
        return hx, [s.reshape(B, T, *s.shape[1:]) for s in skips]

    @staticmethod
    def select_skips(skips: list[torch.Tensor] | None, random_frame: bool) -> list[torch.Tensor] | None:
        """Skip features of one frame per sequence: a random frame (training) or the last one (testing)."""
        if skips is None:
            return None
        if not random_frame:
            return [s[:, -1] for s in skips]
        B, T = skips[0].shape[:2]
        t = torch.randint(T, (B,), device=skips[0].device)
        index = torch.arange(B, device=skips[0].device)
        return [s[index, t] for s in skips]

    def infer_content(self, hx: torch.Tensor, random_frames: bool) -> torch.Tensor | None:
        """Content variable ``w`` ``(B, content_dim)`` from k encodings among ``hx`` ``(B, T, frame_dim)``:
        k distinct frames drawn uniformly per sequence (training) or the last k (testing)."""
        if not self.config.content:
            return None
        k = self.config.content_frames
        if random_frames:
            B, T = hx.shape[:2]
            idx = torch.rand(B, T, device=hx.device).argsort(dim=1)[:, :k]  # k of T without replacement
            h = hx.gather(1, idx.unsqueeze(-1).expand(B, k, hx.shape[-1]))
        else:
            h = hx[:, -k:]
        return self.content_out(self.content_proj(h).sum(1))

    def infer_y1(self, hx: torch.Tensor) -> torch.Tensor:
        """Raw parameters ``(B, 2 ny)`` of q(y_1 | x_1:k) from the first k encodings of ``hx``."""
        k = self.config.content_frames
        if hx.shape[1] < k:
            raise ValueError(f"q(y_1 | x_1:k) needs k={k} frames, got {hx.shape[1]}")
        return self.posterior_y1(hx[:, :k].reshape(hx.shape[0], -1))

    def infer_z(self, hx: torch.Tensor) -> torch.Tensor | None:
        """Raw parameters ``(B, T-1, 2 nz)`` of q(z_t | x_1:t) for t = 2..T: an LSTM filter over the encodings
        ``(B, T, frame_dim)`` followed by a linear layer."""
        if not self.config.stochastic:
            return None
        out, _ = self.posterior_z_lstm(hx)
        return self.posterior_z(out[:, 1:])

    @property
    def supports_dt(self) -> bool:
        """Residual (and deterministic) transitions are Euler steps ``y + dt f(y, z)``, so any ``dt = 1/n`` works;
        the MLP and GRU transitions replace the state and need ``dt = 1``."""
        return self.config.transition in ("residual", "deterministic")

    def step(self, y: torch.Tensor, z: torch.Tensor | None, dt: float) -> torch.Tensor:
        """One transition from ``y`` ``(B, ny)`` with ``z`` ``(B, nz)``: an Euler step ``y + dt f(y, z)``
        (residual, deterministic), or ``f(y, z)`` (mlp) or ``GRU(z, y)`` (gru), which require dt = 1."""
        kind = self.config.transition
        if kind == "gru":
            return self.transition(z, y)
        inp = y if z is None else torch.cat([y, z], dim=-1)
        if kind == "mlp":
            return self.transition(inp)
        return y + dt * self.transition(inp)

    def rollout(self, y1: torch.Tensor, n_frames: int, dt: float, posterior_z_params: torch.Tensor | None = None,
                use_mean: bool = False, keep_intermediate: bool = False) -> dict[str, torch.Tensor | None]:
        """Generate latent states from ``y1`` ``(B, ny)`` for ``n_frames`` frames (``y1`` included).

        For t = 2..n_frames, ``z_t`` comes from the posterior while ``posterior_z_params`` ``(B, Tq, 2 nz)``
        covers it (t - 2 < Tq), else from the prior p(z_t | y_{t-1}); it stays constant over the ``1/dt``
        Euler steps of the interval. Returns ``y`` ``(B, T', ny)`` (T' = n_frames, or (n_frames-1)/dt + 1 with
        ``keep_intermediate``), ``z`` and ``prior_z_params`` ``(B, n_frames-1, ...)`` and ``residuals``
        ``(B, (n_frames-1)/dt, ny)``.
        """
        n = euler_steps(dt)
        if n > 1 and not self.supports_dt:
            raise ValueError(f"dt={dt} needs a residual or deterministic transition, not {self.config.transition}")
        n_post = 0 if posterior_z_params is None else posterior_z_params.shape[1]
        y = y1
        states, zs, priors, residuals = [y1], [], [], []
        for t in range(n_frames - 1):
            z = None
            if self.config.stochastic:
                prior = self.prior_z(y)
                priors.append(prior)
                z = gaussian.sample(posterior_z_params[:, t] if t < n_post else prior, use_mean)
                zs.append(z)
            for s in range(n):
                y_next = self.step(y, z, dt)
                residuals.append(y_next - y)
                y = y_next
                if keep_intermediate or s == n - 1:
                    states.append(y)
        stack = lambda xs: torch.stack(xs, dim=1) if xs else None  # noqa: E731
        return {"y": stack(states), "z": stack(zs), "prior_z_params": stack(priors), "residuals": stack(residuals)}

    def decode(self, y: torch.Tensor, w: torch.Tensor | None, skips: list[torch.Tensor] | None) -> torch.Tensor:
        """States ``(B, T, ny)`` with content ``w`` ``(B, content_dim)`` and skips ``(B, c, h, w)`` -> frames
        ``(B, T, C, H, W)`` in [0, 1] (the mean of the observation model)."""
        B, T = y.shape[:2]
        inp = y.reshape(B * T, -1)
        if w is not None:
            inp = torch.cat([w.unsqueeze(1).expand(B, T, w.shape[-1]).reshape(B * T, -1), inp], dim=1)
        if skips is not None:
            skips = [s.unsqueeze(1).expand(B, T, *s.shape[1:]).reshape(B * T, *s.shape[1:]) for s in skips]
        x = self.frame_decoder(inp, skips)
        return x.reshape(B, T, *x.shape[1:])

    # ------------------------------------------------------------------------------------------------------------
    # Training
    # ------------------------------------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, dt: float | None = None, keep_intermediate: bool = False) -> ForwardOutput:
        """Infer everything from a clip ``(B, T, C, H, W)`` and reconstruct it.

        In training mode (``model.train()``) w uses k random frames of the clip and the skips a random frame;
        in evaluation mode the last k frames and the last frame, as at test time.
        """
        dt = self.config.dt if dt is None else dt
        hx, skips = self.encode(x)
        w = self.infer_content(hx, random_frames=self.training)
        skips = self.select_skips(skips, random_frame=self.training)
        y1_params = self.infer_y1(hx)
        q_z = self.infer_z(hx)
        roll = self.rollout(gaussian.sample(y1_params), x.shape[1], dt, q_z, keep_intermediate=keep_intermediate)
        frames = self.decode(roll["y"], w, skips)
        return ForwardOutput(frames=frames, y=roll["y"], y1_params=y1_params, z=roll["z"], posterior_z_params=q_z,
                             prior_z_params=roll["prior_z_params"], residuals=roll["residuals"], w=w)

    def loss(self, x: torch.Tensor, out: ForwardOutput, kl_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """The objective of Eq. (7), averaged over the batch (each term summed over time and dimensions):
        ``total = nll + kl_scale (beta_y kl_y + beta_z kl_z) + lambda residual``; ``elbo = -(nll + kl_y + kl_z)``.
        ``kl_scale`` < 1 only during KL annealing (``TrainConfig.kl_warmup_steps``); 1 is the paper's objective."""
        c = self.config
        B = x.shape[0]
        frames = out.frames
        if frames.shape[1] != x.shape[1]:
            raise ValueError("loss() needs the output of forward() without keep_intermediate")
        nll = gaussian.gaussian_nll(frames.float(), x.float(), c.obs_scale).sum() / B
        loc, scale = gaussian.split_params(out.y1_params.float())
        kl_y = gaussian.kl_divergence(loc, scale).sum() / B
        if out.posterior_z_params is not None:
            q_loc, q_scale = gaussian.split_params(out.posterior_z_params.float())
            p_loc, p_scale = gaussian.split_params(out.prior_z_params.float())
            kl_z = gaussian.kl_divergence(q_loc, q_scale, p_loc, p_scale).sum() / B
        else:
            kl_z = torch.zeros((), device=x.device)
        residual = out.residuals.float().norm(dim=-1).sum() / B
        total = nll + kl_scale * (c.beta_y * kl_y + c.beta_z * kl_z) + c.residual_penalty * residual
        return {"total": total, "nll": nll, "kl_y": kl_y, "kl_z": kl_z, "residual": residual,
                "elbo": -(nll + kl_y + kl_z)}

    # ------------------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------------------

    def condition(self, x_cond: torch.Tensor) -> Conditioning:
        """Encode the conditioning frames ``(B, n_cond, C, H, W)`` once: q(y_1) from the first k, q(z_t) for
        t <= n_cond, w from the last k and the skips from the last frame (test-time choices)."""
        if x_cond.shape[1] < self.config.content_frames:
            raise ValueError(f"need at least k={self.config.content_frames} conditioning frames, "
                             f"got {x_cond.shape[1]}")
        hx, skips = self.encode(x_cond)
        return Conditioning(y1_params=self.infer_y1(hx), posterior_z_params=self.infer_z(hx),
                            w=self.infer_content(hx, random_frames=False),
                            skips=self.select_skips(skips, random_frame=False), n_cond=x_cond.shape[1])

    def sample_futures(self, cond: Conditioning, horizon: int, n_samples: int = 1, dt: float | None = None,
                       use_mean: bool = False, keep_intermediate: bool = False,
                       include_conditioning: bool = False, cond_dt: float | None = None) -> torch.Tensor:
        """Draw ``n_samples`` futures of ``horizon`` frames: ``(B, n_samples, T', C, H, W)`` in [0, 1].

        The states of the conditioning frames are inferred with the training step ``cond_dt`` (default
        ``config.dt``), then the future is generated with step ``dt`` (default ``config.dt``), as in the
        authors' evaluation. ``T' = horizon``, or ``horizon / dt`` with ``keep_intermediate`` (the last of every
        ``1/dt`` frames is at an integer time). With ``include_conditioning`` the reconstructions of the
        conditioning frames come first. ``use_mean`` replaces every random draw by the mean of its Gaussian.
        """
        dt = self.config.dt if dt is None else dt
        cond_dt = self.config.dt if cond_dt is None else cond_dt
        rep = cond.repeat(n_samples) if n_samples > 1 else cond
        y1 = gaussian.sample(rep.y1_params, use_mean)
        past = self.rollout(y1, cond.n_cond, cond_dt, rep.posterior_z_params, use_mean=use_mean,
                            keep_intermediate=keep_intermediate)
        future = self.rollout(past["y"][:, -1], horizon + 1, dt, use_mean=use_mean,
                              keep_intermediate=keep_intermediate)
        y = future["y"][:, 1:]
        if include_conditioning:
            y = torch.cat([past["y"], y], dim=1)
        frames = self.decode(y, rep.w, rep.skips)
        return frames.reshape(cond.batch_size, n_samples, *frames.shape[1:])
