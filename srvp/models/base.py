"""What every video-prediction model of the package shares: the interface that training, evaluation and the
Python API rely on (``forward``/``loss`` for training, ``condition``/``sample_futures`` for generation) and
:meth:`VideoPredictor.predict`, built on it."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from srvp.models.inference import inference_layers


class VideoPredictor(nn.Module):
    """Base class of SRVP and SVG-LP. Subclasses implement ``condition(x_cond)`` and
    ``sample_futures(cond, horizon, n_samples, dt, use_mean, keep_intermediate)``."""

    def predict(self, x_cond: torch.Tensor, horizon: int, n_samples: int = 1, dt: float | None = None,
                use_mean: bool = False, keep_intermediate: bool = False) -> torch.Tensor:
        """Futures of the conditioning frames ``(B, n_cond, C, H, W)`` in [0, 1]:
        ``(B, n_samples, horizon, C, H, W)`` (``horizon / dt`` frames with ``keep_intermediate``).

        Runs in evaluation mode (batch-norm running statistics, test-time content and skips) and restores the
        previous mode. Under ``torch.no_grad()`` or ``torch.inference_mode()`` it computes with the inference layers
        (:func:`srvp.models.inference.inference_layers`: the same function, faster); with gradients enabled, with
        the model's own layers, so that gradients reach its parameters.
        """
        was_training = self.training
        self.eval()
        try:
            layout = contextlib.nullcontext() if torch.is_grad_enabled() else inference_layers(self)
            with layout:
                return self.sample_futures(self.condition(x_cond), horizon, n_samples, dt, use_mean,
                                           keep_intermediate)
        finally:
            self.train(was_training)
