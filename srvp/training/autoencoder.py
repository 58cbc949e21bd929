"""The frame-autoencoder stage of a training recipe (``TrainConfig.autoencoder_steps``).

Measured (docs/time-to-quality.md): at CPU budgets SRVP's quality is limited by its frame autoencoder, not by its
dynamics; the model redraws even the frames it is given poorly, because the only way a frame's pixels reach the
decoder during training is the long path ``x_t -> h -> LSTM -> z_t -> y_t = y_{t-1} + f(y_{t-1}, z_t) -> g``.
This stage teaches the frame networks first, through the model's own networks in their own roles:

    for every window x_t..x_{t+k-1} of the clip (t = 1..T-k+1):
        y_t ~ q(y | h(x_t), ..., h(x_{t+k-1}))      the model's q(y_1 | x_1:k) network, applied at time t
        x_t ~ N(g(y_t, w), obs_scale^2)             w (and skips) from random frames of the clip, as in training
    loss = sum_t [ -log p(x_t | y_t, w) + beta_y KL(q(y_t | .) || N(0, I)) ]   (averaged over the batch)

That is the first frame's terms of the paper's objective (Eq. 6), slid along the clip: the frame encoder ``h``,
the decoder ``g``, the content network ``c`` and ``q(y_1 | x_1:k)`` learn to draw every frame from a state of the
prior's scale, with no dynamics in the way. Then the full objective takes over with these weights; the dynamics
(``f``, the prior and posterior on ``z``) start from their initialisation. A recipe changes how the model is
trained, never what it computes: no network is added or kept beyond the stage.
"""

from __future__ import annotations

import torch
from torch import nn

from srvp.models import gaussian
from srvp.models.srvp import SRVP


class FrameAutoencoder(nn.Module):
    """The stage's objective as a module (so that DDP can wrap it): ``forward(x, kl_scale)`` on clips
    ``(B, T, C, H, W)`` in [0, 1] with ``T >= k`` returns the loss terms ``total``, ``nll``, ``kl_y`` (each averaged
    over the batch, summed over the ``T - k + 1`` decoded frames and their dimensions)."""

    def __init__(self, model: SRVP):
        super().__init__()
        if not isinstance(model, SRVP):
            raise TypeError(f"the frame-autoencoder stage trains an SRVP model, not {type(model).__name__}")
        self.model = model

    def window_states(self, hx: torch.Tensor) -> torch.Tensor:
        """Raw parameters ``(B, T-k+1, 2 ny)`` of q(y_t | x_t:t+k-1) from the encodings ``hx`` ``(B, T, frame_dim)``:
        the model's ``infer_y1`` applied to every window of k consecutive encodings."""
        k = self.model.config.content_frames
        B, T, D = hx.shape
        windows = hx.unfold(1, k, 1).transpose(2, 3)  # (B, T-k+1, k, D): window t holds hx[:, t:t+k]
        params = self.model.infer_y1(windows.reshape(B * (T - k + 1), k, D))
        return params.reshape(B, T - k + 1, -1)

    def forward(self, x: torch.Tensor, kl_scale: float = 1.0) -> dict[str, torch.Tensor]:
        model, c = self.model, self.model.config
        B, T = x.shape[:2]
        if c.content_frames > T:
            raise ValueError(f"the frame-autoencoder stage needs clips of at least k={c.content_frames} frames, "
                             f"got {T}")
        hx, skips = model.encode(x)
        w = model.infer_content(hx, random_frames=True)
        skips = model.select_skips(skips, random_frame=True)
        params = self.window_states(hx)
        frames = model.decode(gaussian.sample(params), w, skips)  # (B, T-k+1, C, H, W)
        target = x[:, : frames.shape[1]]
        nll = gaussian.gaussian_nll(frames.float(), target.float(), c.obs_scale).sum() / B
        loc, scale = gaussian.split_params(params.float())
        kl_y = gaussian.kl_divergence(loc, scale).sum() / B
        return {"total": nll + kl_scale * c.beta_y * kl_y, "nll": nll, "kl_y": kl_y}


__all__ = ["FrameAutoencoder"]
