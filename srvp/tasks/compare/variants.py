"""The models of a comparison: variants of one base preset (SRVP with its residual transition, the paper's ablations
and the SVG-LP baseline), each trained with the same data and schedule under an equal budget of steps."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from srvp.config import PRESETS, ModelConfig, RunConfig, preset, section_of, with_fields
from srvp.errors import ConfigError

#: name -> (label in tables and plots, changes to the base preset's model section; None: the SVG-LP baseline)
VARIANTS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "srvp": ("SRVP (residual)", {"transition": "residual"}),
    "mlp": ("SRVP - MLP transition", {"transition": "mlp", "dt": 1.0}),
    "gru": ("SRVP - GRU transition", {"transition": "gru", "dt": 1.0}),
    "deterministic": ("SRVP - deterministic (no z)", {"transition": "deterministic"}),
    "no-content": ("SRVP - no content variable", {"content": False, "skip_connections": False}),
    "svg": ("SVG-LP", None),
    "half-dt": ("SRVP (residual), trained with Δt = 1/2", {"transition": "residual", "dt": 0.5}),
}

DEFAULT_MODELS = ("srvp", "mlp", "gru", "deterministic", "no-content", "svg")

SVG_LR = 2e-3  # Denton & Fergus's Adam learning rate (edenton/svg, train_svg_lp.py)
#: SVG-LP's published optimiser (edenton/svg, train_svg_lp.py: Adam, lr 2e-3, betas (0.9, 0.999), no clipping, one
#: learning rate for every network): what a comparison's SVG-LP keeps whatever the base preset or ``--set`` give SRVP
SVG_OPTIMISER: dict[str, Any] = {"lr": SVG_LR, "frame_lr_scale": 1.0, "adam_beta1": 0.9, "adam_beta2": 0.999,
                                 "adam_eps": 1e-8, "grad_clip": 0.0}
#: fields a comparison sets itself (``--steps``, ``--seeds``, ``--out-dir``), which ``--set`` may not change
COMPARE_OWNED = ("steps", "seed", "out_dir", "decay_steps")


def base_config(base_name: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Preset ``base_name`` with the fields of ``overrides`` (``--set``): the data and recipe every run shares."""
    return with_fields(preset(base_name), overrides or {}, f"--set on preset {base_name}")


def check_overrides(overrides: Mapping[str, Any], base_name: str) -> dict[str, Any]:
    """``overrides`` (field name -> value, ``srvp compare --set NAME=VALUE``) checked: each a field of the training or
    data section that the comparison does not set itself, with a value the base preset accepts. Returns them as a
    dict."""
    for name in overrides:
        section = section_of(name)
        if section not in ("train", "data"):
            where = f"a field of the {section} section" if section else "not a configuration field"
            raise ConfigError(f"--set {name}: {where}; --set changes training and data options (a model's "
                              f"architecture comes from --preset and --models)")
        if name in COMPARE_OWNED:
            raise ConfigError(f"--set {name}: set by the comparison itself (--steps, --seeds, --out-dir)")
    base_config(base_name, overrides)  # a value the preset refuses: one line now, not when a run starts
    return dict(overrides)


def variant_config(base_name: str, variant: str, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """The :class:`RunConfig` of ``variant`` derived from preset ``base_name`` with the training and data fields of
    ``overrides`` (``--set``): the same data and training schedule, the model section changed as listed in
    :data:`VARIANTS`.

    SVG-LP takes the model section of preset ``svg-<base_name>`` when there is one (else SVG's published sizes on
    the base's encoder/decoder family), with the base's frame encoder/decoder family, size and width, and SVG's
    published optimiser (:data:`SVG_OPTIMISER`: the base's or the overrides' optimiser fields do not apply to it).
    """
    if variant not in VARIANTS:
        raise ConfigError(f"unknown model {variant!r}; choose among {', '.join(VARIANTS)}")
    base = base_config(base_name, overrides)
    changes = VARIANTS[variant][1]
    if changes is not None:
        model = dataclasses.replace(base.model, **changes)
        train = base.train
    else:
        b = base.model
        svg_name = f"svg-{base_name}"
        svg_model = preset(svg_name).model if svg_name in PRESETS else ModelConfig(
            model="svg", frame_dim=128, noise_dim=10, svg_rnn_hidden=256, svg_predictor_layers=2,
            svg_latent_layers=1, beta_z=1e-4)
        model = dataclasses.replace(svg_model, architecture=b.architecture, channels=b.channels,
                                    frame_size=b.frame_size, filters=b.filters, dt=1.0,
                                    content_frames=min(base.data.cond_frames, base.data.seq_len))
        train = dataclasses.replace(base.train, **SVG_OPTIMISER)
    cfg = RunConfig(model=model, data=base.data, train=train)
    cfg.validate(f"compare: {variant} on preset {base_name}")
    return cfg


def apply_budget(cfg: RunConfig, steps: int | None, out_dir: Path) -> RunConfig:
    """``cfg`` trained for ``steps`` steps, writing to ``out_dir``: linear decay over the same fraction of the run
    as the preset's; the warm-up keeps its length in steps (it tames Adam's first updates, whatever the budget) up
    to a third of the run."""
    train = cfg.train
    if steps is not None:
        if steps < 1:
            raise ConfigError(f"--steps={steps} must be positive")
        decay = round(steps * train.decay_steps / train.steps)
        train = dataclasses.replace(train, steps=steps, decay_steps=decay,
                                    warmup_steps=min(train.warmup_steps, steps // 3),
                                    checkpoint_interval=min(train.checkpoint_interval, steps))
    cfg = RunConfig(model=cfg.model, data=cfg.data, train=dataclasses.replace(train, out_dir=str(out_dir)))
    cfg.validate(str(out_dir))
    return cfg


def training_units(model: str, seeds: Sequence[int] | None) -> list[tuple[str, int | None]]:
    """``(run name, training seed)`` of each run of ``model``: the model's name with the preset's seed, or
    ``<model>-seed<k>`` per seed of ``seeds``."""
    return [(model, None)] if seeds is None else [(f"{model}-seed{s}", s) for s in seeds]


def seeded(cfg: RunConfig, seed: int | None) -> RunConfig:
    """``cfg`` with training seed ``seed`` (initial weights, training clips and draws); ``None`` keeps it."""
    if seed is None:
        return cfg
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, seed=seed))
