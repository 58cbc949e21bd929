"""Stochastic and deterministic Moving MNIST, with bounces exact within the time step (paper Appendix B.1).

After Denton & Fergus (2018) and Srivastava et al. (2015), as corrected in the SRVP paper: bounces are computed
exactly within the time step, so trajectories do not depend on the frame rate.

A digit of 28x28 pixels moves in a 64x64 frame with an integer velocity in [-max_speed, max_speed] per axis. When
it reaches a wall in the middle of a time step, the collision time is computed exactly; the stochastic version
then draws a new random velocity (pointing away from the wall) and moves for the rest of the step, the
deterministic version reflects the velocity. Digits add up and saturate at 255.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from srvp.config import DataConfig
from srvp.data.base import ClipDataset, DatasetSpec
from srvp.data.idx import has_mnist, load_embedded_digits, load_mnist_digits
from srvp.errors import DataError
from srvp.runtime import require_memory

FRAME_SIZE = 64
TEST_SEED = 42
VAL_SEED_OFFSET = 1_000_003
_EPS = 1e-9


def trajectory(rng: np.random.Generator, n_frames: int, limit: int, max_speed: int, deterministic: bool,
               frame_dt: float = 1.0, start: tuple[float, float] | None = None,
               velocity: tuple[int, int] | None = None) -> np.ndarray:
    """Positions and velocities of one digit at times ``0, frame_dt, 2 frame_dt, ...``: ``(n_frames, 4)`` float
    array of ``(row, col, v_row, v_col)``; positions are the top-left corner in ``[0, limit]``.

    The random draws happen at the same events (start, each bounce) whatever ``frame_dt``, so with the same
    generator state the trajectory at integer times is the same for every frame rate.
    """
    pos = (np.array(start, dtype=np.float64) if start is not None
           else rng.integers(0, limit + 1, size=2).astype(np.float64))
    vel = (np.array(velocity, dtype=np.float64) if velocity is not None
           else rng.integers(-max_speed, max_speed + 1, size=2).astype(np.float64))
    out = np.empty((n_frames, 4))
    for t in range(n_frames):
        out[t, :2], out[t, 2:] = pos, vel
        remaining = frame_dt
        for _ in range(10_000):  # each pass consumes time or turns the digit away from a wall
            with np.errstate(divide="ignore", invalid="ignore"):
                wall = np.where(vel > 0, limit, 0.0)
                t_hit = np.where(vel != 0, (wall - pos) / vel, np.inf)
            t_hit = np.maximum(t_hit, 0.0)
            first = t_hit.min()
            if first >= remaining - _EPS:
                pos = pos + vel * remaining
                break
            pos = pos + vel * first
            remaining -= first
            hit = t_hit <= first + _EPS
            pos[hit] = np.where(vel[hit] > 0, limit, 0.0)  # exactly on the wall
            at_max = vel > 0
            if not deterministic:
                vel = rng.integers(-max_speed, max_speed + 1, size=2).astype(np.float64)
            vel[hit] = np.where(at_max[hit], -np.abs(vel[hit]), np.abs(vel[hit]))
        else:  # pragma: no cover - unreachable for limit > 0
            raise RuntimeError("trajectory did not converge")
        pos = np.clip(pos, 0.0, limit)
    return out


def render(digits: list[np.ndarray], trajectories: list[np.ndarray], size: int = FRAME_SIZE) -> np.ndarray:
    """Draw digits ``(h, w)`` uint8 along trajectories ``(T, 4)``: frames ``(T, 1, size, size)`` uint8."""
    T = trajectories[0].shape[0]
    canvas = np.zeros((T, size, size), dtype=np.uint16)
    for digit, traj in zip(digits, trajectories):
        h, w = digit.shape
        rows = np.rint(traj[:, 0]).astype(int)
        cols = np.rint(traj[:, 1]).astype(int)
        for t in range(T):
            canvas[t, rows[t]:rows[t] + h, cols[t]:cols[t] + w] += digit
    return np.minimum(canvas, 255).astype(np.uint8)[:, None]


def make_sequence(rng: np.random.Generator, digits: np.ndarray, n_frames: int, num_digits: int, max_speed: int,
                  deterministic: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One clip ``(T, 1, 64, 64)`` uint8 with its latents ``(T, num_digits, 4)`` and digit indices."""
    idx = rng.integers(0, len(digits), size=num_digits)
    chosen = [digits[i] for i in idx]
    trajs = [trajectory(rng, n_frames, FRAME_SIZE - d.shape[0], max_speed, deterministic) for d in chosen]
    return render(chosen, trajs), np.stack(trajs, axis=1), idx


class MovingMNIST(ClipDataset):
    """Training clips ``(seq_len, 1, 64, 64)`` uint8 generated on the fly, a pure function of ``(seed, index)``."""

    def __init__(self, digits: np.ndarray, seq_len: int, num_digits: int = 2, max_speed: int = 4,
                 deterministic: bool = False, seed: int = 0):
        super().__init__(seq_len, seed)
        self.digits = digits
        self.num_digits = num_digits
        self.max_speed = max_speed
        self.deterministic = deterministic

    def make_clip(self, rng: np.random.Generator) -> np.ndarray:
        return make_sequence(rng, self.digits, self.seq_len, self.num_digits, self.max_speed, self.deterministic)[0]


def make_test_set(digits: np.ndarray, n_sequences: int, n_frames: int, num_digits: int, max_speed: int,
                  deterministic: bool, seed: int = TEST_SEED) -> dict[str, np.ndarray]:
    """A fixed test set in the official SRVP ``.npz`` layout: ``sequences`` (T, N, 64, 64) uint8, ``latents``
    (T, N, num_digits, 4), ``labels`` (N, num_digits) (digit indices when labels are unknown) and ``digits``
    (N, num_digits, 28, 28) uint8. Each sequence uses distinct digits drawn without replacement."""
    # before anything is allocated: a typo of a few zeros would otherwise ask for petabytes (twice: the arrays and
    # their copy while they are saved)
    require_memory(2 * (n_sequences * n_frames * (FRAME_SIZE * FRAME_SIZE + 32 * num_digits)
                        + n_sequences * num_digits * (digits[0].size + 8)), torch.device("cpu"),
                   f"a set of {n_sequences} Moving MNIST sequences of {n_frames} frames",
                   "the number of sequences or frames (--sequences, --frames, test_sequences, val_sequences)")
    rng = np.random.default_rng(seed)
    order = [rng.permutation(len(digits)) for _ in range(num_digits)]
    sequences = np.empty((n_frames, n_sequences, FRAME_SIZE, FRAME_SIZE), dtype=np.uint8)
    latents = np.empty((n_frames, n_sequences, num_digits, 4), dtype=np.int64)
    labels = np.empty((n_sequences, num_digits), dtype=np.int64)
    objects = np.empty((n_sequences, num_digits, *digits.shape[1:]), dtype=np.uint8)
    for i in range(n_sequences):
        idx = [order[d][i % len(digits)] for d in range(num_digits)]
        chosen = [digits[j] for j in idx]
        trajs = [trajectory(rng, n_frames, FRAME_SIZE - d.shape[0], max_speed, deterministic) for d in chosen]
        sequences[:, i] = render(chosen, trajs)[:, 0]
        latents[:, i] = np.rint(np.stack(trajs, axis=1))
        labels[i] = idx
        objects[i] = np.stack(chosen)
    return {"sequences": sequences, "latents": latents, "labels": labels, "digits": objects}


def resolve_digits(cfg: DataConfig, split: str) -> np.ndarray:
    """Digits of ``split`` for a :class:`DataConfig`: a directory of IDX files (``cfg.digits``, or with 'auto'
    ``data_dir/mnist`` or ``data_dir`` if they hold the files), else the embedded 5,000 digits."""
    if cfg.digits == "embedded":
        return load_embedded_digits(split)
    if cfg.digits != "auto":
        if not Path(cfg.digits).is_dir():
            raise DataError(f"{cfg.digits}: digits directory not found (give a directory of MNIST IDX files, "
                            f"'embedded' or 'auto')")
        return _drawable(load_mnist_digits(cfg.digits, split), cfg.digits, split)
    for candidate in (Path(cfg.data_dir) / "mnist", Path(cfg.data_dir)):
        if has_mnist(candidate):
            return _drawable(load_mnist_digits(candidate, split), candidate, split)
    return load_embedded_digits(split)


def _drawable(digits: np.ndarray, where: str | Path, split: str) -> np.ndarray:
    """``digits`` if there is at least one and each fits in a frame (else the generator would fail mid-run)."""
    if len(digits) == 0:
        raise DataError(f"{where}: the {split} IDX file holds no digit images")
    if digits.shape[1] > FRAME_SIZE or digits.shape[2] > FRAME_SIZE:
        raise DataError(f"{where}: {split} digit images of {digits.shape[1]}x{digits.shape[2]} pixels do not fit "
                        f"in the {FRAME_SIZE}x{FRAME_SIZE} frames")
    return digits


def _deterministic(cfg: DataConfig) -> bool:
    return cfg.dataset == "mmnist"


def _train(cfg: DataConfig, seed: int) -> MovingMNIST:
    return MovingMNIST(resolve_digits(cfg, "train"), cfg.seq_len, cfg.num_digits, cfg.max_speed,
                       _deterministic(cfg), seed)


def _val(cfg: DataConfig, seed: int) -> np.ndarray:
    # Validation clips come from the training digits (as the paper extracts its evaluation set from the train
    # set) with a seed that the training stream never uses.
    data = make_test_set(resolve_digits(cfg, "train"), cfg.val_sequences, cfg.test_seq_len, cfg.num_digits,
                         cfg.max_speed, _deterministic(cfg), seed=seed + VAL_SEED_OFFSET)
    return data["sequences"].transpose(1, 0, 2, 3)[:, :, None]


def _test(cfg: DataConfig) -> np.ndarray:
    data = make_test_set(resolve_digits(cfg, "test"), cfg.test_sequences, cfg.test_seq_len, cfg.num_digits,
                         cfg.max_speed, _deterministic(cfg))
    return data["sequences"].transpose(1, 0, 2, 3)[:, :, None]


#: both names: the dataset's config says whether digits bounce with new random velocities (smmnist) or not
SPEC = DatasetSpec(train=_train, val=_val, test=_test)
