"""What a comparison is asked to do (``srvp compare``): one record, checked when it is made."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srvp.config import PRECISIONS, PRESETS, RunConfig, StepSize, check_seed, distinct_steps
from srvp.errors import ConfigError
from srvp.evaluation import EvalSettings
from srvp.evaluation.metrics import pixel_metrics
from srvp.tasks.compare.variants import DEFAULT_MODELS, VARIANTS, base_config, check_overrides

#: the metrics compared (those of :data:`srvp.evaluation.metrics.METRICS` that need no pretrained network: PSNR, SSIM)
COMPARED = pixel_metrics()


@dataclass(frozen=True)
class CompareSettings:
    """A comparison: which models, trained how long, evaluated how, written where. A value no comparison can run
    with is a one-line :class:`~srvp.errors.ConfigError` naming ``srvp compare``'s option, when the record is made;
    what depends on the machine and the files (the device, a given checkpoint) is checked when it runs."""

    preset: str = "cpu"
    """Base preset: dataset, clip lengths, batch size and SRVP hyperparameters."""
    out_dir: str | Path = "runs/compare"
    """Folder of the runs (``runs/<run>``), of each model's evaluation (``eval/<run>``) and of the comparison."""
    models: Sequence[str] = DEFAULT_MODELS
    """Variants to train (names of :data:`~srvp.tasks.compare.variants.VARIANTS`)."""
    checkpoints: Mapping[str, str] = field(default_factory=dict)
    """Trained checkpoints by model name, used instead of training that model (a name may also be a new label)."""
    overrides: Mapping[str, Any] = field(default_factory=dict)
    """Training and data fields changed for every run (``--set NAME=VALUE``: the recipe all models share); SVG-LP
    keeps its published optimiser (:data:`~srvp.tasks.compare.variants.SVG_OPTIMISER`)."""
    steps: int | None = None
    """Training steps per model (None: the preset's)."""
    seconds: float | None = None
    """Wall-clock training budget per model, in seconds."""
    seeds: Sequence[int] | None = None
    """Training seeds: each model is trained once per seed (None: the preset's seed, one run per model)."""
    train_only: bool = False
    """Train (or resume) the runs and stop before the evaluation."""
    test_dts: Sequence[StepSize | float | str] = ()
    """Also evaluate the models whose transition is an Euler step at these step sizes (a Δt table)."""
    n_samples: int = 20
    """Futures per test sequence (best of N)."""
    test_sequences: int | None = None
    """Evaluate on the first N test sequences (None: all)."""
    precision: str = "fp32"
    """Autocast precision of the evaluation."""
    device: str = "cpu"
    """Evaluation device (training uses the preset's)."""
    seed: int = EvalSettings.seed
    """Evaluation seed."""
    cost_batch: int = 16
    """Sequences per generation-cost measurement."""
    cost_samples: int = 10
    """Futures per sequence in the cost measurement."""
    progress: bool = True
    """Progress bars."""
    command: str = ""
    """The command as typed, written under the table."""
    note: str = ""
    """Free text written under the table (e.g. the machine's load)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        object.__setattr__(self, "checkpoints", dict(self.checkpoints))
        object.__setattr__(self, "test_dts", tuple(distinct_steps([StepSize.of(d) for d in self.test_dts],
                                                                  "--test-dt") or ()))
        if self.preset not in PRESETS:
            raise ConfigError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        object.__setattr__(self, "overrides", check_overrides(self.overrides, self.preset))
        for name in self.names:
            if name not in VARIANTS and name not in self.checkpoints:
                raise ConfigError(f"unknown model {name!r}; choose among {', '.join(VARIANTS)} or give --checkpoint "
                                  f"{name}=PATH")
        if self.seconds is not None and not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ConfigError(f"--seconds {self.seconds:g} must be a positive finite number")
        if self.seeds is not None:
            self._check_seeds()
        for option, value in (("--steps", self.steps), ("--samples", self.n_samples),
                              ("--test-sequences", self.test_sequences), ("--cost-batch", self.cost_batch),
                              ("--cost-samples", self.cost_samples)):
            if value is not None and value < 1:
                raise ConfigError(f"{option}={value} must be positive")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision {self.precision!r}: choose one of {', '.join(PRECISIONS)}")
        check_seed(self.seed, "--seed")

    def _check_seeds(self) -> None:
        seeds = tuple(self.seeds or ())
        object.__setattr__(self, "seeds", seeds)
        for seed in seeds:
            check_seed(seed, "--seeds: seed")
        text = ",".join(map(str, seeds))
        if not seeds:
            raise ConfigError(f"--seeds {text}: give distinct training seeds")
        if len(set(seeds)) < len(seeds):
            raise ConfigError(f"--seeds {text!r}: a seed appears twice (each seed is one run per model)")

    @property
    def names(self) -> list[str]:
        """The models of the comparison: those to train, then the labels of given checkpoints, each once."""
        return list(dict.fromkeys([*self.models, *self.checkpoints]))

    def base_config(self) -> RunConfig:
        """The base preset with ``overrides``: the data (hence the test clips) and the recipe of every run."""
        return base_config(self.preset, self.overrides)

    @property
    def out(self) -> Path:
        return Path(self.out_dir)
