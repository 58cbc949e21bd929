"""srvp compare: the variants' configurations, equal budgets, the table, and a tiny end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from srvp.cli.main import main
from srvp.config import preset
from srvp.errors import ConfigError
from srvp.tasks.compare import VARIANTS, apply_budget, comparison_markdown, paired_differences, variant_config


def test_variants_share_data_and_schedule_and_differ_as_in_the_paper(tmp_path):
    base = preset("cpu")
    cfgs = {name: variant_config("cpu", name) for name in VARIANTS}
    for name, cfg in cfgs.items():
        assert cfg.data == base.data, name  # same dataset, clips and test set
        assert (cfg.train.steps, cfg.train.batch_size, cfg.train.seed) == \
            (base.train.steps, base.train.batch_size, base.train.seed)
    assert cfgs["srvp"].model == base.model
    assert cfgs["mlp"].model.transition == "mlp" and cfgs["gru"].model.transition == "gru"
    assert cfgs["deterministic"].model.transition == "deterministic" and not cfgs["deterministic"].model.stochastic
    assert cfgs["no-content"].model.content is False
    svg = cfgs["svg"]
    assert svg.model.model == "svg" and svg.model.beta_z == 1e-4 and svg.model.noise_dim == 10
    assert (svg.model.architecture, svg.model.filters) == (base.model.architecture, base.model.filters)
    assert svg.train.lr == 2e-3 and cfgs["srvp"].train.lr == base.train.lr
    # a base preset without an svg- counterpart still gets SVG's published sizes on its own encoder family
    kth_svg = variant_config("kth", "svg")
    assert (kth_svg.model.architecture, kth_svg.model.svg_rnn_hidden, kth_svg.model.dt) == ("vgg", 256, 1.0)
    assert variant_config("kth", "gru").model.dt == 1.0  # the gru transition has no Euler step

    budget = apply_budget(cfgs["srvp"], 300, tmp_path / "r")
    expected_decay = round(300 * base.train.decay_steps / base.train.steps)  # same decay fraction as the preset
    assert (budget.train.steps, budget.train.decay_steps) == (300, expected_decay) and expected_decay > 0
    assert budget.train.out_dir == str(tmp_path / "r")
    with pytest.raises(ConfigError, match="unknown model"):
        variant_config("cpu", "convlstm")


def test_set_gives_every_run_one_recipe_and_svg_keeps_its_optimiser(tmp_path):
    from srvp.tasks.compare import CompareSettings
    from srvp.tasks.compare.runs import run_configs
    from srvp.tasks.compare.variants import SVG_OPTIMISER

    settings = CompareSettings(preset="quickstart", out_dir=tmp_path, models=["srvp", "gru", "svg"], steps=40,
                               overrides={"frame_lr_scale": "2.5", "grad_clip": "100", "precision": "fp32",
                                          "batch_size": "8", "num_digits": "2"})
    configs = run_configs(settings)
    for name in ("srvp", "gru"):
        train = configs[name].train
        assert (train.frame_lr_scale, train.grad_clip, train.precision, train.batch_size) == (2.5, 100.0, "fp32", 8)
        assert configs[name].data.num_digits == 2 and train.steps == 40
    svg = configs["svg"].train
    # the quickstart preset's own levers (frame lr x3, clipping, beta2 0.99) do not reach SVG-LP either
    assert preset("quickstart").train.grad_clip > 0 and preset("quickstart").train.adam_beta2 != 0.999
    assert {k: getattr(svg, k) for k in SVG_OPTIMISER} == SVG_OPTIMISER
    assert (svg.precision, svg.batch_size, svg.steps) == ("fp32", 8, 40) and configs["svg"].data.num_digits == 2
    assert settings.base_config().data.num_digits == 2  # the test clips follow the data overrides
    for bad, message in ((["filters"], "a field of the model section"), (["nope"], "not a configuration field"),
                         (["seed"], "set by the comparison itself"), (["grad_clip", "-1"], "must be >= 0"),
                         (["lr_schedule", "zigzag"], "lr_schedule")):
        with pytest.raises(ConfigError, match=message):
            CompareSettings(overrides={bad[0]: bad[1] if len(bad) > 1 else "1"})
    text = comparison_markdown({**_summary(), "overrides": {"frame_lr_scale": "3"}})
    assert "Recipe of every run beyond the preset: `frame_lr_scale=3`" in text
    assert "Recipe of every run" not in comparison_markdown(_summary())


def _record(name, psnr, ci):
    entry = {"mean": psnr, "ci95": ci}
    return {"name": name, "label": name, "steps": 10, "train_seconds": 1.0, "parameters": 1e6,
            "frames_per_second": 100.0, "psnr": {"best": entry, "random": entry},
            "ssim": {"best": {"mean": psnr / 100, "ci95": ci / 100}, "random": {"mean": psnr / 100, "ci95": 0.0}}}


def _summary():
    return {"dataset": "smmnist", "preset": "cpu", "n_samples": 5, "n_sequences": 10, "cond_frames": 5,
            "horizon": 10, "budget": {"steps": 10, "seconds": None, "batch_size": 16},
            "cost": {"batch": 2, "samples": 2}, "machine": "test", "command": "srvp compare", "note": "",
            "models": [_record("a", 15.0, 0.5), _record("b", 14.6, 0.1), _record("c", 14.0, 0.1)],
            "baselines": {"blank": {"psnr": {"best": {"mean": 13.0, "ci95": 0.1}},
                                    "ssim": {"best": {"mean": 0.8, "ci95": 0.01}}}}}


def test_table_bolds_the_best_and_those_within_its_interval():
    summary = _summary()
    rows = {line.split(" | ")[0][2:]: line for line in comparison_markdown(summary).splitlines()
            if line.startswith("| ")}
    assert "**15.00 ± 0.50**" in rows["a"] and "**14.60 ± 0.10**" in rows["b"]  # b within a's interval
    assert "**" not in rows["c"].split(" | ")[4]
    assert "13.00 ± 0.10" in rows["baseline: blank"]


def test_paired_differences_match_numpy():
    rng = np.random.default_rng(0)
    ref = rng.normal(15, 2, 50)
    other = ref + rng.normal(0.3, 0.1, 50)  # a small, consistent gain that unpaired intervals would not resolve
    scores = {name: {"psnr": {"best": v, "random": v - 1}, "ssim": {"best": v / 20, "random": v / 20}}
              for name, v in (("a", ref), ("b", other))}
    d = paired_differences(scores, "a")["b"]["psnr"]["best"]
    diff = other - ref
    assert d["mean"] == pytest.approx(diff.mean())
    assert d["ci95"] == pytest.approx(1.96 * diff.std() / np.sqrt(50))
    assert d["mean"] - d["ci95"] > 0 and 1.96 * ref.std() / np.sqrt(50) > d["mean"]


def test_end_to_end_tiny_run_and_given_checkpoint(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--preset", "cpu", "--out-dir", str(out), "--models", "deterministic,svg", "--steps", "2",
            "--test-sequences", "3", "--samples", "2", "--cost-batch", "2", "--cost-samples", "2", "--no-progress"]
    assert main(args) == 0
    summary = json.loads((out / "comparison.json").read_text())
    assert [r["name"] for r in summary["models"]] == ["deterministic", "svg"]
    assert all(r["steps"] == 2 and r["frames_per_second"] > 0 for r in summary["models"])
    assert summary["models"][1]["model"] == "svg"
    assert summary["paired_reference"] == "deterministic" and set(summary["paired"]) == {"svg"}
    assert "Paired differences to SRVP - deterministic (no z)" in (out / "comparison.md").read_text()
    for name in ("comparison.md", "per_step.csv", "per_step.png", "eval/svg/results.md"):
        assert (out / name).stat().st_size > 0, name
    rows = (out / "per_step.csv").read_text().splitlines()
    assert len(rows) == 1 + (2 + 2) * 2 * 10  # (2 models + 2 baselines) x (psnr, ssim) x 10 predicted frames

    # Rerunning reuses the finished runs; a given checkpoint joins under its own name.
    svg_ckpt = out / "runs" / "svg" / "best.pt"
    args2 = [*args[:6], "deterministic", *args[7:], "--checkpoint", f"svg-given={svg_ckpt}"]
    assert main(args2) == 0
    assert "reusing the finished run" in capsys.readouterr().out
    summary2 = json.loads((out / "comparison.json").read_text())
    given = summary2["models"][1]
    assert given["name"] == "svg-given" and given["train_seconds"] is None
    assert given["psnr"] == summary["models"][1]["psnr"]  # same weights, same seeds: the same scores

    assert main([*args, "--checkpoint", f"svg={tmp_path / 'missing.pt'}"]) == 2
    assert "missing.pt: checkpoint file of model 'svg' not found" in capsys.readouterr().err
    other_budget = list(args)
    other_budget[args.index("--steps") + 1] = "3"  # another budget into the same directory
    assert main(other_budget) == 2
    assert "holds a finished run with another configuration or budget" in capsys.readouterr().err
    assert main([*args, "--set", "grad_clip=5"]) == 2  # another recipe into the same directory
    assert "holds a finished run with another configuration or budget" in capsys.readouterr().err


def test_wall_clock_budget_stops_training(tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "--preset", "cpu", "--out-dir", str(out), "--models", "deterministic", "--seconds", "4",
            "--test-sequences", "2", "--samples", "1", "--cost-batch", "1", "--cost-samples", "1", "--no-progress"]
    assert main(args) == 0
    record = json.loads((out / "comparison.json").read_text())["models"][0]
    assert 0 < record["steps"] < preset("cpu").train.steps
    assert record["train_seconds"] < 60  # stopped by the budget, long before 3,000 steps


def test_seed_interval_adds_the_spread_between_seeds():
    from srvp.evaluation.metrics import confidence_interval
    from srvp.tasks.compare import seed_interval

    rng = np.random.default_rng(1)
    one = rng.normal(15, 2, 40)
    single = seed_interval(one)
    mean, ci = confidence_interval(one)  # one seed: the paper's interval
    assert single["mean"] == pytest.approx(mean) and single["ci95"] == pytest.approx(ci)
    runs = np.stack([one, one + 0.8, one - 0.2])  # three seeds: the same sequences, shifted by training noise
    agg = seed_interval(runs)
    seed_means = runs.mean(axis=1)
    expected = 1.96 * np.sqrt(runs.mean(axis=0).var() / 40 + np.var(seed_means, ddof=1) / 3)
    assert agg["mean"] == pytest.approx(runs.mean()) and agg["ci95"] == pytest.approx(expected)
    assert agg["ci95"] > agg["ci95_sequences"] and agg["seeds"] == pytest.approx(seed_means.tolist())
    # paired differences with seeds: both models' seed variances add to the sequences'
    scores = {"a": {"psnr": {"best": runs}}, "b": {"psnr": {"best": np.stack([one + 1.0, one + 1.4])}}}
    d = paired_differences(scores, "a")["b"]["psnr"]["best"]
    diff = scores["b"]["psnr"]["best"].mean(axis=0) - runs.mean(axis=0)
    var = diff.var() / 40 + np.var(seed_means, ddof=1) / 3 + np.var([16.0, 16.4], ddof=1) / 2
    assert d["mean"] == pytest.approx(diff.mean()) and d["ci95"] == pytest.approx(1.96 * np.sqrt(var), rel=1e-6)


def test_scores_file_round_trip_and_corruption(tmp_path):
    from srvp.errors import DataError
    from srvp.evaluation import EvalResult, SettingScores, read_scores, write_scores

    rng = np.random.default_rng(2)
    settings = [SettingScores("model", 0.5, best={"psnr": rng.random(4)}, worst={"psnr": rng.random(4)},
                              best_index={"psnr": np.arange(4)}, random={"psnr": rng.random((4, 2))},
                              best_curves={"psnr": rng.random((4, 3))}),
                SettingScores("blank", None, best={"psnr": rng.random(4)}, worst={"psnr": rng.random(4)},
                              best_index={"psnr": np.zeros(4, int)}, random={"psnr": rng.random((4, 1))},
                              best_curves={"psnr": rng.random((4, 3))})]
    result = EvalResult(metrics=("psnr",), cond_frames=2, horizon=3, n_samples=2, batch_size=2, seed=3,
                        precision="fp32", train_dt=0.5, indices=np.arange(4), settings=settings, elbo=rng.random(4),
                        meta={"checkpoint": "x.pt"})
    back = read_scores(write_scores(result, tmp_path / "scores.npz"))
    assert back.summary() == result.summary()
    for a, b in zip(result.settings, back.settings):
        for kind in ("best", "worst", "best_index", "random", "best_curves"):
            np.testing.assert_array_equal(getattr(a, kind)["psnr"], getattr(b, kind)["psnr"])
    np.testing.assert_array_equal(back.elbo, result.elbo)
    (tmp_path / "bad.npz").write_bytes((tmp_path / "scores.npz").read_bytes()[:100])
    with pytest.raises(DataError, match="bad.npz: not a readable evaluation scores file"):
        read_scores(tmp_path / "bad.npz")


def test_seeds_test_dts_samples_and_reused_evaluations(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", "--preset", "cpu", "--out-dir", str(out), "--models", "srvp,gru", "--seeds", "1,2",
            "--steps", "2", "--test-sequences", "3", "--samples", "2", "--cost-batch", "2", "--cost-samples", "2",
            "--test-dt", "1", "1/2", "--no-progress"]
    assert main([*args, "--train-only"]) == 0
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["gru-seed1", "gru-seed2", "srvp-seed1", "srvp-seed2"]
    assert not (out / "comparison.json").exists()
    seeds = {p.name: json.loads((p / "config.json").read_text())["train"]["seed"] for p in (out / "runs").iterdir()}
    assert seeds == {"gru-seed1": 1, "gru-seed2": 2, "srvp-seed1": 1, "srvp-seed2": 2}
    capsys.readouterr()
    assert main(args) == 0
    assert "reusing the finished run" in capsys.readouterr().out
    summary = json.loads((out / "comparison.json").read_text())
    srvp, gru = summary["models"]
    assert srvp["runs"] == ["srvp-seed1", "srvp-seed2"] and summary["training_seeds"] == [1, 2]
    assert set(srvp["dts"]) == {"1", "1/2"} and "dts" not in gru  # the GRU transition has no Euler step
    assert srvp["psnr"]["best"]["mean"] == pytest.approx(np.mean(srvp["psnr"]["best"]["seeds"]))
    text = (out / "comparison.md").read_text()
    assert "| SRVP (residual) | 1/2 |" in text and "| SRVP - GRU transition | gru-seed2 |" in text
    assert (out / "samples.png").stat().st_size > 0 and (out / "eval" / "srvp-seed2" / "scores.npz").exists()
    # a rerun reads the four evaluations back and writes the same table
    assert main(args) == 0
    assert capsys.readouterr().out.count("reusing the evaluation") == 4
    assert json.loads((out / "comparison.json").read_text())["models"][0]["psnr"] == srvp["psnr"]
    assert main([*args[:-1], "--samples", "3", "--no-progress"]) == 0  # other settings: evaluated again
    assert "reusing the evaluation" not in capsys.readouterr().out
    # another comparison reaching the same runs through a link reuses them (a run's folder is not its identity)
    other = tmp_path / "other"
    other.mkdir()
    (other / "runs").symlink_to(out / "runs")
    assert main([*args[:args.index("--out-dir") + 1], str(other), *args[args.index("--out-dir") + 2:],
                 "--train-only"]) == 0
    assert capsys.readouterr().out.count("reusing the finished run") == 4
