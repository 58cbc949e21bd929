"""srvp: Stochastic Latent Residual Video Prediction (Franceschi et al.) in PyTorch.

The model is usable on its own::

    from srvp import SRVP, ModelConfig
    model = SRVP(ModelConfig())
    futures = model.predict(frames, horizon=20, n_samples=10)   # (B, 10, 20, C, H, W) in [0, 1]

or loaded from a checkpoint with :func:`srvp.load_model`.
"""

from srvp.api import Predictor
from srvp.config import DataConfig, ModelConfig, RunConfig, TrainConfig, preset
from srvp.errors import SrvpError
from srvp.models.srvp import SRVP

__all__ = ["SRVP", "DataConfig", "ModelConfig", "Predictor", "RunConfig", "SrvpError", "TrainConfig", "load_model",
           "preset"]
__version__ = "0.1.0"


def load_model(path, map_location="cpu"):
    """Load a model (and its configuration) from a checkpoint file written by ``srvp train``; see
    :func:`srvp.training.checkpoint.load_model`."""
    from srvp.training.checkpoint import load_model as _load

    return _load(path, map_location=map_location)
