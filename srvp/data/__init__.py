"""Data sources. Each dataset registers a builder of training clips and a loader of its fixed test set here:
one place to add a dataset.

- ``build_train_dataset(cfg, seed)``: a :class:`~srvp.data.base.ClipDataset` of ``cfg.seq_len``-frame clips.
- ``load_test_set(cfg)``: uint8 array ``(N, T, C, H, W)`` (``cfg.test_set`` if given, else the dataset's default).
- ``load_val_set(cfg, seed)``: held-out uint8 array ``(N, T, C, H, W)`` for model selection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from srvp.config import DataConfig
from srvp.data.base import ArrayDataset, ClipDataset, to_float
from srvp.data.npz import load_sequences_npz
from srvp.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """How to get a dataset's training clips, validation set and test set."""

    train: Callable[[DataConfig, int], ClipDataset]
    val: Callable[[DataConfig, int], np.ndarray]
    test: Callable[[DataConfig], np.ndarray]


DATASETS: dict[str, DatasetSpec] = {}


def register(name: str, spec: DatasetSpec) -> None:
    DATASETS[name] = spec


def _spec(cfg: DataConfig) -> DatasetSpec:
    _load_builtin()
    if cfg.dataset not in DATASETS:
        raise ConfigError(f"unknown dataset {cfg.dataset!r}; choose one of {', '.join(sorted(DATASETS))}")
    return DATASETS[cfg.dataset]


def build_train_dataset(cfg: DataConfig, seed: int) -> ClipDataset:
    return _spec(cfg).train(cfg, seed)


def load_val_set(cfg: DataConfig, seed: int) -> np.ndarray:
    return _spec(cfg).val(cfg, seed)


def load_test_set(cfg: DataConfig) -> np.ndarray:
    if cfg.test_set:
        return load_sequences_npz(cfg.test_set)
    return _spec(cfg).test(cfg)


def _load_builtin() -> None:
    """Import the modules that register the built-in datasets (lazily, so importing srvp stays cheap)."""
    # Kept lazy (not top-level imports) so that importing srvp does not import every dataset: start-up time.
    import srvp.data.bair  # noqa: F401
    import srvp.data.kth  # noqa: F401
    import srvp.data.moving_mnist  # noqa: F401
    import srvp.data.pendulum  # noqa: F401
    import srvp.data.videos  # noqa: F401


__all__ = ["DATASETS", "ArrayDataset", "ClipDataset", "DatasetSpec", "build_train_dataset", "load_test_set",
           "load_val_set", "register", "to_float"]
