"""srvp: Stochastic Latent Residual Video Prediction (Franceschi et al.) in PyTorch.

The model is usable on its own::

    from srvp import SRVP, ModelConfig
    model = SRVP(ModelConfig())
    futures = model.predict(frames, horizon=20, n_samples=10)   # (B, 10, 20, C, H, W) in [0, 1]

or loaded from a checkpoint (:func:`srvp.load_checkpoint`) or by name (:func:`srvp.load_pretrained`), both
returning a :class:`~srvp.models.LoadedModel` (model, configuration, step).
"""

from srvp.api import Predictor
from srvp.config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset
from srvp.errors import SrvpError
from srvp.models import SRVP, SVGLP, LoadedModel
from srvp.pretrained import load_pretrained
from srvp.training.checkpoint import load_checkpoint

__all__ = ["SRVP", "SVGLP", "DataConfig", "LoadedModel", "ModelConfig", "Predictor", "RunConfig", "SrvpError",
           "TrainConfig", "load_checkpoint", "load_pretrained", "preset"]
__version__ = "0.1.0"
