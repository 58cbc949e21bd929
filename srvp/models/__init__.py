"""Models: SRVP (:mod:`srvp.models.srvp`), the SVG-LP baseline (:mod:`srvp.models.svg`), their shared interface
and the registry of model families (:mod:`srvp.models.base`: ``ModelConfig.model`` -> class, filled by the
``@register_model(name)`` decorator at each class; importing this package imports every model module, so that the
registry is complete)."""

from __future__ import annotations

from srvp.models.base import MODELS, LoadedModel, VideoPredictor, build_model, register_model
from srvp.models.srvp import SRVP
from srvp.models.svg import SVGLP

__all__ = ["MODELS", "SRVP", "SVGLP", "LoadedModel", "VideoPredictor", "build_model", "register_model"]
