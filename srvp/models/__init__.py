"""Models: SRVP (:mod:`srvp.models.srvp`), its building blocks, and the registry of model families."""

from __future__ import annotations

from srvp.config import ModelConfig


def build_model(config: ModelConfig):
    """The model of a configuration (``config.model``: ``srvp`` or ``svg``)."""
    if config.model == "srvp":
        from srvp.models.srvp import SRVP

        return SRVP(config)
    if config.model == "svg":
        from srvp.models.svg import SVGLP

        return SVGLP(config)
    raise ValueError(f"unknown model family {config.model!r}")
