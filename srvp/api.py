"""High-level use of a trained model: load a checkpoint in one call, then predict, encode, swap content and
interpolate in latent space (figures 3, 7, 8 and 9 of the paper).

Every method takes clips ``(B, T, C, H, W)`` (or one clip ``(T, C, H, W)``) as float tensors in [0, 1] or uint8
arrays/tensors; frames of another size or channel count are converted to the model's (see
:func:`srvp.io.fit_frames`). Outputs are float tensors in [0, 1] on the CPU::

    from srvp import Predictor
    predictor = Predictor.from_checkpoint("runs/srvp/best.pt")
    futures = predictor.predict(clip, horizon=20, n_samples=10)        # (B, 10, 20, C, H, W)
    smooth = predictor.predict(clip, horizon=20, dt=0.5, keep_intermediate=True)  # (B, 1, 40, C, H, W)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from srvp.config import RunConfig, StepSize
from srvp.errors import ConfigError, DataError
from srvp.io import fit_frames
from srvp.models import gaussian
from srvp.models.cpu_layers import use_cpu_layers
from srvp.models.srvp import SRVP, Conditioning
from srvp.pretrained import load_pretrained, push_to_hub, save_pretrained
from srvp.runtime import generation_bytes, require_memory, resolve_device
from srvp.training.checkpoint import load_checkpoint

CONTENT_CHOICES = ("a", "b", "interpolate")


def _count(value: object, name: str, minimum: int) -> int:
    """``value`` as a count of at least ``minimum`` (an int, NumPy's included), else a one-line
    :class:`ConfigError`: ``horizon=2.5`` or ``n_samples=0`` would otherwise fail deep inside the model."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer of at least {minimum}")
    return int(value)


class Predictor:
    """A trained SRVP model in evaluation mode with its :class:`~srvp.config.RunConfig`."""

    def __init__(self, model: SRVP, config: RunConfig | None = None, device: str | torch.device = "cpu"):
        self.device = resolve_device(device)
        self.model = model.to(self.device).eval()
        use_cpu_layers(self.model)  # the same function, faster (srvp.models.cpu_layers)
        self.config: RunConfig = config if config is not None else RunConfig(model=model.config)
        self.history: list[dict] = []  # the training stages of the weights (LoadedModel.history), when loaded

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device = "auto") -> Predictor:
        """Load a checkpoint written by ``srvp train`` or ``srvp import-official`` (weights-only, never executes
        code from the file); a missing, corrupt or mismatched file raises a one-line :class:`CheckpointError`."""
        loaded = load_checkpoint(path, map_location="cpu")
        predictor = cls(loaded.model, loaded.config, device)
        predictor.history = loaded.history
        return predictor

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, device: str | torch.device = "auto",
                        revision: str | None = None, subfolder: str | None = None) -> Predictor:
        """Load a model by name (``srvp pretrained list``: a shipped model, or the authors' such as
        ``authors-kth``, downloaded once into the Hub cache), local path (a Hub-layout folder, a folder of
        the authors' code with ``config.json`` + ``model.pt``, an ``srvp train`` checkpoint) or Hub repository id,
        with a folder of the repository as ``owner/name/folder`` or ``subfolder`` (see :mod:`srvp.pretrained`);
        weights are never unpickled with code."""
        loaded = load_pretrained(name_or_path, revision, subfolder)
        predictor = cls(loaded.model, loaded.config, device)
        predictor.history = loaded.history
        return predictor

    def save_pretrained(self, directory: str | Path, *, card: str | None = None, dtype: str = "float32",
                        overwrite: bool = False) -> Path:
        """Write the model in the Hub layout (``config.json`` + ``model.safetensors`` [+ ``README.md``])."""
        return save_pretrained(self.model, self.config, directory, card=card, dtype=dtype, overwrite=overwrite,
                               history=self.history)

    def push_to_hub(self, repo_id: str, token: str | None = None, private: bool = False) -> str:
        """Save the model in the Hub layout and upload it to ``repo_id`` (needs network access and a token)."""
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "model")
            return push_to_hub(folder, repo_id, token=token, private=private)

    # ------------------------------------------------------------------------------------------------------------
    # Properties of the model
    # ------------------------------------------------------------------------------------------------------------

    @property
    def frame_size(self) -> int:
        return self.model.config.frame_size

    @property
    def channels(self) -> int:
        return self.model.config.channels

    @property
    def dt(self) -> float:
        """Euler step used in training."""
        return self.model.config.dt

    @property
    def content_frames(self) -> int:
        """k: the fewest conditioning frames the model accepts."""
        return self.model.config.content_frames

    def frame_times(self, horizon: int, dt: StepSize | float | None = None, keep_intermediate: bool = False
                    ) -> np.ndarray:
        """Times ``(T',)``, in frames after the last conditioning frame, of the frames :meth:`predict` returns:
        ``1, 2, ..., horizon``, or ``dt, 2 dt, ..., horizon`` with ``keep_intermediate`` (integer times are the
        real frames, the others intermediate states)."""
        if not keep_intermediate:
            return np.arange(1, horizon + 1, dtype=np.float64)
        n = self.model.step_size(dt).n
        return np.arange(1, horizon * n + 1, dtype=np.float64) / n

    # ------------------------------------------------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------------------------------------------------

    def prepare(self, frames: torch.Tensor | np.ndarray, name: str = "frames") -> torch.Tensor:
        """Clip(s) ``(B, T, C, H, W)`` or ``(T, C, H, W)``, or as image readers return them, channels last
        ``(T, H, W, C)`` / ``(B, T, H, W, C)`` or grey ``(T, H, W)`` (``imageio.mimread``), float in [0, 1] or
        uint8 -> ``(B, T, C', S, S)`` float on the model's device, with the model's channels ``C'`` and frame size
        ``S`` (centre-cropped to a square, then resized)."""
        x = torch.from_numpy(np.ascontiguousarray(frames)) if isinstance(frames, np.ndarray) else frames
        if not isinstance(x, torch.Tensor):
            raise DataError(f"{name}: expected a tensor or numpy array, got {type(frames).__name__}")
        if x.ndim == 3:  # (T, H, W) grey frames
            x = x.unsqueeze(1)
        elif x.ndim in (4, 5) and x.shape[-3] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):  # channels last
            x = x.movedim(-1, -3)
        if x.ndim == 4:
            x = x.unsqueeze(0)
        if x.ndim != 5 or x.shape[2] not in (1, 3, 4):
            raise DataError(f"{name}: expected clips (B, T, C, H, W) or one clip (T, C, H, W) with C in 1, 3, 4; "
                            f"got shape {tuple(x.shape)}")
        if x.numel() == 0:
            raise DataError(f"{name}: no frames to read (shape {tuple(x.shape)}: an empty batch, no frame or frames "
                            f"of no pixel)")
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        elif x.is_floating_point():
            x = x.float()
            if not torch.isfinite(x).all():
                raise DataError(f"{name}: frames hold NaN or infinite values")
            lo, hi = x.min().item(), x.max().item()
            if lo < -1e-3 or hi > 1 + 1e-3:
                raise DataError(f"{name}: float frames must be in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")
            x = x.clamp(0.0, 1.0)
        else:
            raise DataError(f"{name}: unsupported dtype {x.dtype} (expected float in [0, 1] or uint8)")
        return fit_frames(x.to(self.device), self.frame_size, self.channels)

    def _check_length(self, x: torch.Tensor, name: str) -> None:
        if x.shape[1] < self.content_frames:
            raise DataError(f"{name}: {x.shape[1]} frame(s) given, the model needs at least k={self.content_frames} "
                            f"conditioning frames")

    def _srvp_only(self, what: str) -> None:
        if not isinstance(self.model, SRVP):
            raise ConfigError(f"{what} needs an SRVP model (content variable and latent state), "
                              f"not {type(self.model).__name__}")

    # ------------------------------------------------------------------------------------------------------------
    # Generation
    # ------------------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, frames: torch.Tensor | np.ndarray) -> Conditioning:
        """Everything the model infers from conditioning frames ``(B, T, C, H, W)``: parameters of q(y_1) and of
        q(z_t), content ``w`` and skip connections (on the model's device)."""
        self._srvp_only("encode")
        x = self.prepare(frames)
        self._check_length(x, "frames")
        return self.model.condition(x)

    @torch.no_grad()
    def predict(self, frames: torch.Tensor | np.ndarray, horizon: int, n_samples: int = 1,
                dt: StepSize | float | None = None, use_mean: bool = False, keep_intermediate: bool = False
                ) -> torch.Tensor:
        """Futures of the conditioning frames ``(B, T, C, H, W)``: ``(B, n_samples, T', C, H, W)``, ``T' = horizon``
        (or ``horizon / dt`` with ``keep_intermediate``: every Euler state decoded, see :meth:`frame_times`).

        ``dt`` (default: the training step) must be 1/n and one the model accepts (its ``step_size``); the
        conditioning states are inferred with the training step and the future generated with ``dt``. ``use_mean``
        replaces random draws by Gaussian means.
        """
        _count(horizon, "horizon", 1)
        _count(n_samples, "n_samples", 1)
        step = self.model.step_size(dt)
        x = self.prepare(frames)
        self._check_length(x, "frames")
        self._check_memory(x.shape[0], n_samples, horizon * (step.n if keep_intermediate else 1))
        out = self.model.predict(x, horizon, n_samples=n_samples, dt=step, use_mean=use_mean,
                                 keep_intermediate=keep_intermediate)
        return out.clamp(0.0, 1.0).cpu()

    @torch.no_grad()
    def reconstruct(self, frames: torch.Tensor | np.ndarray, horizon: int = 0) -> torch.Tensor:
        """Reconstruction of the frames ``(B, T, C, H, W)`` from their inferred states (distribution means), followed
        by ``horizon`` predicted frames (means): ``(B, T + horizon, C, H, W)``."""
        self._srvp_only("reconstruct")
        _count(horizon, "horizon", 0)
        cond = self.encode(frames)
        out = self.model.sample_futures(cond, horizon, use_mean=True, include_conditioning=True)
        return out[:, 0].clamp(0.0, 1.0).cpu()

    @torch.no_grad()
    def swap_content(self, dynamics_frames: torch.Tensor | np.ndarray, content_frames: torch.Tensor | np.ndarray,
                     horizon: int, n_samples: int = 1, dt: StepSize | float | None = None, use_mean: bool = False,
                     keep_intermediate: bool = False, include_conditioning: bool = True) -> torch.Tensor:
        """Figure 8: the latent trajectory (y_1 and the z_t) inferred from ``dynamics_frames`` ``(B, T, ...)``,
        decoded with the content ``w`` and skip connections of ``content_frames`` ``(B or 1, T2, ...)``.

        Returns ``(B, n_samples, T', C, H, W)``: with ``include_conditioning`` the ``T`` frames of the dynamics clip
        re-rendered with the other content, then ``horizon`` generated frames (``T' = T + horizon``; with
        ``keep_intermediate`` and ``dt`` < the training step, every Euler state of the future is decoded).
        """
        self._srvp_only("swap_content")
        _count(horizon, "horizon", 0)
        _count(n_samples, "n_samples", 1)
        step = self.model.step_size(dt)
        dynamics = self.encode(dynamics_frames)
        content = self.encode(content_frames)
        B = dynamics.batch_size
        if content.batch_size not in (1, B):
            raise DataError(f"content_frames: batch of {content.batch_size} clips for {B} dynamics clips "
                            f"(give 1 or {B})")
        if content.batch_size == 1 and B > 1:
            content = content.repeat(B)
        self._check_memory(B, n_samples, dynamics.n_cond + horizon * (step.n if keep_intermediate else 1))
        if not self.model.config.content:
            raise ConfigError("swap_content needs a model with the content variable (content=true)")
        swapped = Conditioning(y1_params=dynamics.y1_params, posterior_z_params=dynamics.posterior_z_params,
                               w=content.w, skips=content.skips, n_cond=dynamics.n_cond)
        rep = swapped.repeat(n_samples) if n_samples > 1 else swapped
        states = self.model.generate_states(rep, horizon, step, use_mean, keep_intermediate, include_conditioning)
        frames = self.model.decode(states, rep.w, rep.skips)
        return frames.reshape(B, n_samples, *frames.shape[1:]).clamp(0.0, 1.0).cpu()

    @torch.no_grad()
    def interpolate(self, frames_a: torch.Tensor | np.ndarray, frames_b: torch.Tensor | np.ndarray, n_steps: int,
                    horizon: int, content: str = "a") -> torch.Tensor:
        """Figure 9: trajectories decoded from initial states ``(1 - a) y_1^A + a y_1^B`` for ``n_steps`` values of
        ``a`` evenly spaced in [0, 1] (both ends included), with ``y_1`` the mean of q(y_1) of each clip and every
        ``z_t`` the mean of the prior.

        ``frames_a``, ``frames_b``: ``(B, T, C, H, W)`` (the first k frames give y_1). ``content``: the content
        and skip connections of clip ``"a"``, of clip ``"b"``, or linearly ``"interpolate"``d with the same weights.
        Returns ``(B, n_steps, horizon, C, H, W)``: frames 1..horizon of each trajectory.
        """
        self._srvp_only("interpolate")
        _count(n_steps, "n_steps", 2)
        _count(horizon, "horizon", 1)
        if content not in CONTENT_CHOICES:
            raise ConfigError(f"content={content!r} is not one of {', '.join(CONTENT_CHOICES)}")
        cond_a, cond_b = self.encode(frames_a), self.encode(frames_b)
        B = cond_a.batch_size
        if cond_b.batch_size != B:
            raise DataError(f"frames_a has {B} clip(s) but frames_b has {cond_b.batch_size}")
        weights = torch.linspace(0.0, 1.0, n_steps, device=self.device)

        def mix(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            """``(B, ...)`` pairs -> ``(B * n_steps, ...)`` blends, sequence-major."""
            if a is None:
                return None
            shape = (1, n_steps) + (1,) * (a.ndim - 1)
            blend = (1 - weights.view(shape)) * a.unsqueeze(1) + weights.view(shape) * b.unsqueeze(1)
            return blend.reshape(B * n_steps, *a.shape[1:])

        def pick(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
            if content == "interpolate":
                return mix(a, b)
            chosen = a if content == "a" else b
            return None if chosen is None else chosen.repeat_interleave(n_steps, dim=0)

        y1_a, _ = gaussian.split_params(cond_a.y1_params)
        y1_b, _ = gaussian.split_params(cond_b.y1_params)
        y1 = mix(y1_a, y1_b)
        w = pick(cond_a.w, cond_b.w)
        skips = None if cond_a.skips is None else [pick(sa, sb) for sa, sb in zip(cond_a.skips, cond_b.skips)]
        states = self.model.rollout(y1, horizon, use_mean=True).y  # at the training step
        frames = self.model.decode(states, w, skips)
        return frames.reshape(B, n_steps, *frames.shape[1:]).clamp(0.0, 1.0).cpu()

    def _check_memory(self, clips: int, n_samples: int, frames: int) -> None:
        """Refuse, before allocating anything, a request whose frames cannot fit in memory (one line naming what to
        lower), instead of an allocation error after minutes of work."""

        need = generation_bytes(self.model, clips, n_samples, frames)
        require_memory(need, self.device, f"{clips} clip(s) x {n_samples} sample(s) x {frames} frame(s)",
                       "the number of samples, the horizon or the frame rate (dt)")
