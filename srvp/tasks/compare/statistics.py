"""The numbers of a comparison: each model's scores over its runs and test sequences (mean and 95% interval, with
the spread between training seeds), and paired differences to a reference model on the same sequences."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from srvp.evaluation import EvalResult
from srvp.tasks.compare.runs import TrainedModel
from srvp.tasks.compare.settings import COMPARED


def group_runs(trained: Sequence[TrainedModel]) -> dict[str, list[TrainedModel]]:
    """The runs of each model (one per training seed), in the order given."""
    groups: dict[str, list[TrainedModel]] = {}
    for tm in trained:
        groups.setdefault(tm.model, []).append(tm)
    return groups


def group_scores(runs: Sequence[TrainedModel], results: dict[str, EvalResult], setting: int = 0
                 ) -> dict[str, dict[str, np.ndarray]]:
    """``{metric: {"best" | "random": (S, N)}}``: per-sequence scores of each of the ``S`` runs of a model."""
    per_run = [per_sequence_scores(results[tm.name], setting) for tm in runs]
    return {m: {k: np.stack([p[m][k] for p in per_run]) for k in ("best", "random")} for m in COMPARED}


def seed_interval(values: np.ndarray) -> dict[str, Any]:
    """Mean and 95% interval of a model's score from ``values`` ``(S, N)`` (``S`` training seeds, ``N`` test
    sequences; ``(N,)`` is one seed).

    The estimate is the mean over seeds and sequences. Its variance has two parts: the test sequences' (variance
    over sequences of the seed-averaged scores, / N, with ddof 0 as the paper's intervals) and the training
    noise (variance between the seeds' means, ddof 1, / S; zero with one seed, where the interval is the paper's
    1.96 std / sqrt(N)). With few seeds the second part is itself a rough estimate."""
    a = np.atleast_2d(np.asarray(values, dtype=np.float64))
    n_seeds, n = a.shape
    per_sequence = a.mean(axis=0)
    var_sequences = per_sequence.var() / n
    var_seeds = a.mean(axis=1).var(ddof=1) / n_seeds if n_seeds > 1 else 0.0
    return {"mean": float(per_sequence.mean()), "ci95": float(1.96 * np.sqrt(var_sequences + var_seeds)),
            "ci95_sequences": float(1.96 * np.sqrt(var_sequences)), "seeds": [float(v) for v in a.mean(axis=1)]}


def model_record(runs: Sequence[TrainedModel], results: dict[str, EvalResult], speed: float) -> dict[str, Any]:
    """A model's row of the table: scores over its runs (:func:`seed_interval`), training cost, and its scores
    at each test step size."""
    first = runs[0]
    scores = group_scores(runs, results)
    record: dict[str, Any] = {
        "name": first.model, "label": first.label, "runs": [tm.name for tm in runs],
        "seeds": [tm.seed for tm in runs], "checkpoints": [str(tm.checkpoint) for tm in runs],
        "checkpoint": str(first.checkpoint), "steps": first.info["steps"],
        "train_seconds": None if first.train_seconds is None else
        float(np.mean([tm.train_seconds or 0.0 for tm in runs])),
        "parameters": first.info["parameters"], "model": first.info["model"], "frames_per_second": speed,
    }
    for m in COMPARED:
        record[m] = {k: seed_interval(scores[m][k]) for k in ("best", "random")}
    settings = [s for s in results[first.name].settings if s.step is not None]
    if len(settings) > 1:
        record["dts"] = {}
        for i, s in enumerate(settings):
            sc = group_scores(runs, results, i)
            record["dts"][s.step.label] = {m: {k: seed_interval(sc[m][k]) for k in ("best", "random")}
                                           for m in COMPARED}
    return record


def per_sequence_scores(result: EvalResult, setting: int = 0) -> dict[str, dict[str, np.ndarray]]:
    """``{metric: {"best": (N,), "random": (N,)}}`` of the model at its ``setting``-th test dt in an evaluation
    result; "random" is the mean over the kept random samples, as in the result's summary."""
    s = result.settings[setting]
    return {m: {"best": np.asarray(s.best[m]), "random": np.asarray(s.random[m]).reshape(len(s.best[m]), -1)
                .mean(axis=1)} for m in COMPARED}


def paired_differences(scores: dict[str, dict[str, dict[str, np.ndarray]]], reference: str) -> dict[str, Any]:
    """Per model, the mean and 95% interval of its per-sequence score minus the reference model's on the same test
    sequences (paired, hence far tighter than comparing two intervals): ``{name: {metric: {kind: {mean, ci95}}}}``.

    Scores are ``(N,)`` or ``(S, N)`` (``S`` training seeds): the difference of the seed-averaged scores, whose
    variance adds both models' variance between seeds (/ S) to the sequences' (see :func:`seed_interval`)."""
    out = {}
    ref = scores[reference]
    for name, sc in scores.items():
        if name == reference:
            continue
        out[name] = {}
        for m, kinds in sc.items():
            out[name][m] = {}
            for kind, values in kinds.items():
                a, r = np.atleast_2d(values), np.atleast_2d(ref[m][kind])
                d = a.mean(axis=0) - r.mean(axis=0)
                var = d.var() / len(d) + sum(x.mean(axis=1).var(ddof=1) / len(x) for x in (a, r) if len(x) > 1)
                out[name][m][kind] = {"mean": float(d.mean()), "ci95": float(1.96 * np.sqrt(var))}
    return out
