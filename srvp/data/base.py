"""Dataset contracts shared by every data source.

Training clips are a pure function of ``(seed, index)``: :class:`ClipDataset` seeds a fresh NumPy generator with
both, so a batch depends only on the run's seed and the step number. That makes on-the-fly data (Moving MNIST,
Pendulum) and random clips of stored videos resumable exactly, with any number of loader workers, without saving
any worker state.

Test sets are uint8 arrays ``(N, T, C, H, W)``; models receive float tensors in [0, 1] (:func:`to_float`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from srvp.config import DataConfig


class ClipDataset(Dataset):
    """Base class of training clip sources: ``dataset[i]`` is a uint8 tensor ``(T, C, H, W)`` that depends only on
    ``(seed, i)``. Subclasses implement :meth:`make_clip`."""

    #: a practically unbounded index space: training samples clips, it does not iterate over a fixed list
    LENGTH = 2**62

    def __init__(self, seq_len: int, seed: int = 0):
        self.seq_len = seq_len
        self.seed = seed

    def __len__(self) -> int:
        return self.LENGTH

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, int(index)])
        clip = self.make_clip(rng)
        return torch.from_numpy(np.ascontiguousarray(clip))

    def make_clip(self, rng: np.random.Generator) -> np.ndarray:
        """One clip ``(seq_len, C, H, W)`` uint8 drawn with ``rng``."""
        raise NotImplementedError


class ArrayDataset(Dataset):
    """A fixed set of sequences ``(N, T, C, H, W)`` uint8 (test and validation sets); ``dataset[i]`` is a uint8
    tensor ``(T, C, H, W)``."""

    def __init__(self, sequences: np.ndarray):
        if sequences.ndim != 5:
            raise ValueError(f"expected sequences (N, T, C, H, W), got shape {sequences.shape}")
        self.sequences = sequences

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.sequences[index]))


def to_float(clips: torch.Tensor) -> torch.Tensor:
    """uint8 clips -> float32 in [0, 1] (floats are returned unchanged)."""
    if clips.dtype == torch.uint8:
        return clips.float().div_(255.0)
    return clips.float()


@dataclass(frozen=True)
class DatasetSpec:
    """How to get a dataset's training clips, validation set and test set (registered in :mod:`srvp.data`)."""

    train: Callable[[DataConfig, int], ClipDataset]
    val: Callable[[DataConfig, int], np.ndarray]
    test: Callable[[DataConfig], np.ndarray]
