"""Shared fixtures: small models and paths to the read-only shared data next to the checkout."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from srvp.config import ModelConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

torch.set_num_threads(1)


def tiny_model_config(**overrides) -> ModelConfig:
    """A small DCGAN SRVP that runs in milliseconds."""
    values = dict(filters=4, frame_dim=16, state_dim=4, noise_dim=3, inference_hidden=16, forward_hidden=16,
                  content_frames=2)
    values.update(overrides)
    return ModelConfig(**values)


@pytest.fixture
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder {SHARED} not present")
    return SHARED
