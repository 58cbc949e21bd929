"""Models: SRVP (:mod:`srvp.models.srvp`), the SVG-LP baseline (:mod:`srvp.models.svg`), their shared interface
(:mod:`srvp.models.base`) and the registry of model families (``ModelConfig.model`` -> class)."""

from __future__ import annotations

from srvp.config import MODEL_CHECKS, ModelConfig
from srvp.models.base import LoadedModel, VideoPredictor
from srvp.models.srvp import SRVP
from srvp.models.svg import SVGLP

#: model family name (``ModelConfig.model``) -> class built from a :class:`ModelConfig`
MODELS: dict[str, type[VideoPredictor]] = {}


def register_model(name: str, cls: type[VideoPredictor]) -> type[VideoPredictor]:
    """Make ``cls`` (a :class:`VideoPredictor` built as ``cls(config)``) the model family ``name``; its
    :meth:`~VideoPredictor.check_config` then runs in every :meth:`ModelConfig.validate` of that family."""
    if not (isinstance(cls, type) and issubclass(cls, VideoPredictor)):
        raise TypeError(f"register_model({name!r}): {cls!r} is not a VideoPredictor subclass")
    MODELS[name] = cls
    MODEL_CHECKS[name] = cls.check_config
    return cls


register_model("srvp", SRVP)
register_model("svg", SVGLP)


def build_model(config: ModelConfig) -> VideoPredictor:
    """The model of a configuration (``config.model``: a registered family, ``srvp`` or ``svg``)."""
    if config.model not in MODELS:
        raise ValueError(f"unknown model family {config.model!r}; registered: {', '.join(MODELS)}")
    return MODELS[config.model](config)


__all__ = ["MODELS", "SRVP", "SVGLP", "LoadedModel", "VideoPredictor", "build_model", "register_model"]
