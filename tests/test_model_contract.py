"""The model contract (``srvp.models.base.VideoPredictor``) checked on every registered model and every variant, as
torchvision's and vp-suite's model tests do: a model registered with ``@register_model(name)`` is tested the day it
is added (with its defaults until it gets a tiny variant below, which one test asks for).

Checked for each variant: the shapes of ``forward``, ``loss``, ``condition`` + ``sample_futures``, ``predict`` and
``reconstruct``; the loss terms; a gradient for every parameter; the same seed gives the same samples, another seed
other samples, means no randomness at all; a save -> load round trip through the checkpoint file and the Hub layout
gives the same weights and the same samples; a step the model cannot take is refused everywhere with the contract's
one message; ``predict`` runs in evaluation mode and restores the mode it found (the model's and ``Predictor``'s).
The registry itself: one name per class, duplicates refused, the config's model choices are the registered names.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from srvp.api import Predictor
from srvp.config import MODEL_CHECKS, ModelConfig, RunConfig, StepSize, add_config_arguments
from srvp.errors import ConfigError
from srvp.models import MODELS, SRVP, SVGLP, VideoPredictor, build_model, register_model
from srvp.training.checkpoint import atomic_torch_save, load_checkpoint, make_checkpoint

B, T, C, SIZE = 2, 6, 1, 64  # clips (B, T, C, SIZE, SIZE)
N_COND, HORIZON, N_SAMPLES = 3, 4, 3


@dataclass(frozen=True)
class Variant:
    """A tiny configuration of a registered model family, and what the contract expects of it."""

    family: str
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    fine_steps: bool | None = None  # whether dt = 1/2 is accepted (None: as the class's step_limit says)
    terms: frozenset[str] | None = None  # the loss's keys (None: only the contract's core keys are checked)

    @property
    def id(self) -> str:
        return f"{self.family}-{self.name}"

    def config(self, **more: Any) -> ModelConfig:
        return ModelConfig(model=self.family, **{**self.overrides, **more})


SHARED = dict(architecture="dcgan", filters=4, frame_dim=16, noise_dim=3, content_frames=2)
SRVP_TINY = dict(SHARED, state_dim=4, inference_hidden=16, forward_hidden=16)
SRVP_TERMS = frozenset({"total", "nll", "kl_y", "kl_z", "residual", "elbo"})
SVG_TERMS = frozenset({"total", "mse", "kl_z", "nll", "elbo"})
#: what the contract asks of every model's loss: the objective, the reconstruction term the trainer reports, the ELBO
CORE_TERMS = frozenset({"total", "nll", "elbo"})

#: the variants of each registered family: SRVP's transitions (residual, MLP, GRU), without z (deterministic),
#: without content, with skip connections; SVG-LP
VARIANTS: dict[str, list[Variant]] = {
    "srvp": [
        Variant("srvp", "residual", SRVP_TINY, fine_steps=True, terms=SRVP_TERMS),
        Variant("srvp", "mlp", {**SRVP_TINY, "transition": "mlp"}, fine_steps=False, terms=SRVP_TERMS),
        Variant("srvp", "gru", {**SRVP_TINY, "transition": "gru"}, fine_steps=False, terms=SRVP_TERMS),
        Variant("srvp", "no-z", {**SRVP_TINY, "transition": "deterministic"}, fine_steps=True, terms=SRVP_TERMS),
        Variant("srvp", "no-content", {**SRVP_TINY, "content": False}, fine_steps=True, terms=SRVP_TERMS),
        Variant("srvp", "skips", {**SRVP_TINY, "skip_connections": True}, fine_steps=True, terms=SRVP_TERMS),
    ],
    "svg": [Variant("svg", "lp", dict(SHARED, svg_rnn_hidden=16), fine_steps=False, terms=SVG_TERMS)],
}


def all_variants() -> list[Variant]:
    """Every variant of every registered model; a model without variants above is tested with its defaults."""
    return [v for family in MODELS for v in VARIANTS.get(family, [Variant(family, "defaults")])]


every_variant = pytest.mark.parametrize("variant", all_variants(), ids=lambda v: v.id)


def clips(seed: int = 0) -> torch.Tensor:
    return torch.rand(B, T, C, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def lively_model(variant: Variant) -> VideoPredictor:
    """The variant's model with its weights moved away from the initialisation (seeded noise of std 0.3) and its
    batch-norm statistics from two training passes, in evaluation mode: an untrained model draws frames of about
    0.5 whatever its noise and inputs, which would let a model that ignores them pass."""
    torch.manual_seed(0)
    model = build_model(variant.config())
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=noise))
        model.train()
        model(clips(1))
        model(clips(2))
    return model.eval()


def seeded(seed: int, call):
    torch.manual_seed(seed)
    return call()


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert different == []


# ----------------------------------------------------------------------------------------------------------------
# The registry
# ----------------------------------------------------------------------------------------------------------------


def test_the_registry_holds_each_model_class_under_one_name_and_the_config_offers_exactly_those():
    assert MODELS["srvp"] is SRVP and MODELS["svg"] is SVGLP
    assert all(issubclass(cls, VideoPredictor) for cls in MODELS.values())
    assert len(set(MODELS.values())) == len(MODELS)
    assert list(MODEL_CHECKS) == list(MODELS)
    model_field = next(f for f in dataclasses.fields(ModelConfig) if f.name == "model")
    assert list(model_field.metadata["choices"]) == list(MODELS)
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    flag = next(a for a in parser._actions if a.dest == "cfg__model__model")
    assert flag.metavar == "{" + ",".join(MODELS) + "}"
    with pytest.raises(ConfigError, match=rf"model config: model='vrnn' is not one of {', '.join(MODELS)}$"):
        ModelConfig(model="vrnn").validate()


def test_every_registered_model_has_tiny_variants_and_every_variant_a_registered_model():
    assert set(VARIANTS) == set(MODELS), "give a newly registered model its tiny variants in VARIANTS"
    assert {v.family for v in all_variants()} == set(MODELS)


def test_every_family_named_by_a_config_field_is_a_registered_model():
    families = {f.metadata["family"] for f in dataclasses.fields(ModelConfig) if "family" in f.metadata}
    assert families <= set(MODELS)


def test_a_name_registered_twice_is_refused_and_the_first_class_stays():
    class Impostor(SRVP):
        pass

    with pytest.raises(ValueError, match=r"register_model\('srvp'\): the name is already registered by "
                                         r"srvp\.models\.srvp\.SRVP; choose another name for .*Impostor"):
        register_model("srvp")(Impostor)
    assert MODELS["srvp"] is SRVP and MODEL_CHECKS["srvp"] == SRVP.check_config
    with pytest.raises(TypeError, match="is not a VideoPredictor subclass"):
        register_model("plain-module")(torch.nn.Linear)
    assert "plain-module" not in MODELS and "plain-module" not in MODEL_CHECKS


@pytest.fixture
def scratch_registry():
    """Undo what a test registers."""
    before_models, before_checks = dict(MODELS), dict(MODEL_CHECKS)
    yield
    MODELS.clear()
    MODELS.update(before_models)
    MODEL_CHECKS.clear()
    MODEL_CHECKS.update(before_checks)


@pytest.mark.usefixtures("scratch_registry")
def test_a_registered_class_is_a_config_choice_at_once_and_its_own_check_runs_in_validation():
    @register_model("picky")
    class Picky(SRVP):
        @classmethod
        def check_config(cls, config: ModelConfig) -> None:
            if config.noise_dim != 7:
                raise ConfigError(f"the picky model needs noise_dim=7, got {config.noise_dim}")

    assert MODELS["picky"] is Picky
    with pytest.raises(ConfigError, match=r"^run: the picky model needs noise_dim=7, got 20$"):
        RunConfig.from_dict({"model": {"model": "picky"}}, "run")
    cfg = RunConfig.from_dict({"model": {"model": "picky", "noise_dim": 7, "filters": 4, "frame_dim": 8}}, "run")
    assert type(build_model(cfg.model)) is Picky
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    assert next(a for a in parser._actions if a.dest == "cfg__model__model").metavar.endswith(",picky}")


def test_build_model_refuses_a_family_that_is_not_registered():
    with pytest.raises(ConfigError, match=f"model='vrnn' is not a registered model family; registered: "
                                          f"{', '.join(MODELS)}$"):
        build_model(ModelConfig(model="vrnn"))


# ----------------------------------------------------------------------------------------------------------------
# Training: forward and loss
# ----------------------------------------------------------------------------------------------------------------


@every_variant
def test_forward_reconstructs_the_clip_and_the_loss_has_the_contract_terms(variant):
    model = lively_model(variant).train()
    x = clips()
    out = model(x)
    assert out.frames.shape == (B, T, C, SIZE, SIZE)
    assert out.frames.min() >= 0 and out.frames.max() <= 1
    terms = model.loss(x, out)
    assert set(terms) >= CORE_TERMS
    if variant.terms is not None:
        assert set(terms) == variant.terms
    assert all(v.shape == () and torch.isfinite(v) for v in terms.values()), terms
    # the ELBO is the reconstruction term minus KL divergences (>= 0), whatever the objective's weights
    elbo, nll = float(terms["elbo"].detach()), float(terms["nll"].detach())
    assert elbo <= -nll + 1e-3 * abs(nll)
    without_kl = model.loss(x, out, kl_scale=0.0)
    assert without_kl["total"] < terms["total"]  # the KL terms are weighted by kl_scale, and they are not zero
    assert torch.equal(without_kl["elbo"], terms["elbo"])  # kl_scale weighs the objective, not the ELBO


@every_variant
def test_the_objective_reaches_every_parameter(variant):
    model = lively_model(variant).train()
    x = clips()
    model.loss(x, model(x))["total"].backward()
    without = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert without == []


# ----------------------------------------------------------------------------------------------------------------
# Generation: condition, sample_futures, predict, reconstruct
# ----------------------------------------------------------------------------------------------------------------


@every_variant
def test_condition_then_sample_futures_gives_n_samples_of_horizon_frames(variant):
    model = lively_model(variant)
    x_cond = clips()[:, :N_COND]
    with torch.no_grad():
        cond = model.condition(x_cond)
        futures = model.sample_futures(cond, HORIZON, N_SAMPLES)
        with_past = model.sample_futures(cond, HORIZON, 2, include_conditioning=True)
        one = model.sample_futures(cond, 1)
    assert futures.shape == (B, N_SAMPLES, HORIZON, C, SIZE, SIZE)
    assert with_past.shape == (B, 2, N_COND + HORIZON, C, SIZE, SIZE)
    assert one.shape == (B, 1, 1, C, SIZE, SIZE)
    assert futures.min() >= 0 and futures.max() <= 1
    assert (futures[:, 0] - futures[:, 1]).abs().max() > 1e-2  # the samples are separate draws


@every_variant
def test_predict_is_condition_then_sample_futures_in_evaluation_mode(variant):
    model = lively_model(variant)
    x_cond = clips()[:, :N_COND]
    with torch.no_grad():
        expected = seeded(5, lambda: model.sample_futures(model.condition(x_cond), HORIZON, N_SAMPLES))
    model.train()
    got = seeded(5, lambda: model.predict(x_cond, HORIZON, N_SAMPLES))
    assert got.shape == (B, N_SAMPLES, HORIZON, C, SIZE, SIZE) and not got.requires_grad
    assert torch.equal(got, expected)


@every_variant
def test_reconstruct_draws_the_clip_from_its_posterior_means(variant):
    model = lively_model(variant)
    x = clips()
    with torch.no_grad():
        a = seeded(1, lambda: model.reconstruct(x, N_COND))
        b = seeded(2, lambda: model.reconstruct(x, N_COND))
    assert a.shape == (B, T, C, SIZE, SIZE)
    assert torch.equal(a, b)  # means, no draws


@every_variant
def test_the_same_seed_gives_the_same_samples_and_another_seed_others(variant):
    model = lively_model(variant)
    x_cond = clips()[:, :N_COND]
    first = seeded(3, lambda: model.predict(x_cond, HORIZON, N_SAMPLES))
    again = seeded(3, lambda: model.predict(x_cond, HORIZON, N_SAMPLES))
    other = seeded(4, lambda: model.predict(x_cond, HORIZON, N_SAMPLES))
    assert torch.equal(first, again)
    # every variant draws (y_1 at least, without z), so another seed gives other futures
    assert (first - other).abs().max() > 1e-2
    means = [seeded(s, lambda: model.predict(x_cond, HORIZON, 2, use_mean=True)) for s in (3, 4)]
    assert torch.equal(means[0], means[1])  # the means leave nothing to chance
    assert torch.equal(means[0][:, 0], means[0][:, 1])


@every_variant
def test_predict_restores_the_training_mode_it_found(variant):
    model = lively_model(variant)
    x_cond = clips()[:, :N_COND]
    with torch.no_grad():  # the mode matters (batch statistics, test-time content), so the checks below can fail
        probe = copy.deepcopy(model)
        assert (probe.train()(clips()).frames - probe.eval()(clips()).frames).abs().max() > 1e-2
    in_eval = model.predict(x_cond, HORIZON, use_mean=True)
    model.train()
    in_train = model.predict(x_cond, HORIZON, use_mean=True)
    assert model.training and all(m.training for m in model.modules())
    assert torch.equal(in_train, in_eval)  # it ran in evaluation mode all the same
    model.eval()
    model.predict(x_cond, HORIZON)
    assert not any(m.training for m in model.modules())

    predictor = Predictor(model, device="cpu")
    in_eval = predictor.predict(x_cond, HORIZON, use_mean=True)
    predictor.model.train()
    assert torch.equal(predictor.predict(x_cond, HORIZON, use_mean=True), in_eval)
    assert predictor.model.training and all(m.training for m in predictor.model.modules())


# ----------------------------------------------------------------------------------------------------------------
# Save and load
# ----------------------------------------------------------------------------------------------------------------


@every_variant
def test_a_checkpoint_round_trip_gives_the_same_model_and_samples(variant, tmp_path):
    model = lively_model(variant)
    cfg = RunConfig(model=variant.config())
    path = tmp_path / "model.pt"
    atomic_torch_save(make_checkpoint(model, cfg, step=7), path)
    loaded = load_checkpoint(path)
    assert type(loaded.model) is MODELS[variant.family]
    assert loaded.config.model == cfg.model and loaded.step == 7 and not loaded.model.training
    same_weights(loaded.model, model)
    x_cond = clips()[:, :N_COND]
    assert torch.equal(seeded(6, lambda: loaded.model.predict(x_cond, HORIZON, N_SAMPLES)),
                       seeded(6, lambda: model.predict(x_cond, HORIZON, N_SAMPLES)))


@every_variant
def test_a_hub_layout_round_trip_gives_the_same_model_and_samples(variant, tmp_path):
    model = lively_model(variant)
    saved = Predictor(copy.deepcopy(model), RunConfig(model=variant.config()), device="cpu")
    saved.save_pretrained(tmp_path / "hub")
    loaded = Predictor.from_pretrained(tmp_path / "hub", device="cpu")
    assert type(loaded.model) is MODELS[variant.family]
    assert loaded.config == saved.config
    same_weights(loaded.model, model)
    x = clips()[:, :N_COND]
    assert torch.equal(seeded(6, lambda: loaded.predict(x, HORIZON, N_SAMPLES)),
                       seeded(6, lambda: saved.predict(x, HORIZON, N_SAMPLES)))


# ----------------------------------------------------------------------------------------------------------------
# Step sizes
# ----------------------------------------------------------------------------------------------------------------


@every_variant
def test_a_step_below_one_frame_is_taken_or_refused_everywhere_with_the_contract_message(variant):
    model = lively_model(variant)
    cls = type(model)
    fine = cls.step_limit(model.config) is None
    if variant.fine_steps is not None:
        assert fine == variant.fine_steps
    x = clips()
    cond = model.condition(x[:, :N_COND])
    predictor = Predictor(copy.deepcopy(model), device="cpu")
    calls = {
        "predict": lambda: model.predict(x[:, :N_COND], HORIZON, dt=0.5, keep_intermediate=True),
        "sample_futures": lambda: model.sample_futures(cond, HORIZON, dt=StepSize(2), keep_intermediate=True),
        "Predictor.predict": lambda: predictor.predict(x[:, :N_COND], HORIZON, dt="1/2", keep_intermediate=True),
    }
    if fine:
        for name, call in calls.items():
            assert call().shape == (B, 1, 2 * HORIZON, C, SIZE, SIZE), name
        assert model(x, dt=0.5).frames.shape == (B, T, C, SIZE, SIZE)
        variant.config(dt=0.5).validate()
        assert build_model(variant.config(dt=0.5)).step_size() == StepSize(2)
    else:
        message = rf"^(model config: )?dt=0\.5: {re.escape(cls.step_limit(model.config))}, so only dt=1 is possible$"
        calls["forward"] = lambda: model(x, dt=0.5)
        calls["validate"] = lambda: variant.config(dt=0.5).validate()
        calls["build"] = lambda: build_model(variant.config(dt=0.5))
        for name, call in calls.items():
            with pytest.raises(ConfigError, match=message) as refused:
                call()
            assert "\n" not in str(refused.value), name
    for bad in (0.3, 2.0):  # not 1/n: no model takes it
        with pytest.raises(ConfigError, match=r"must be 1/n for a positive integer n"):
            model.predict(x[:, :N_COND], HORIZON, dt=bad)
