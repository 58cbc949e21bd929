"""Pendulum (paper Appendix E, after DVBF, Karl et al. 2017): noisy 16x16 grey images of a torque-controlled pendulum.

The state is the angle ``theta`` (0 hanging down) and angular velocity ``omega`` of a rigid pendulum,

    d theta / dt = omega,    d omega / dt = -(g / l) sin(theta) - damping * omega + torque / (m l^2),

integrated with semi-implicit (symplectic) Euler, ``substeps`` steps per frame. A random torque, uniform in
``[-max_torque, max_torque]`` and held for one frame, acts at every frame; it is not observed, which is what makes
the sequences stochastic. Each frame renders the bob as a Gaussian blob (standard deviation ``blob_sigma`` pixels) at
``radius`` pixels from the image centre, adds Gaussian pixel noise and quantizes to uint8.

The DVBF/KVAE pendulum data are not published with a generator, so the constants below are ours (documented in
``docs/datasets.md``): clips are generated on the fly from ``(seed, index)`` like Moving MNIST, and the fixed
validation and test sets are generated from their own seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from srvp.config import DataConfig
from srvp.data.base import ClipDataset, DatasetSpec
from srvp.data.npz import save_sequences_npz
from srvp.runtime import require_memory

FRAME_SIZE = 16
TEST_SEED = 2020
VAL_SEED = 2021


@dataclass(frozen=True)
class PendulumPhysics:
    """Constants of the simulation and of the rendering."""

    gravity: float = 9.81
    length: float = 1.0
    mass: float = 1.0
    damping: float = 0.1
    max_torque: float = 2.0
    frame_dt: float = 0.1  # seconds between frames
    substeps: int = 10
    max_initial_speed: float = 2.0  # |omega_0| bound, rad/s
    radius: float = 5.5  # pixels from the centre to the bob
    blob_sigma: float = 1.0  # pixels
    noise_std: float = 0.05  # pixel noise, in [0, 1] units


def simulate(theta0: float, omega0: float, torques: np.ndarray, physics: PendulumPhysics = PendulumPhysics()
             ) -> tuple[np.ndarray, np.ndarray]:
    """Angles and angular velocities ``(T,)`` at the T frames; frame 0 is the initial state and ``torques[t]`` acts
    between frames t and t+1 (the last torque is unused)."""
    p = physics
    h = p.frame_dt / p.substeps
    stiffness, inertia = p.gravity / p.length, p.mass * p.length**2
    theta, omega = float(theta0), float(omega0)
    thetas, omegas = np.empty(len(torques)), np.empty(len(torques))
    for t, torque in enumerate(torques):
        thetas[t], omegas[t] = theta, omega
        for _ in range(p.substeps):
            omega += h * (-stiffness * math.sin(theta) - p.damping * omega + torque / inertia)
            theta += h * omega
    return thetas, omegas


def bob_position(thetas: np.ndarray, physics: PendulumPhysics = PendulumPhysics(), size: int = FRAME_SIZE
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates ``(row, col)`` of the bob (rows grow downwards; theta = 0 hangs straight down)."""
    centre = (size - 1) / 2
    return centre + physics.radius * np.cos(thetas), centre + physics.radius * np.sin(thetas)


def render(thetas: np.ndarray, physics: PendulumPhysics = PendulumPhysics(), size: int = FRAME_SIZE) -> np.ndarray:
    """Noise-free frames ``(T, size, size)`` in [0, 1]: a Gaussian blob at the bob's position."""
    rows, cols = bob_position(thetas, physics, size)
    grid = np.arange(size, dtype=np.float64)
    dr = grid[None, :, None] - rows[:, None, None]
    dc = grid[None, None, :] - cols[:, None, None]
    return np.exp(-(dr**2 + dc**2) / (2 * physics.blob_sigma**2))


def make_sequence(rng: np.random.Generator, n_frames: int, physics: PendulumPhysics = PendulumPhysics()
                  ) -> np.ndarray:
    """One noisy clip, uint8 ``(n_frames, 1, 16, 16)``, drawn with ``rng``."""
    theta0 = rng.uniform(-np.pi, np.pi)
    omega0 = rng.uniform(-physics.max_initial_speed, physics.max_initial_speed)
    torques = rng.uniform(-physics.max_torque, physics.max_torque, size=n_frames)
    thetas, _ = simulate(theta0, omega0, torques, physics)
    frames = render(thetas, physics) + rng.normal(0.0, physics.noise_std, size=(n_frames, FRAME_SIZE, FRAME_SIZE))
    return np.round(np.clip(frames, 0.0, 1.0) * 255).astype(np.uint8)[:, None]


class Pendulum(ClipDataset):
    """Training clips generated on the fly: ``dataset[i]`` depends only on ``(seed, i)``."""

    def __init__(self, seq_len: int, seed: int = 0, physics: PendulumPhysics = PendulumPhysics()):
        super().__init__(seq_len, seed)
        self.physics = physics

    def make_clip(self, rng: np.random.Generator) -> np.ndarray:
        return make_sequence(rng, self.seq_len, self.physics)


def generate(n_sequences: int, n_frames: int, seed: int) -> np.ndarray:
    """A fixed set of clips, uint8 ``(N, T, 1, 16, 16)``: clip i is ``Pendulum(n_frames, seed)[i]``."""
    require_memory(3 * n_sequences * n_frames * FRAME_SIZE * FRAME_SIZE, torch.device("cpu"),
                   f"a set of {n_sequences} pendulum sequences of {n_frames} frames",
                   "the number of sequences or frames (--sequences, --seq-len, test_sequences, val_sequences)")
    dataset = Pendulum(n_frames, seed)
    return np.stack([dataset[i].numpy() for i in range(n_sequences)])


def save_set(path: str | Path, sequences: np.ndarray) -> None:
    """Write clips uint8 ``(N, T, 1, 16, 16)`` to an ``.npz`` in the official time-first layout ``(T, N, H, W)``
    (usable as ``--test-set``), atomically."""
    save_sequences_npz(path, {"sequences": np.ascontiguousarray(sequences[:, :, 0].transpose(1, 0, 2, 3))})


def _train(cfg: DataConfig, seed: int) -> Pendulum:
    return Pendulum(cfg.seq_len, seed)


def _val(cfg: DataConfig, seed: int) -> np.ndarray:
    return generate(cfg.val_sequences, cfg.test_seq_len, VAL_SEED)


def _test(cfg: DataConfig) -> np.ndarray:
    return generate(cfg.test_sequences, cfg.test_seq_len, TEST_SEED)


SPEC = DatasetSpec(train=_train, val=_val, test=_test)
