"""What every video-prediction model of the package shares: the interface that training, evaluation and the
Python API rely on (``forward``/``loss`` for training, ``condition``/``sample_futures`` for generation) and
:meth:`VideoPredictor.predict`, built on it."""

from __future__ import annotations

import torch
from torch import nn


class VideoPredictor(nn.Module):
    """Base class of SRVP and SVG-LP. Subclasses implement ``condition(x_cond)`` and
    ``sample_futures(cond, horizon, n_samples, dt, use_mean, keep_intermediate)``."""

    def predict(self, x_cond: torch.Tensor, horizon: int, n_samples: int = 1, dt: float | None = None,
                use_mean: bool = False, keep_intermediate: bool = False) -> torch.Tensor:
        """Futures of the conditioning frames ``(B, n_cond, C, H, W)`` in [0, 1]:
        ``(B, n_samples, horizon, C, H, W)`` (``horizon / dt`` frames with ``keep_intermediate``).

        Runs in evaluation mode (batch-norm running statistics, test-time content and skips) and restores the
        previous mode. For many calls without gradients, call it inside
        :func:`srvp.models.inference.inference_layers` (entered once: building the inference layers costs about as
        much as one small prediction, 17 ms for the SM-MNIST model on 2 CPU cores).
        """
        was_training = self.training
        self.eval()
        try:
            return self.sample_futures(self.condition(x_cond), horizon, n_samples, dt, use_mean, keep_intermediate)
        finally:
            self.train(was_training)
