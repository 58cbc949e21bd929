"""Data sources. Each dataset module defines a :class:`DatasetSpec` (builder of training clips, loaders of its
validation and fixed test sets), registered by name below: one place to add a dataset, as models in
:mod:`srvp.models`.

- ``build_train_dataset(cfg, seed)``: a :class:`~srvp.data.base.ClipDataset` of ``cfg.seq_len``-frame clips.
- ``load_test_set(cfg)``: uint8 array ``(N, T, C, H, W)`` (``cfg.test_set`` if given, else the dataset's default).
- ``load_val_set(cfg, seed)``: held-out uint8 array ``(N, T, C, H, W)`` for model selection.
"""

from __future__ import annotations

import numpy as np

from srvp.config import DataConfig
from srvp.data import bair, kth, moving_mnist, pendulum, videos
from srvp.data.base import ArrayDataset, ClipDataset, DatasetSpec, to_float
from srvp.data.npz import load_sequences_npz
from srvp.errors import ConfigError

#: dataset name (``DataConfig.dataset``) -> its :class:`DatasetSpec`
DATASETS: dict[str, DatasetSpec] = {}


def register_dataset(name: str, spec: DatasetSpec) -> DatasetSpec:
    """Make ``spec`` the dataset ``name`` (training clips, validation and test sets of a :class:`DataConfig`)."""
    if not isinstance(spec, DatasetSpec):
        raise TypeError(f"register_dataset({name!r}): {spec!r} is not a DatasetSpec")
    DATASETS[name] = spec
    return spec


register_dataset("smmnist", moving_mnist.SPEC)
register_dataset("mmnist", moving_mnist.SPEC)
register_dataset("kth", kth.SPEC)
register_dataset("bair", bair.SPEC)
register_dataset("pendulum", pendulum.SPEC)
register_dataset("videos", videos.SPEC)


def _spec(cfg: DataConfig) -> DatasetSpec:
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


__all__ = ["DATASETS", "ArrayDataset", "ClipDataset", "DatasetSpec", "build_train_dataset", "load_test_set",
           "load_val_set", "register_dataset", "to_float"]
