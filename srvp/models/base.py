"""What every video-prediction model of the package shares: the interface that training, evaluation and the
Python API rely on (``forward``/``loss`` for training, ``condition``/``sample_futures`` for generation) and
:meth:`VideoPredictor.predict`, built on it."""

from __future__ import annotations

import torch
from torch import nn


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

    # ------------------------------------------------------------------------------------------------------------
    # The Hugging Face Hub layout (srvp.pretrained, imported when called: it reads files and the Hub, which the
    # model itself never needs)
    # ------------------------------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, name_or_path, revision: str | None = None) -> VideoPredictor:
        """A trained model in evaluation mode by shipped name (``srvp pretrained list``), local path (Hub-layout
        folder, the authors' folder, ``.pt`` checkpoint) or Hub repository id; its full run configuration is
        ``model.run_config``. Called on a subclass, the model must be of that class."""
        from srvp.errors import CheckpointError
        from srvp.pretrained import load_pretrained

        loaded = load_pretrained(name_or_path, revision)
        if not isinstance(loaded.model, cls):
            raise CheckpointError(f"{name_or_path}: holds a {type(loaded.model).__name__} model, not {cls.__name__}")
        loaded.model.run_config = loaded.config
        return loaded.model

    def save_pretrained(self, directory, config=None, *, step: int = 0, card: str | None = None,
                        dtype: str = "float32", overwrite: bool = False):
        """Write ``config.json`` + ``model.safetensors`` (+ ``README.md`` from ``card``) into ``directory``;
        ``config`` is the full :class:`~srvp.config.RunConfig` (default: ``run_config`` if loaded, else this
        model's configuration with default data and training sections)."""
        from srvp.config import RunConfig
        from srvp.pretrained import save_pretrained

        if config is None:
            config = getattr(self, "run_config", None) or RunConfig(model=self.config)
        return save_pretrained(self, config, directory, step=step, card=card, dtype=dtype, overwrite=overwrite)

