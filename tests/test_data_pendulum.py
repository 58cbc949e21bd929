"""Pendulum: the simulation against closed forms (elliptic-integral period, torque equilibrium, energy), the rendering
against the bob's position, the noise statistics, reproducibility and the registry/CLI plumbing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import ellipk

from srvp.cli.main import main
from srvp.config import DataConfig
from srvp.data import build_train_dataset, load_test_set, load_val_set
from srvp.data.npz import load_sequences_npz
from srvp.data.pendulum import FRAME_SIZE, PendulumPhysics, bob_position, generate, render, simulate

FREE = PendulumPhysics(damping=0.0, frame_dt=0.01, substeps=20)


def period(thetas: np.ndarray, dt: float) -> float:
    """Mean period from upward zero crossings of theta (linear interpolation)."""
    crossings = [t + thetas[t] / (thetas[t] - thetas[t + 1]) for t in range(len(thetas) - 1)
                 if thetas[t] < 0 <= thetas[t + 1]]
    return float(np.mean(np.diff(crossings)) * dt)


@pytest.mark.parametrize("theta0", [0.05, 1.0, 2.5])
def test_free_period_matches_the_elliptic_integral(theta0):
    thetas, _ = simulate(theta0, 0.0, np.zeros(2000), FREE)
    exact = 4 * np.sqrt(FREE.length / FREE.gravity) * ellipk(np.sin(theta0 / 2) ** 2)
    assert period(thetas, FREE.frame_dt) == pytest.approx(exact, rel=2e-3)


def test_free_motion_conserves_energy():
    thetas, omegas = simulate(2.0, 1.0, np.zeros(1000), FREE)
    energy = 0.5 * omegas**2 - FREE.gravity / FREE.length * np.cos(thetas)
    assert np.ptp(energy) / abs(energy[0]) < 5e-3


def test_constant_torque_settles_at_the_static_equilibrium():
    physics = PendulumPhysics(damping=2.0)
    torque = 1.5
    thetas, omegas = simulate(0.3, 0.0, np.full(600, torque), physics)
    assert thetas[-1] == pytest.approx(np.arcsin(torque / (physics.mass * physics.gravity * physics.length)),
                                       abs=1e-6)
    assert abs(omegas[-1]) < 1e-6


def test_rendered_blob_is_centred_on_the_bob():
    thetas = np.linspace(-np.pi, np.pi, 13)
    frames = render(thetas)
    assert frames.shape == (13, FRAME_SIZE, FRAME_SIZE) and frames.max() <= 1
    rows, cols = bob_position(thetas)
    grid = np.arange(FRAME_SIZE)
    mass = frames.sum(axis=(1, 2))
    np.testing.assert_allclose((frames.sum(axis=2) * grid).sum(axis=1) / mass, rows, atol=0.02)
    np.testing.assert_allclose((frames.sum(axis=1) * grid).sum(axis=1) / mass, cols, atol=0.02)
    centre = (FRAME_SIZE - 1) / 2
    recovered = np.arctan2(cols - centre, rows - centre)  # theta = 0 hangs down (larger row index)
    np.testing.assert_allclose(np.angle(np.exp(1j * (recovered - thetas))), 0, atol=1e-9)


def test_clips_are_reproducible_noisy_and_in_range():
    cfg = DataConfig(dataset="pendulum", seq_len=15)
    dataset = build_train_dataset(cfg, seed=7)
    clip = dataset[3].numpy()
    assert clip.shape == (15, 1, FRAME_SIZE, FRAME_SIZE) and clip.dtype == np.uint8
    np.testing.assert_array_equal(clip, build_train_dataset(cfg, seed=7)[3].numpy())
    assert not np.array_equal(clip, dataset[4].numpy())
    assert not np.array_equal(clip, build_train_dataset(cfg, seed=8)[3].numpy())
    # background pixels are clipped Gaussian noise: half are 0, the rest have mean sigma * sqrt(2 / pi)
    clips = np.stack([dataset[i].numpy() for i in range(200)]).astype(float) / 255
    background = clips[:, :, 0, 7:9, 7:9]  # the centre: the bob stays `radius` pixels away
    sigma = PendulumPhysics().noise_std
    assert np.mean(background == 0) == pytest.approx(0.5, abs=0.03)
    assert background[background > 0].mean() == pytest.approx(sigma * np.sqrt(2 / np.pi), rel=0.08)
    assert clips.max() == 1.0  # the bob reaches full intensity


def test_torques_make_sequences_stochastic():
    physics = PendulumPhysics()
    a, _ = simulate(0.5, 0.0, np.zeros(15), physics)
    b, _ = simulate(0.5, 0.0, np.full(15, physics.max_torque), physics)
    assert a[0] == b[0] and abs(a[-1] - b[-1]) > 0.1


def test_fixed_sets_and_cli(tmp_path):
    cfg = DataConfig(dataset="pendulum", test_seq_len=12, test_sequences=20, val_sequences=8)
    test = load_test_set(cfg)
    assert test.shape == (20, 12, 1, FRAME_SIZE, FRAME_SIZE)
    np.testing.assert_array_equal(test, load_test_set(cfg))
    val = load_val_set(cfg, seed=0)
    assert val.shape == (8, 12, 1, FRAME_SIZE, FRAME_SIZE) and not np.array_equal(val, test[:8])
    out = tmp_path / "pendulum_test.npz"
    assert main(["data", "pendulum", "generate", "--out", str(out), "--sequences", "20", "--seq-len", "12",
                 "--seed", "2020"]) == 0
    np.testing.assert_array_equal(load_sequences_npz(out), test)
    assert np.array_equal(generate(3, 5, 1), generate(3, 5, 1))


def test_short_training_run_on_pendulum(tmp_path):
    run_dir = tmp_path / "run"
    assert main(["train", "--preset", "pendulum", "--filters", "16", "--batch-size", "2", "--steps", "2",
                 "--decay-steps", "0", "--val-interval", "2", "--val-sequences", "2", "--val-samples", "1",
                 "--out-dir", str(run_dir), "--no-progress"]) == 0
    assert (run_dir / "best.pt").is_file() and (run_dir / "config.json").is_file()
