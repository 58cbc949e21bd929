"""What every video-prediction model of the package shares: the interface that training, evaluation and the
Python API rely on (``forward``/``loss`` for training, ``condition``/``sample_futures`` for generation),
:meth:`VideoPredictor.predict` built on it, the registry of model families (:func:`register_model`, a decorator
at each class, and :func:`build_model`), and :class:`LoadedModel`, what loading a trained model returns.

A model knows nothing of files: checkpoints are read by :mod:`srvp.training.checkpoint`, the Hub layout by
:mod:`srvp.pretrained`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from srvp.config import MODEL_CHECKS, ModelConfig, RunConfig, StepSize
from srvp.errors import ConfigError


class VideoPredictor(nn.Module, ABC):
    """The contract of a video-prediction model (SRVP, SVG-LP), on which training, evaluation, comparison and the
    Python API rely instead of inspecting the module: built from a :class:`ModelConfig` (``self.config``),
    ``forward(x)`` + ``loss(x, out, kl_scale)`` for training, ``condition(x_cond)`` once then
    ``sample_futures(cond, ...)`` for generation, and :meth:`check_step` for the step sizes it accepts (the one
    check and message of an unsupported ``dt``; :meth:`step_limit` says why a model has no step below one frame)."""

    config: ModelConfig

    @abstractmethod
    def forward(self, x: torch.Tensor) -> Any:
        """Infer everything from a clip ``(B, T, C, H, W)`` in [0, 1] and reconstruct it (the model's output
        record, which :meth:`loss` takes; its ``frames`` ``(B, T, C, H, W)`` in [0, 1] are the reconstruction)."""

    @abstractmethod
    def loss(self, x: torch.Tensor, out: Any, kl_scale: float = 1.0) -> dict[str, torch.Tensor]:
        """The training objective on ``x`` given ``forward(x)``: a dict of scalars averaged over the batch, with
        ``total`` (minimised), ``nll`` (the reconstruction term, which the trainer reports), ``elbo`` (``-nll``
        minus the KL terms, whatever ``kl_scale``) and the other terms of the objective."""

    @abstractmethod
    def condition(self, x_cond: torch.Tensor) -> Any:
        """Encode the conditioning frames ``(B, n_cond, C, H, W)`` once (the model's conditioning record)."""

    @abstractmethod
    def sample_futures(self, cond: Any, horizon: int, n_samples: int = 1, dt: StepSize | float | None = None,
                       use_mean: bool = False, keep_intermediate: bool = False, include_conditioning: bool = False,
                       cond_dt: StepSize | float | None = None) -> torch.Tensor:
        """``n_samples`` futures of ``horizon`` frames per sequence: ``(B, n_samples, T', C, H, W)`` in [0, 1]
        (``dt``: generation step, ``cond_dt``: step of the conditioning frames' states, both default the training
        step and are checked by :meth:`step_size`; see the models for ``keep_intermediate`` and
        ``include_conditioning``)."""

    @abstractmethod
    def reconstruct(self, x: torch.Tensor, n_cond: int | None = None) -> torch.Tensor:
        """Posterior reconstruction of a clip ``(B, T, C, H, W)`` -> ``(B, T, C, H, W)`` in [0, 1]: every latent
        variable inferred from the clip itself (means, no draws), content from its first ``n_cond`` frames (default
        all) as at test time. It separates what the frame autoencoder can draw from what the dynamics predict."""

    @classmethod
    def step_limit(cls, config: ModelConfig) -> str | None:
        """Why a model of ``config`` takes only one step per frame (``dt = 1``), or None when every ``dt = 1/n`` works
        (its transition is an Euler step); a discrete-time model unless a model says otherwise."""
        return f"{cls.__name__} is a discrete-time model (one step per frame)"

    @classmethod
    def check_step(cls, config: ModelConfig, dt: StepSize | float | str | None = None, option: str = "dt"
                   ) -> StepSize:
        """``dt`` (None: the training step ``config.dt``) as a :class:`~srvp.config.StepSize` that a model of
        ``config`` accepts. A value that is not 1/n, or a step below one frame for a model without an Euler step
        (:meth:`step_limit`), is a one-line :class:`~srvp.errors.ConfigError`: this is the one place that decides,
        for configs, the command line, the API and the models alike."""
        step = config.step_size if dt is None else StepSize.of(dt)
        limit = cls.step_limit(config) if step.n > 1 else None
        if limit is not None:
            raise ConfigError(f"{option}={step.dt:g}: {limit}, so only {option}=1 is possible")
        return step

    @classmethod
    def check_config(cls, config: ModelConfig) -> None:
        """What a model of this class refuses in ``config`` beyond the field checks (its training step, by
        :meth:`check_step`); :meth:`ModelConfig.validate` calls it through :data:`srvp.config.MODEL_CHECKS`, which
        :func:`register_model` fills."""
        cls.check_step(config)

    def step_size(self, dt: StepSize | float | str | None = None, option: str = "dt") -> StepSize:
        """:meth:`check_step` for this model's configuration."""
        return self.check_step(self.config, dt, option)

    @property
    def supports_dt(self) -> bool:
        """Whether generation accepts steps below one frame (``dt = 1/n``, n > 1): :meth:`step_limit` is None."""
        return self.step_limit(self.config) is None

    def predict(self, x_cond: torch.Tensor, horizon: int, n_samples: int = 1, dt: StepSize | float | None = None,
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


ModelClass = TypeVar("ModelClass", bound=type[VideoPredictor])

#: model family name (``ModelConfig.model``) -> its class, built as ``cls(config)``; filled by :func:`register_model`
#: where each class is defined, and the one list of model families: ``ModelConfig.model``'s choices (validation,
#: ``srvp train --model``) are its names, through :data:`srvp.config.MODEL_CHECKS`
MODELS: dict[str, type[VideoPredictor]] = {}


def register_model(name: str) -> Callable[[ModelClass], ModelClass]:
    """Class decorator: make the decorated :class:`VideoPredictor` subclass the model family ``name``
    (``ModelConfig(model=name)``), as torchvision's ``@register_model()``::

        @register_model("srvp")
        class SRVP(VideoPredictor): ...

    The name becomes one of ``ModelConfig.model``'s choices, :func:`build_model` builds the class from a config
    of that family, and its :meth:`~VideoPredictor.check_config` runs in every :meth:`ModelConfig.validate` of that
    family. A name registered twice is refused (the second class would silently replace the first)."""
    if not isinstance(name, str) or not name:
        raise TypeError(f"register_model({name!r}): the name must be a non-empty string")

    def register(cls: ModelClass) -> ModelClass:
        if not (isinstance(cls, type) and issubclass(cls, VideoPredictor)):
            raise TypeError(f"register_model({name!r}): {cls!r} is not a VideoPredictor subclass")
        if name in MODELS:
            known = MODELS[name]
            raise ValueError(f"register_model({name!r}): the name is already registered by "
                             f"{known.__module__}.{known.__qualname__}; choose another name for "
                             f"{cls.__module__}.{cls.__qualname__}")
        MODELS[name] = cls
        MODEL_CHECKS[name] = cls.check_config
        return cls

    return register


def build_model(config: ModelConfig) -> VideoPredictor:
    """The model of a configuration: the class registered as ``config.model`` (:data:`MODELS`), built from it."""
    if config.model not in MODELS:
        raise ConfigError(f"model={config.model!r} is not a registered model family; registered: "
                          f"{', '.join(MODELS)}")
    return MODELS[config.model](config)


@dataclass
class LoadedModel:
    """A trained model read from a file: the model in evaluation mode, its full run configuration, the training
    step it was saved at, where it came from, and its training history: one record per training stage that produced
    these weights, oldest first (each run started with ``init_from`` continues the history of its source; records
    as written by :func:`srvp.training.checkpoint.stage_record`)."""

    model: VideoPredictor
    config: RunConfig
    step: int = 0
    source: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
