"""Evaluation with the paper's protocol: metrics (:mod:`~srvp.evaluation.metrics`), LPIPS and I3D networks loaded
from user-provided weight files (:mod:`~srvp.evaluation.lpips`, :mod:`~srvp.evaluation.i3d`,
:mod:`~srvp.evaluation.weights`), best-of-N evaluation (:mod:`~srvp.evaluation.protocol`) and its report files
(:mod:`~srvp.evaluation.report`)."""

from srvp.evaluation.protocol import EvalResult, EvalSettings, SettingScores, evaluate_model, load_metric_networks
from srvp.evaluation.report import read_scores, write_report, write_scores

__all__ = ["EvalResult", "EvalSettings", "SettingScores", "evaluate_model", "load_metric_networks", "read_scores",
           "write_report", "write_scores"]
