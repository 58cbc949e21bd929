"""The one table of metric facts (``srvp.evaluation.metrics.METRICS``) and the one best-of-N rule (``rank_samples``):
the rule against a hand computation, and a metric added to the table alone reaching the protocol, the report, the
command line's choices and ``srvp predict``'s ranking (issue 25, item 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from srvp.cli.main import build_parser, main
from srvp.evaluation import EvalSettings, evaluate_model
from srvp.evaluation.metrics import METRICS, Metric, frame_metrics, pixel_metrics, rank_samples
from srvp.evaluation.report import markdown_table, write_report
from tests.test_predict import moving_square, save_tiny_checkpoint
from tests.test_protocol import COND, tiny_model, tiny_sequences


def _hand_ranking(scores: list[float], higher_is_better: bool) -> list[int]:
    """Indices best first, by hand: repeatedly take the best remaining score, the first one among equals."""
    left, order = list(range(len(scores))), []
    while left:
        pick = left[0]
        for i in left[1:]:
            if (scores[i] > scores[pick]) if higher_is_better else (scores[i] < scores[pick]):
                pick = i
        order.append(pick)
        left.remove(pick)
    return order


@pytest.mark.parametrize("metric", ["psnr", "ssim", "lpips"])
def test_best_of_n_is_the_hand_computed_best_in_the_metrics_direction(metric):
    rows = [[3.0, 5.0, 5.0, 1.0, 2.5], [2.0, 2.0, 0.5, 4.0, 0.5], [7.0, 7.0, 7.0, 7.0, 7.0]]
    ranking = rank_samples(torch.tensor(rows, dtype=torch.float64), metric)
    higher = {"psnr": True, "ssim": True, "lpips": False}[metric]  # written out here, not read from the table
    for b, row in enumerate(rows):
        order = _hand_ranking(row, higher)
        assert ranking.order[b].tolist() == order
        assert int(ranking.best[b]) == order[0] and int(ranking.worst[b]) == order[-1]
        assert float(ranking.best_score[b]) == (max(row) if higher else min(row))
        assert float(ranking.worst_score[b]) == (min(row) if higher else max(row))
    # one sequence (N,) and NumPy scores work alike; the best of one sample is that sample
    assert int(rank_samples(np.array([0.2, 0.9, 0.4]), "psnr").best) == 1
    assert int(rank_samples(torch.tensor([0.3]), "lpips").best) == 0


def test_the_table_holds_each_metrics_facts_once():
    assert tuple(METRICS) == ("psnr", "ssim", "lpips", "fvd")
    assert [METRICS[m].title for m in METRICS] == ["PSNR ↑", "SSIM ↑", "LPIPS ↓", "FVD ↓"]
    assert [METRICS[m].digits for m in METRICS] == [2, 4, 4, 1]
    assert frame_metrics() == ("psnr", "ssim", "lpips") and pixel_metrics() == ("psnr", "ssim")
    assert [METRICS[m].network for m in METRICS] == [None, None, "lpips", "i3d"]
    assert METRICS["ssim"].interval_text(0.123456, 0.01) == "0.1235 ± 0.0100"


def _mae(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error per frame ``(...)`` of frames ``(..., C, H, W)``."""
    return (pred.float() - target.float()).abs().mean(dim=(-3, -2, -1))


@pytest.fixture
def mae(monkeypatch):
    """A metric a newcomer adds: one entry of the table, nothing else."""
    monkeypatch.setitem(METRICS, "mae", Metric("mae", "MAE", higher_is_better=False, digits=3, score=_mae))
    return "mae"


def test_a_metric_added_to_the_table_reaches_every_front_end(mae, tmp_path, capsys):
    # the command line offers it: srvp evaluate --metrics (every metric), srvp predict --metric (no network needed)
    parser = build_parser()
    assert parser.parse_args(["evaluate", "--checkpoint", "x", "--metrics", "psnr", mae]).metrics == ["psnr", mae]
    assert parser.parse_args(["predict", "--checkpoint", "x", "--input", "y", "--metric", mae]).metric == mae

    # the protocol scores it, best of N in its direction (lower is better): with 3 samples the first 5 kept are all
    result = evaluate_model(tiny_model(), tiny_sequences(n=3), COND,
                            EvalSettings(n_samples=3, metrics=("psnr", mae), elbo=False), progress=False)
    model = result.settings[0]
    np.testing.assert_array_equal(model.best[mae], model.random[mae].min(axis=1))
    np.testing.assert_array_equal(model.worst[mae], model.random[mae].max(axis=1))
    np.testing.assert_array_equal(model.best["psnr"], model.random["psnr"].max(axis=1))
    assert result.reconstruction["clip"][mae].shape == (3, result.cond_frames + result.horizon)

    # the report titles it and prints it with its digits
    table = markdown_table(result)
    assert "| | PSNR ↑ | MAE ↓ |" in table
    summary = result.summary()["settings"][0]["metrics"][mae]["best"]
    assert f"{summary['mean']:.3f} ± {summary['ci95']:.3f}" in table
    paths = write_report(result, tmp_path / "report")
    assert "per_step.png" in {p.name for p in paths.values()}
    assert json.loads(paths["json"].read_text())["metrics"] == ["psnr", mae]

    # srvp predict ranks the samples by it: the best has the lowest error, the worst the highest
    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    np.save(tmp_path / "clip.npy", moving_square(30))
    out = tmp_path / "predict"
    assert main(["predict", "--checkpoint", str(checkpoint), "--input", str(tmp_path / "clip.npy"), "--samples", "4",
                 "--metric", mae, "--out", str(out)]) == 0, capsys.readouterr().err
    scores = json.loads((out / "summary.json").read_text())["scores"]
    values = scores["values"]
    assert scores["metric"] == mae and values[scores["best"]] == min(values) and values[scores["worst"]] == max(values)


def test_the_evaluate_help_names_the_metrics_that_need_weight_files(capsys):
    assert main(["evaluate", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{psnr,ssim,lpips,fvd}" in help_text and "lpips and fvd need weight files" in help_text
