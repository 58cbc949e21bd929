"""Typed configuration: one dataclass per concern, paper presets, validation and command-line overrides.

A run is described by a :class:`RunConfig` (model, data, training). It is saved as JSON next to every checkpoint
and inside it, so that any checkpoint can be reloaded alone and any run reproduced. Every field is also a
command-line option of ``srvp train`` (``--state-dim 50``), generated from the dataclasses below, so the
``--help`` text, the JSON keys and the Python attributes are the same names.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import types
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srvp.errors import ConfigError, SrvpError

ARCHITECTURES = ("dcgan", "vgg", "mlp")
TRANSITIONS = ("residual", "mlp", "gru", "deterministic")
PRECISIONS = ("fp32", "bf16", "fp16")
LR_SCHEDULES = ("linear-decay", "cosine")


#: the largest random seed: every seed (training, evaluation, prediction, test sets) is an integer from 0 to 2^32 - 1,
#: which every generator used here accepts (NumPy's legacy RandomState, as the authors' KTH test-set draw, the
#: narrowest; torch.manual_seed overflows beyond 64 bits)
MAX_SEED = 2**32 - 1

#: numeric bounds a field can carry in its metadata (``bound``), checked by :meth:`RunConfig.validate`
BOUNDS: dict[str, tuple[Any, str]] = {
    "positive": (lambda v: v > 0, "must be positive"),
    "non-negative": (lambda v: v >= 0, "must be >= 0"),
    "unit": (lambda v: 0 <= v < 1, "must be in [0, 1)"),
    "seed": (lambda v: isinstance(v, int) and 0 <= v <= MAX_SEED, f"must be an integer from 0 to {MAX_SEED}"),
}


def _opt(default: Any, help: str, choices: Collection[str] | None = None, bound: str | None = None,
         family: str | None = None, tunable: bool = False) -> Any:
    """A dataclass field carrying its help text, its allowed values (``choices``) or numeric range (``bound``, a
    key of :data:`BOUNDS`), the one model family that uses it (``family``; a model of another family refuses
    a value other than the default), and, for model fields, whether it leaves the trained weights' meaning intact
    (``tunable``: an objective weight, the step size or an initialisation, which a run starting from trained
    weights may change), for ``--help`` and validation. ``choices`` may be live (the model families' names,
    :class:`RegisteredNames`), read when a value is checked or the command line is built."""
    meta: dict[str, Any] = {"help": help}
    if tunable:
        meta["tunable"] = True
    if family is not None:
        meta["family"] = family
    if choices is not None:
        meta["choices"] = choices
    if bound is not None:
        meta["bound"] = bound
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


#: model family (``ModelConfig.model``) -> the model class's own check of a configuration
#: (:meth:`srvp.models.base.VideoPredictor.check_config`, e.g. the step sizes it accepts), registered with the class by
#: the ``@srvp.models.register_model(name)`` decorator (a layer above), so that :meth:`ModelConfig.validate` refuses
#: what the model would refuse before anything is built. Its names are the model families: ``ModelConfig.model``'s
#: choices (validation, ``--model`` of the command line) are this dict's live names (:class:`RegisteredNames`), never
#: a list written here.
#: Importing ``srvp`` (any of its modules) imports :mod:`srvp.models`, which registers every model.
MODEL_CHECKS: dict[str, Callable[[ModelConfig], None]] = {}


class RegisteredNames(Sequence[str]):
    """The keys of a registry, live and in registration order, as a sequence: a field's ``choices`` that follow
    what is registered (in validation, ``--help`` and anything reading the field's metadata) without a copy that
    could go stale."""

    def __init__(self, registry: dict[str, Any]):
        self._registry = registry

    def __getitem__(self, index):  # type: ignore[override]
        return list(self._registry)[index]

    def __len__(self) -> int:
        return len(self._registry)

    def __contains__(self, name: object) -> bool:
        return name in self._registry

    def __iter__(self):
        return iter(list(self._registry))

    def __repr__(self) -> str:
        return f"RegisteredNames({list(self._registry)!r})"


@dataclass
class ModelConfig:
    """The model and its training objective (Section 3 and Appendix C of the paper)."""

    model: str = _opt("srvp", "model family (the models registered with srvp.models.register_model)",
                      RegisteredNames(MODEL_CHECKS))
    architecture: str = _opt("dcgan", "frame encoder/decoder family: DCGAN (64x64), VGG16 (64x64) or MLP",
                             ARCHITECTURES)
    frame_size: int = _opt(64, "frame width and height in pixels (64 for dcgan/vgg)", bound="positive")
    channels: int = _opt(1, "frame channels (1 grey, 3 colour)", bound="positive")
    filters: int = _opt(64, "filters of the first encoder convolution, nf (hidden units for the mlp architecture)",
                        bound="positive")
    frame_dim: int = _opt(128, "size of a frame encoding h(x), nhx", bound="positive")
    state_dim: int = _opt(20, "size of the latent state y, ny", bound="positive", family="srvp")
    noise_dim: int = _opt(20, "size of the auxiliary variable z, nz", bound="positive")
    transition: str = _opt("residual", "latent dynamics: residual y+dt*f(y,z) (the paper), mlp y'=f(y,z), "
                           "gru y'=GRU(z, y), deterministic y+dt*f(y) (no z)", TRANSITIONS, family="srvp")
    content: bool = _opt(True, "use the static content variable w (false: a plain deep state-space model)",
                         family="srvp")
    content_frames: int = _opt(5, "k: frames used for w (random during training, last conditioning at test) "
                               "and for q(y_1|x_1:k)", bound="positive")
    skip_connections: bool = _opt(False, "skip connections from the encoder to the decoder (needs content)",
                                  family="srvp")
    inference_hidden: int = _opt(256, "hidden size of the inference MLPs, of the z-posterior LSTM and size of w",
                                 bound="positive", family="srvp")
    inference_layers: int = _opt(3, "linear layers of the inference MLPs", bound="positive", family="srvp")
    forward_hidden: int = _opt(512, "hidden size of the forward MLPs (transition f and prior on z)",
                               bound="positive", family="srvp")
    forward_layers: int = _opt(4, "linear layers of the forward MLPs", bound="positive", family="srvp")
    activation: str = _opt("relu", "activation of the MLPs (the authors' code uses relu)", ("relu", "leaky_relu"),
                           family="srvp")
    dt: float = _opt(1.0, "Euler step size in training; must be 1/n for an integer n", tunable=True)
    residual_gain: float = _opt(1.41, "orthogonal initialisation gain of the transition f", family="srvp",
                                tunable=True)
    obs_scale: float = _opt(1.0, "standard deviation of the Gaussian observation model, sqrt(nu)", bound="positive",
                            tunable=True)
    beta_y: float = _opt(1.0, "weight of KL(q(y_1) || N(0, I))", bound="non-negative", family="srvp", tunable=True)
    beta_z: float = _opt(1.0, "weight of the KL terms on z", bound="non-negative", tunable=True)
    residual_penalty: float = _opt(1.0, "lambda: weight of the l2 norm of the residuals",
                                   bound="non-negative", family="srvp", tunable=True)
    svg_rnn_hidden: int = _opt(256, "SVG-LP only: hidden size of its predictor, prior and posterior LSTMs",
                               bound="positive", family="svg")
    svg_predictor_layers: int = _opt(2, "SVG-LP only: layers of the predictor LSTM", bound="positive", family="svg")
    svg_latent_layers: int = _opt(1, "SVG-LP only: layers of the prior and posterior LSTMs", bound="positive",
                                  family="svg")

    @property
    def step_size(self) -> StepSize:
        """The training step ``dt`` as a :class:`StepSize` (``n = 1/dt`` Euler steps per frame)."""
        return StepSize.from_dt(self.dt)

    def architecture_differences(self, other: ModelConfig) -> list[str]:
        """``name=self's value vs other's`` for every field that defines the networks (all but the ``tunable``
        ones: objective weights, step size, initialisation) and differs: weights trained under ``other`` mean
        something else in this model unless the list is empty."""
        return [f"{f.name}={getattr(self, f.name)!r} vs {getattr(other, f.name)!r}" for f in dataclasses.fields(self)
                if not f.metadata.get("tunable") and getattr(self, f.name) != getattr(other, f.name)]

    @property
    def stochastic(self) -> bool:
        """Whether the model has the auxiliary variable z."""
        return self.transition != "deterministic"

    def validate(self, source: str = "model config") -> None:
        """Reject impossible values and combinations of the model alone with a one-line :class:`ConfigError` (the
        models call it, so that ``SRVP(ModelConfig(filters=0))`` is refused as a config file would be)."""
        _check_fields(self, source, family_of=self.model)
        try:
            StepSize.from_dt(self.dt)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None
        if self.channels not in (1, 3):
            raise ConfigError(f"{source}: channels={self.channels} must be 1 (grey) or 3 (colour)")
        if self.architecture in ("dcgan", "vgg") and self.frame_size != 64:
            raise ConfigError(f"{source}: the {self.architecture} architecture needs frame_size=64, got "
                              f"{self.frame_size}")
        if self.skip_connections and not self.content:
            raise ConfigError(f"{source}: skip_connections need the content variable (content=true)")
        if self.skip_connections and self.architecture == "mlp":
            raise ConfigError(f"{source}: the mlp architecture has no skip connections")
        check = MODEL_CHECKS.get(self.model)
        if check is None:  # reached only while no model is registered (the field's choices refuse other names)
            raise ConfigError(f"{source}: model={self.model!r} is not a registered model family (registered: "
                              f"{', '.join(MODEL_CHECKS) or 'none; import srvp.models'})")
        try:  # what the model family cannot do, e.g. a step size it has no Euler step for
            check(self)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


def _check_fields(section: Any, source: str, family_of: str | None = None) -> None:
    """Each field of a config section against its metadata: choices, finiteness, bounds and (for the model section,
    ``family_of`` its model family) the family that uses it."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        choices = f.metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{source}: {f.name}={value!r} is not one of {', '.join(choices)}")
        if isinstance(value, float) and not math.isfinite(value):  # e.g. residual_gain, which has no range
            raise ConfigError(f"{source}: {f.name}={value!r} must be a finite number")
        family = f.metadata.get("family")
        if family_of is not None and family is not None and family != family_of and value != f.default:
            raise ConfigError(f"{source}: {f.name}={value!r} is an option of the {family} model; the "
                              f"{family_of} model does not use it (leave it at {f.default!r})")
        bound = f.metadata.get("bound")
        if bound is not None:
            holds, rule = BOUNDS[bound]
            if not (isinstance(value, (int, float)) and not isinstance(value, bool) and holds(value)):
                raise ConfigError(f"{source}: {f.name}={value!r} {rule}")


@dataclass
class DataConfig:
    """Where clips come from and how long they are."""

    dataset: str = _opt("smmnist", "dataset: smmnist (stochastic Moving MNIST), mmnist (deterministic), or a "
                        "converted dataset (kth, bair, pendulum, videos)")
    data_dir: str = _opt("data", "directory of the dataset files (MNIST IDX files, converted datasets)")
    digits: str = _opt("auto", "Moving MNIST digits: 'auto' (IDX files in data_dir if present, else the "
                       "embedded 5,000 digits), 'embedded', or a directory of MNIST IDX files")
    num_digits: int = _opt(2, "Moving MNIST: digits per clip", bound="positive")
    max_speed: int = _opt(4, "Moving MNIST: maximum absolute integer speed per axis", bound="non-negative")
    seq_len: int = _opt(15, "frames per training clip", bound="positive")
    cond_frames: int = _opt(5, "conditioning frames at test time", bound="positive")
    test_seq_len: int = _opt(25, "frames per test clip (conditioning + predicted)", bound="positive")
    test_set: str = _opt("", "test set .npz in the official SRVP layout (empty: generated or converted default)")
    test_sequences: int = _opt(5000, "sequences in a generated test set", bound="positive")
    val_sequences: int = _opt(256, "held-out validation sequences used for model selection", bound="non-negative")
    num_workers: int = _opt(0, "data loader worker processes (0: load in the training process)", bound="non-negative")
    video_size: int = _opt(64, "user videos (dataset videos): frame width and height after centre-crop and resize")
    video_channels: int = _opt(3, "user videos (dataset videos): 1 grey, 3 colour")


@dataclass
class TrainConfig:
    """Optimisation, precision, checkpoints and logging."""

    steps: int = _opt(1_100_000, "total optimisation steps (0: only write the initial model, e.g. after "
                      "init_from)", bound="non-negative")
    init_from: str = _opt("", "start from these weights (weights only; a fresh optimiser and schedule): a model "
                          "name of srvp pretrained list, a Hub-layout or authors' folder, or an srvp train checkpoint; "
                          "the model options must match the weights'")
    autoencoder_steps: int = _opt(0, "frame-autoencoder stage: the first N steps train the frame encoder, decoder, "
                                  "content network and q(y_1) to redraw every frame (a sliding window of the first "
                                  "frame's ELBO terms; srvp/training/autoencoder.py), then the full objective; "
                                  "SRVP only", bound="non-negative")
    short_clip_steps: int = _opt(0, "clip-length curriculum: the first N steps train on the first short_clip_len "
                                 "frames of each clip (more clips per second), then on whole clips",
                                 bound="non-negative")
    short_clip_len: int = _opt(0, "clip length during the first short_clip_steps steps (at least content_frames "
                               "and 2, at most seq_len)", bound="non-negative")
    lr_schedule: str = _opt("linear-decay", "learning rate after the warm-up: linear-decay (the paper: constant, "
                            "then linear to 0 over the last decay_steps) or cosine (from lr to 0 at the last step)",
                            LR_SCHEDULES)
    decay_steps: int = _opt(100_000, "linear-decay schedule: final steps over which the learning rate decays "
                            "linearly to 0 (must be 0 with the cosine schedule)", bound="non-negative")
    warmup_steps: int = _opt(0, "first steps over which the learning rate rises linearly from 0 to lr",
                             bound="non-negative")
    lr: float = _opt(3e-4, "Adam learning rate (per process; the global batch is batch_size x world size)",
                     bound="positive")
    frame_lr_scale: float = _opt(1.0, "learning rate of the frame encoder and decoder as a multiple of lr (the same "
                                 "schedule); 1: one rate for every parameter, as the paper", bound="positive")
    adam_beta1: float = _opt(0.9, "Adam's beta1 (first-moment decay)", bound="unit")
    adam_beta2: float = _opt(0.999, "Adam's beta2 (second-moment decay)", bound="unit")
    adam_eps: float = _opt(1e-8, "Adam's epsilon", bound="positive")
    grad_clip: float = _opt(0.0, "clip the global gradient norm to this value; 0: no clipping", bound="non-negative")
    kl_warmup_steps: int = _opt(0, "KL annealing: the weights of the KL terms (beta_y, beta_z) rise linearly from 0 "
                                "to their values over these first steps; 0: the paper's objective from step 1",
                                bound="non-negative")
    ema_decay: float = _opt(0.0, "exponential moving average of the weights (e.g. 0.999), used for validation and "
                            "saved as the model of best.pt and last.pt; 0: no average", bound="unit")
    batch_size: int = _opt(128, "clips per optimisation step and per process", bound="positive")
    seed: int = _opt(1, "random seed; batches are a pure function of (seed, step), so runs resume exactly",
                     bound="seed")
    device: str = _opt("auto", "auto, cpu, cuda or cuda:N")
    precision: str = _opt("fp32", "autocast precision of the forward pass", PRECISIONS)
    channels_last: bool = _opt(False, "use channels-last memory format for convolutions")
    compile: bool = _opt(False, "torch.compile the frame encoder and decoder")
    val_interval: int = _opt(5000, "steps between validations (best-of-N PSNR, keeps the best model); 0: never",
                             bound="non-negative")
    val_samples: int = _opt(20, "samples per validation sequence (best of N)", bound="positive")
    checkpoint_interval: int = _opt(1000, "steps between checkpoints", bound="positive")
    keep_checkpoints: int = _opt(3, "number of periodic checkpoints kept", bound="positive")
    log_interval: int = _opt(50, "steps between TensorBoard scalar logs", bound="positive")
    sample_interval: int = _opt(5000, "steps between TensorBoard sample videos; 0: never", bound="non-negative")
    max_nonfinite: int = _opt(10, "consecutive non-finite steps tolerated before the run stops", bound="positive")
    out_dir: str = _opt("runs/srvp", "output directory of the run (checkpoints, config, logs)")


@dataclass
class RunConfig:
    """Everything needed to reproduce a run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RunConfig:
        """Build and validate a configuration; unknown keys and wrong types raise :class:`ConfigError`."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a JSON object with sections model, data, train")
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{source}: unknown section(s) {sorted(unknown)}; expected model, data, train")
        sections = {}
        for f in dataclasses.fields(cls):
            section_cls = f.default_factory  # type: ignore[misc]
            sections[f.name] = _section_from_dict(section_cls, data.get(f.name, {}), f"{source}: {f.name}")
        cfg = cls(**sections)
        cfg.validate(source)
        return cfg

    @classmethod
    def from_json(cls, path: str | Path) -> RunConfig:
        return cls.from_dict(read_config_json(path), str(path))

    def validate(self, source: str = "config") -> None:
        """Reject impossible values and combinations with a one-line :class:`ConfigError`."""
        m, d, t = self.model, self.data, self.train
        m.validate(source)
        _check_fields(d, source)
        _check_fields(t, source)
        if m.content_frames > d.seq_len:
            raise ConfigError(f"{source}: content_frames={m.content_frames} exceeds seq_len={d.seq_len}")
        if m.content_frames > d.cond_frames:
            raise ConfigError(f"{source}: content_frames={m.content_frames} exceeds cond_frames={d.cond_frames}")
        if d.cond_frames >= d.test_seq_len:
            raise ConfigError(f"{source}: cond_frames={d.cond_frames} leaves nothing to predict in "
                              f"test_seq_len={d.test_seq_len}")
        if d.seq_len < 2:
            raise ConfigError(f"{source}: seq_len={d.seq_len} must be at least 2")
        if t.autoencoder_steps and m.model != "srvp":
            raise ConfigError(f"{source}: autoencoder_steps={t.autoencoder_steps} is an SRVP recipe (it trains "
                              f"SRVP's q(y_1) network); the {m.model} model does not have it")
        if t.autoencoder_steps > t.steps:
            raise ConfigError(f"{source}: autoencoder_steps={t.autoencoder_steps} exceeds steps={t.steps}")
        if t.short_clip_steps and not max(2, m.content_frames) <= t.short_clip_len <= d.seq_len:
            raise ConfigError(f"{source}: short_clip_len={t.short_clip_len} must be between "
                              f"{max(2, m.content_frames)} (2 and content_frames) and seq_len={d.seq_len} when "
                              f"short_clip_steps is set")
        if t.decay_steps > t.steps:
            raise ConfigError(f"{source}: decay_steps={t.decay_steps} exceeds steps={t.steps}")
        if t.lr_schedule == "cosine" and t.decay_steps:
            raise ConfigError(f"{source}: decay_steps={t.decay_steps} belongs to the linear-decay schedule; the "
                              f"cosine schedule decays over all the steps after the warm-up (set decay_steps=0)")
        if t.warmup_steps + t.decay_steps > t.steps:
            raise ConfigError(f"{source}: warmup_steps={t.warmup_steps} + decay_steps={t.decay_steps} exceed "
                              f"steps={t.steps}")


class _DuplicateKeyError(ValueError):
    """A JSON object names the same key twice."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``json.loads`` hook: an object, refusing a key given twice (plain JSON would keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out


def read_json_object(path: str | Path, what: str, expected: str,
                     error: type[SrvpError] = ConfigError) -> dict[str, Any]:
    """The JSON object in ``path``; a missing, unreadable or malformed file, or one that does not hold an object,
    raises ``error`` with one line naming the file (``what``: "config", ...; ``expected``: what the object holds)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
    except FileNotFoundError:
        raise error(f"{path}: {what} file not found") from None
    except OSError as e:  # a directory, no permission, ...
        raise error(f"{path}: cannot read the {what} file ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise error(f"{path}: not valid JSON ({e})") from None
    except _DuplicateKeyError as e:
        raise error(f"{path}: key {e.args[0]!r} appears twice in one object (which one is meant?)") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object {expected}")
    return data


def read_config_json(path: str | Path) -> dict[str, Any]:
    """The JSON object of a config file; a missing, unreadable or malformed file is a one-line
    :class:`ConfigError`."""
    return read_json_object(path, "config", "with sections model, data, train")


@dataclass(frozen=True)
class StepSize:
    """The Euler step of the latent dynamics, ``dt = 1/n``: ``n`` steps per frame interval (``n = 1``: one step per
    frame). The one reader of step sizes (config files, ``--dt`` options, the demo) and their one label in reports;
    whether a model accepts one is the model's to say (:meth:`srvp.models.base.VideoPredictor.check_step`).

    ``StepSize(2).dt == 0.5``, ``StepSize(2).label == "1/2"``, ``StepSize.parse("1/2") == StepSize.from_dt(0.5)``.
    """

    n: int
    """Euler steps per frame interval, a positive integer."""

    def __post_init__(self) -> None:
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            raise ConfigError(f"dt=1/{self.n!r} must be 1/n for a positive integer n")

    @property
    def dt(self) -> float:
        """The step as a number, ``1 / n`` (exactly what ``1 / n`` gives in floating point)."""
        return 1.0 / self.n

    @property
    def label(self) -> str:
        """``1``, ``1/2``, ``1/3`` ...: how reports and the demo name the step."""
        return "1" if self.n == 1 else f"1/{self.n}"

    def __str__(self) -> str:
        return self.label

    @classmethod
    def from_dt(cls, dt: float) -> StepSize:
        """The step of a number ``dt = 1/n``; any other value is a one-line :class:`ConfigError`."""
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not math.isfinite(dt) or dt <= 0 or dt > 1:
            raise ConfigError(f"dt={dt!r} must be 1/n for a positive integer n")
        n = round(1.0 / dt)
        if abs(n * dt - 1.0) > 1e-6:
            raise ConfigError(f"dt={dt!r} must be 1/n for a positive integer n (1/dt = {1 / dt:.4g})")
        return cls(n)

    @classmethod
    def parse(cls, text: str) -> StepSize:
        """A step written as ``0.5``, ``1/2`` or ``1/4``; anything else is a one-line :class:`ConfigError`."""
        try:
            if "/" in text:
                num, den = text.split("/", 1)
                value = float(num) / float(den)
            else:
                value = float(text)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"dt={text!r} is not a number such as 0.5 or 1/2") from None
        return cls.from_dt(value)

    @classmethod
    def of(cls, value: StepSize | float | str) -> StepSize:
        """``value`` as a step: a :class:`StepSize` as it is, a number by :meth:`from_dt`, text by :meth:`parse`."""
        if isinstance(value, StepSize):
            return value
        return cls.parse(value) if isinstance(value, str) else cls.from_dt(value)

    @classmethod
    def argument(cls, text: str) -> StepSize:
        """:meth:`parse` as an argparse ``type``: a bad value is a usage error naming the option (exit 2)."""
        try:
            return cls.parse(text)
        except ConfigError as e:
            raise argparse.ArgumentTypeError(str(e)) from None


def distinct_steps(steps: Sequence[StepSize] | None, option: str = "--dt") -> list[StepSize] | None:
    """Step sizes given on the command line, each once: ``--dt 1 1`` (or ``1/2 0.5``) would evaluate, and report,
    the same setting twice; a one-line :class:`ConfigError` names the repeated value."""
    seen: list[StepSize] = []
    for step in steps or []:
        if step in seen:
            raise ConfigError(f"{option}: the step size {step.dt:g} is given twice; give each step size once")
        seen.append(step)
    return None if steps is None else seen


def check_seed(value: Any, name: str = "seed") -> int:
    """``value`` as a random seed (an integer from 0 to :data:`MAX_SEED`), else a one-line :class:`ConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_SEED:
        raise ConfigError(f"{name}={value!r} must be an integer from 0 to {MAX_SEED}")
    return value


def seed_argument(text: str) -> int:
    """A ``--seed`` value as an argparse ``type``: an integer from 0 to :data:`MAX_SEED`, else a usage error."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is outside 0 ... {MAX_SEED} (2^32 - 1), the seeds every random "
                                         f"generator here accepts")
    return value


# ----------------------------------------------------------------------------------------------------------------
# Presets: the paper's hyperparameters (Appendix C) per dataset, the SVG-LP baseline's, and small CPU presets (the
# quickstart's and the shipped models'). A preset that differs from another in a few values is written as that
# difference (derive_preset), so that what distinguishes it is all its entry says.
# ----------------------------------------------------------------------------------------------------------------

#: preset name -> its overrides per section (``model``, ``data``, ``train``) of the dataclasses' defaults
PRESETS: dict[str, dict[str, dict[str, Any]]] = {}


def derive_preset(base: str, **changes: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The preset ``base`` with ``changes`` (per section, ``{field: value}``) replacing or adding its values, field by
    field: ``derive_preset("smmnist", data={"dataset": "mmnist"})`` is smmnist on deterministic Moving MNIST."""
    sections = {f.name for f in dataclasses.fields(RunConfig)}
    if base not in PRESETS or not set(changes) <= sections:
        raise ValueError(f"derive_preset({base!r}): no such preset, or a section other than "
                         f"{', '.join(sorted(sections))} in {sorted(changes)}")
    return {section: {**values, **changes.get(section, {})} for section, values in PRESETS[base].items()}


# Stochastic Moving MNIST: DCGAN, ny = nz = 20, k = 5, nu = 1, beta_z = 2, batch 128, 15 frames,
# 1,000,000 steps plus 100,000 of linear decay; tested 5 -> 20.
PRESETS["smmnist"] = {
    "model": {"architecture": "dcgan", "state_dim": 20, "noise_dim": 20, "content_frames": 5, "beta_z": 2.0,
              "obs_scale": 1.0},
    "data": {"dataset": "smmnist", "num_digits": 2, "seq_len": 15, "cond_frames": 5, "test_seq_len": 25},
    "train": {"steps": 1_100_000, "decay_steps": 100_000, "batch_size": 128},
}
# Deterministic Moving MNIST: as above, 800,000 + 100,000 steps; tested 5 -> 95 with one sample.
PRESETS["mmnist"] = derive_preset("smmnist", data={"dataset": "mmnist", "test_seq_len": 100},
                                  train={"steps": 900_000})
# KTH: VGG with skips, ny = nz = 50, k = 3, dt = 1/2, gain 1.2, nu = 0.04, batch 100, 20-frame clips,
# 200,000 steps with model selection on a validation split; tested 10 -> 30.
PRESETS["kth"] = {
    "model": {"architecture": "vgg", "skip_connections": True, "state_dim": 50, "noise_dim": 50,
              "content_frames": 3, "dt": 0.5, "residual_gain": 1.2, "obs_scale": 0.2, "beta_z": 1.0},
    "data": {"dataset": "kth", "seq_len": 20, "cond_frames": 10, "test_seq_len": 40},
    "train": {"steps": 200_000, "decay_steps": 0, "batch_size": 100},
}
# BAIR: VGG with skips, colour, ny = nz = 50, k = 2, dt = 1/2, nu = 1/2, batch 128, 12-frame clips,
# 250,000 steps with model selection; tested 2 -> 28.
PRESETS["bair"] = {
    "model": {"architecture": "vgg", "skip_connections": True, "channels": 3, "state_dim": 50,
              "noise_dim": 50, "content_frames": 2, "dt": 0.5, "obs_scale": 0.71, "beta_z": 1.0},
    "data": {"dataset": "bair", "seq_len": 12, "cond_frames": 2, "test_seq_len": 30},
    "train": {"steps": 250_000, "decay_steps": 0, "batch_size": 128},
}
# Pendulum (Appendix E): MLP encoder/decoder, no content variable; the test ELBO is the reported figure.
PRESETS["pendulum"] = {
    "model": {"architecture": "mlp", "frame_size": 16, "filters": 256, "frame_dim": 32, "state_dim": 8,
              "noise_dim": 8, "content": False, "content_frames": 3, "obs_scale": 0.1, "beta_z": 1.0},
    "data": {"dataset": "pendulum", "seq_len": 15, "cond_frames": 3, "test_seq_len": 15},
    "train": {"steps": 100_000, "decay_steps": 10_000, "batch_size": 128},
}
# Small stochastic Moving MNIST model for this 2-core CPU: one digit, fewer filters, a sharper observation
# model and a higher learning rate, so that a few minutes of training track the digit (measured: best-of-20
# PSNR 18.1 dB after 750 steps vs 17.6 for the last frame and 17.0 for a blank one; see the quickstart).
PRESETS["cpu"] = {
    "model": {"architecture": "dcgan", "filters": 16, "state_dim": 20, "noise_dim": 20, "content_frames": 5,
              "inference_hidden": 128, "forward_hidden": 128, "obs_scale": 0.25, "beta_z": 1.0},
    "data": {"dataset": "smmnist", "num_digits": 1, "seq_len": 10, "cond_frames": 5, "test_seq_len": 15,
             "test_sequences": 100, "val_sequences": 32},
    "train": {"steps": 3000, "decay_steps": 500, "lr": 1e-3, "batch_size": 16, "val_interval": 500,
              "val_samples": 10, "checkpoint_interval": 250, "sample_interval": 500, "precision": "bf16",
              "out_dir": "runs/cpu"},
}
# The quickstart: the cpu preset's model and data with the fastest recipe measured for a ~10-minute CPU budget
# (docs/time-to-quality.md): channels-last bf16, lr 3e-3 with a warm-up and a cosine decay, a weight average, and
# the frame autoencoder's levers (the frame encoder and decoder at 3x the rate, gradients clipped at the median
# norm of this recipe's first 400 steps, Adam's beta2 0.99): SSIM 0.61 -> 0.80 at 5 CPU minutes.
PRESETS["quickstart"] = derive_preset(
    "cpu", train={"steps": 4200, "decay_steps": 0, "lr_schedule": "cosine", "warmup_steps": 100, "lr": 3e-3,
                  "ema_decay": 0.998, "channels_last": True, "frame_lr_scale": 3.0, "grad_clip": 2500.0,
                  "adam_beta2": 0.99, "val_interval": 1000, "checkpoint_interval": 500, "sample_interval": 1000,
                  "out_dir": "runs/quickstart"})
# The paper's two-digit SM-MNIST model with the fastest recipe measured for an hour-scale CPU budget (the shipped
# model smmnist-cpu): the quickstart's recipe (lr 2e-3, more steps, more frequent checkpoints), with the observation
# scale 0.25 instead of the paper's 1 (with 1 the model stays at blank-frame quality for thousands of steps;
# docs/time-to-quality.md) and smaller test and validation sets.
PRESETS["smmnist-cpu"] = derive_preset(
    "smmnist", model={"obs_scale": 0.25}, data={"test_sequences": 200, "val_sequences": 64},
    train={**PRESETS["quickstart"]["train"], "steps": 4600, "lr": 2e-3, "val_interval": 500,
           "checkpoint_interval": 100, "sample_interval": 500, "out_dir": "runs/smmnist-cpu",
           # the shipped model's recipe as released; its measured better one, for the next stage:
           # --frame-lr-scale 3 --grad-clip 3000 --adam-beta2 0.99 (docs/time-to-quality.md, `kept`)
           "frame_lr_scale": 1.0, "grad_clip": 0.0, "adam_beta2": 0.999})
# SVG-LP baseline (Denton & Fergus 2018, edenton/svg train_svg_lp.py): DCGAN with skips, g_dim 128, z 10,
# LSTMs of 256 (predictor 2 layers, prior/posterior 1), beta 1e-4, Adam lr 2e-3, batch 100, 5 + 10 frames,
# 300 epochs x 600 steps, constant lr. content_frames is its n_past (skip connections in training).
PRESETS["svg-smmnist"] = {
    "model": {"model": "svg", "architecture": "dcgan", "frame_dim": 128, "noise_dim": 10, "svg_rnn_hidden": 256,
              "svg_predictor_layers": 2, "svg_latent_layers": 1, "beta_z": 1e-4, "content_frames": 5},
    "data": {"dataset": "smmnist", "num_digits": 2, "seq_len": 15, "cond_frames": 5, "test_seq_len": 25},
    "train": {"steps": 180_000, "decay_steps": 0, "batch_size": 100, "lr": 2e-3, "out_dir": "runs/svg"},
}
PRESETS["svg-mmnist"] = derive_preset("svg-smmnist", data={"dataset": "mmnist", "test_seq_len": 100})
# SVG-LP counterpart of the "cpu" preset: SVG-LP with the cpu preset's filters, data and batch, SVG's lr, and half
# the cpu preset's steps (1,500 with 300 of decay).
PRESETS["svg-cpu"] = derive_preset(
    "svg-smmnist", model={"filters": 16}, data=PRESETS["cpu"]["data"],
    train={**PRESETS["cpu"]["train"], "steps": 1500, "decay_steps": 300, "lr": 2e-3, "out_dir": "runs/svg-cpu"})
# Deterministic Moving MNIST with the smmnist-cpu model and recipe (docs/results/paper-claims.md): trained on 15-frame
# clips, tested 5 -> 95 with one sample, as the paper's mmnist.
PRESETS["mmnist-cpu"] = derive_preset("smmnist-cpu", data={"dataset": "mmnist", "test_seq_len": 100},
                                      train={"out_dir": "runs/mmnist-cpu"})


def preset(name: str) -> RunConfig:
    """The :class:`RunConfig` of a named preset: a key of :data:`PRESETS` (listed below), validated."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return RunConfig.from_dict(PRESETS[name], f"preset {name}")


if preset.__doc__:  # the list of presets, from PRESETS itself (None under python -OO)
    preset.__doc__ += "\n\n    Presets: " + ", ".join(f"``{name}``" for name in PRESETS) + "."


# ----------------------------------------------------------------------------------------------------------------
# Dict and command-line plumbing
# ----------------------------------------------------------------------------------------------------------------


def _field_type(section_cls: type, f: dataclasses.Field) -> type:
    hints = typing.get_type_hints(section_cls)
    tp = hints[f.name]
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in typing.get_args(tp) if a is not type(None))
    return tp


def _coerce(value: Any, tp: type, where: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            return value.lower() in ("true", "1", "yes", "on")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            if where.endswith(".dt"):
                try:
                    return StepSize.parse(value).dt
                except ConfigError as e:
                    raise ConfigError(f"{where}: {e}") from None
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value


def _section_from_dict(section_cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(section_cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    values = {k: _coerce(v, _field_type(section_cls, fields[k]), f"{where}.{k}") for k, v in data.items()}
    return section_cls(**values)


SECTIONS = {"model": ModelConfig, "data": DataConfig, "train": TrainConfig}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per configuration field (default: unset, so presets and config files are not overridden
    by command-line defaults)."""
    seen: dict[str, str] = {}
    for section, section_cls in SECTIONS.items():
        group = parser.add_argument_group(f"{section} options ({section_cls.__doc__.strip().splitlines()[0]})")
        for f in dataclasses.fields(section_cls):
            assert f.name not in seen, f"config field {f.name} is in {seen.get(f.name)} and {section}"
            seen[f.name] = section
            tp = _field_type(section_cls, f)
            metavar = {bool: "BOOL", int: "INT", float: "FLOAT", str: "STR"}[tp]
            choices = f.metadata.get("choices")
            if choices:
                metavar = "{" + ",".join(choices) + "}"
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
            group.add_argument(f"--{f.name.replace('_', '-')}", dest=f"cfg__{section}__{f.name}", default=None,
                               metavar=metavar, help=f"{f.metadata.get('help', '')} (default {default!r})")


def section_of(name: str) -> str | None:
    """The configuration section (``model``, ``data`` or ``train``) that has a field ``name``; None if none has."""
    return next((section for section, cls in SECTIONS.items()
                 if name in {f.name for f in dataclasses.fields(cls)}), None)


def with_fields(cfg: RunConfig, values: Mapping[str, Any], source: str) -> RunConfig:
    """``cfg`` with the fields named in ``values`` (field name -> value, in any section; strings are read as
    ``--flag`` values are) changed, validated as a whole; an unknown name or a bad value is a one-line
    :class:`ConfigError` starting with ``source``."""
    data = cfg.to_dict()
    for name, value in values.items():
        section = section_of(name)
        if section is None:
            raise ConfigError(f"{source}: {name!r} is not a configuration field")
        data[section][name] = value
    return RunConfig.from_dict(data, source)


def apply_overrides(cfg: RunConfig | dict[str, Any], args: argparse.Namespace,
                    source: str = "command line") -> RunConfig:
    """Return ``cfg`` (a config, or its dict not yet validated) with the options given on the command line, validated
    once as a whole (so a file's value that only the flags make consistent is accepted)."""
    data = cfg.to_dict() if isinstance(cfg, RunConfig) else {k: dict(v) if isinstance(v, dict) else v
                                                              for k, v in cfg.items()}
    for key, value in vars(args).items():
        if key.startswith("cfg__") and value is not None:
            _, section, name = key.split("__", 2)
            if section not in data:
                data[section] = {}
            if isinstance(data[section], dict):  # a malformed section (not an object) is left for validation
                data[section][name] = value
    return RunConfig.from_dict(data, source)
