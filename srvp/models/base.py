"""What every video-prediction model of the package shares: the interface that training, evaluation and the
Python API rely on (``forward``/``loss`` for training, ``condition``/``sample_futures`` for generation),
:meth:`VideoPredictor.predict` built on it, and :class:`LoadedModel`, what loading a trained model returns.

A model knows nothing of files: checkpoints are read by :mod:`srvp.training.checkpoint`, the Hub layout by
:mod:`srvp.pretrained`."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from srvp.config import RunConfig


class VideoPredictor(nn.Module):
    """Base class of SRVP and SVG-LP. Subclasses implement ``condition(x_cond)`` and
    ``sample_futures(cond, horizon, n_samples, dt, use_mean, keep_intermediate)``."""

    @property
    def supports_dt(self) -> bool:
        """Whether generation accepts step sizes ``dt < 1`` (an Euler-step transition); False unless a model says
        otherwise."""
        return False

    def predict(self, x_cond: torch.Tensor, horizon: int, n_samples: int = 1, dt: float | None = None,
                use_mean: bool = False, keep_intermediate: bool = False, requires_grad: bool = False
                ) -> torch.Tensor:
        """Futures of the conditioning frames ``(B, n_cond, C, H, W)`` in [0, 1]:
        ``(B, n_samples, horizon, C, H, W)`` (``horizon / dt`` frames with ``keep_intermediate``).

        Runs in evaluation mode (batch-norm running statistics, test-time content and skips) and restores the
        previous mode, without gradients unless ``requires_grad`` (then gradients reach the parameters), so that
        the result is a plain tensor (``.numpy()`` works). For many calls, call it inside
        :func:`srvp.models.inference.inference_layers` (entered once: building the inference layers costs about as
        much as one small prediction, 17 ms for the SM-MNIST model on 2 CPU cores).
        """
        was_training = self.training
        self.eval()
        try:
            with torch.set_grad_enabled(requires_grad and torch.is_grad_enabled()):
                return self.sample_futures(self.condition(x_cond), horizon, n_samples, dt, use_mean,
                                           keep_intermediate)
        finally:
            self.train(was_training)


@dataclass
class LoadedModel:
    """A trained model read from a file: the model in evaluation mode, its full run configuration, the training
    step it was saved at, and where it came from."""

    model: VideoPredictor
    config: RunConfig
    step: int = 0
    source: str = ""
