"""Files of an evaluation (:func:`write_report`), written atomically into one directory:

- ``results.json``: aggregates with 95% intervals (:meth:`EvalResult.summary`);
- ``results.md``: the same as a Markdown table, model (per test ``dt``) beside the baselines;
- ``per_sequence.csv``: one row per (sequence, setting, metric): best, worst, index of the best sample, first samples;
- ``scores.npz``: every score array of the result, read back exactly by :func:`read_scores`;
- ``per_step.csv`` and ``per_step.png``: mean and 95% interval per predicted frame of the best samples, in the style
  of the paper's figures 2, 4 and 6.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srvp.errors import DataError
from srvp.evaluation.metrics import METRICS, confidence_interval
from srvp.evaluation.protocol import RANDOM_KEPT, EvalResult, SettingScores
from srvp.files import atomic_write_bytes, atomic_write_text

#: every file :func:`write_report` may write (what an overwrite of an earlier report may replace)
REPORT_FILES = ("results.json", "results.md", "per_sequence.csv", "scores.npz", "per_step.csv", "per_step.png")
#: rows of the posterior reconstruction (``EvalResult.reconstruction``) in the tables and plots
RECONSTRUCTION_LABELS = {"clip": "posterior reconstruction, whole clip (every frame seen)",
                         "conditioning": "posterior reconstruction, conditioning frames only"}


def markdown_table(result: EvalResult) -> str:
    """Aggregate table: one row per setting (best of N; the worst and a random sample for the model)."""
    summary = result.summary()
    metrics = list(result.frame_metrics) + (["fvd"] if "fvd" in result.metrics else [])
    head = "| | " + " | ".join(METRICS[m].title for m in metrics) + " |"
    lines = [head, "|---" * (len(metrics) + 1) + "|"]
    for entry in summary["settings"]:
        rows = [("best", f"best of {result.n_samples}")] if entry["dt"] is not None else [("best", None)]
        if entry["dt"] is not None and result.n_samples > 1:
            rows += [("worst", "worst"), ("random", "random sample")]
        for kind, suffix in rows:
            label = entry["label"] if suffix is None else f"{entry['label']} ({suffix})"
            cells = []
            for m in metrics:
                if m == "fvd":
                    fvd = entry.get("fvd")
                    cells.append(f"{fvd:.{METRICS[m].digits}f}" if kind == "best" and fvd is not None else "")
                else:
                    a = entry["metrics"][m][kind]
                    cells.append(METRICS[m].interval_text(a["mean"], a["ci95"]))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    for part, scores in (summary.get("reconstruction") or {}).items():
        cells = [METRICS[m].interval_text(scores[m]["mean"], scores[m]["ci95"]) if m in scores else ""
                 for m in metrics]
        lines.append(f"| {RECONSTRUCTION_LABELS.get(part, part)} | " + " | ".join(cells) + " |")
    videos = summary["meta"].get("test_videos")
    source = f" (distinct windows of {videos} video{'s' if videos != 1 else ''})" if videos else ""
    out = [f"# Evaluation: {summary['n_sequences']} sequences{source}, {result.cond_frames} conditioning -> "
           f"{result.horizon} predicted frames, best of {result.n_samples} samples", "",
           "Mean ± 95% interval (1.96 std / sqrt(N), std with ddof = 0) over sequences of each sequence's score "
           "averaged over predicted frames. FVD: conditioning + first sample against conditioning + ground truth, "
           "on the whole set.", "", *lines, ""]
    if summary["elbo"] is not None:
        e = summary["elbo"]
        out += [f"Test ELBO (one-sample estimate per sequence, dt={e['dt']}): {e['mean']:.2f} ± {e['ci95']:.2f}", ""]
    for metric, why in result.skipped.items():
        out += [f"{METRICS[metric].label if metric in METRICS else metric.upper()} not computed: {why}", ""]
    out += [f"Seed {result.seed}, precision {result.precision}, {result.batch_size} samples per forward pass, "
            f"training dt {summary['train_dt']}.", ""]
    return "\n".join(out)


def _per_sequence_csv(result: EvalResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["index", "setting", "metric", "best", "worst", "best_sample",
                *[f"sample_{k + 1}" for k in range(RANDOM_KEPT)]])
    for s in result.settings:
        for m in result.frame_metrics:
            for row, idx in enumerate(result.indices):
                rand = [f"{v:.6g}" for v in s.random[m][row]] + [""] * (RANDOM_KEPT - s.random[m].shape[1])
                w.writerow([int(idx), s.label, m, f"{s.best[m][row]:.6g}", f"{s.worst[m][row]:.6g}",
                            int(s.best_index[m][row]), *rand])
    for part, scores in (result.reconstruction or {}).items():
        for m, values in scores.items():
            for row, idx in enumerate(result.indices):
                w.writerow([int(idx), f"reconstruction ({part})", m, f"{values[row].mean():.6g}", "", "",
                            *[""] * RANDOM_KEPT])
    if result.elbo is not None:
        for idx, value in zip(result.indices, result.elbo):
            w.writerow([int(idx), "model", "elbo", f"{value:.6g}", "", "", *[""] * RANDOM_KEPT])
    return buf.getvalue()


@dataclass
class Curve:
    """Per-frame scores of one way of predicting, for per-step tables and plots: ``scores[m]`` ``(N, horizon)``
    (one row per test sequence: the best sample's scores, or a baseline's)."""

    label: str
    scores: dict[str, np.ndarray]
    baseline: bool = False


def result_curves(result: EvalResult, legend: bool = False) -> list[Curve]:
    """The curves of every setting of ``result`` (the model at each test ``dt``, then the baselines), labelled by
    setting (``legend=False``, the CSV's names) or with the plot's legend (:func:`curve_label`), then the posterior
    reconstruction of the whole clip over the predicted frames (when computed)."""
    curves = [Curve(curve_label(s, result.n_samples) if legend else s.label,
                    {m: s.best_curves[m] for m in result.frame_metrics}, s.dt is None) for s in result.settings]
    clip = (result.reconstruction or {}).get("clip")
    if clip:
        predicted = slice(result.cond_frames, result.cond_frames + result.horizon)
        curves.append(Curve(RECONSTRUCTION_LABELS["clip"] if legend else "reconstruction",
                            {m: v[:, predicted] for m, v in clip.items()}))
    return curves


def per_step_rows(curves: list[Curve], cond_frames: int) -> list[tuple[str, str, int, float, float]]:
    """Rows ``(label, metric, t, mean, ci95)``, ``t`` the frame number in the whole sequence (1-based, so the first
    predicted frame is ``cond_frames + 1``), mean and 95% interval over sequences."""
    rows = []
    for c in curves:
        for m, values in c.scores.items():
            mean, ci = confidence_interval(values)
            rows.extend((c.label, m, cond_frames + 1 + k, float(mean[k]), float(ci[k])) for k in range(len(mean)))
    return rows


def per_step_csv(curves: list[Curve], cond_frames: int, first_column: str = "setting") -> str:
    """:func:`per_step_rows` as CSV with columns ``<first_column>, metric, t, mean, ci95``."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([first_column, "metric", "t", "mean", "ci95"])
    for label, m, t, mean, ci in per_step_rows(curves, cond_frames):
        w.writerow([label, m, t, f"{mean:.6g}", f"{ci:.6g}"])
    return buf.getvalue()


def per_step_table(result: EvalResult) -> list[tuple[str, str, int, float, float]]:
    """Rows ``(setting, metric, t, mean, ci95)`` of the best samples' per-frame scores of every setting."""
    return per_step_rows(result_curves(result), result.cond_frames)


BASELINE_LEGENDS = {"last frame": "last conditioning frame repeated", "blank": "blank (black) frame"}


def curve_label(setting: SettingScores, n_samples: int) -> str:
    """Legend of a per-step curve: the model's best of N at its test step, or what a baseline predicts."""
    if setting.dt is None:
        return BASELINE_LEGENDS.get(setting.name, setting.name)
    best = f"best of {n_samples}" if n_samples > 1 else "one sample"
    return f"{setting.name}, {best}, dt = {setting.step.label} (95% band)"


def curves_figure(curves: list[Curve], cond_frames: int, train_seq_len: int | None = None) -> bytes:
    """PNG: one panel per metric, the mean score against t with its 95% band (the paper's figures 2, 4 and 6);
    baselines in grey (blank dotted, others dash-dotted); a vertical line marks the training clip length. The
    legend names every curve and the line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = list(dict.fromkeys(m for c in curves for m in c.scores))
    fig, axes = plt.subplots(1, max(1, len(metrics)), figsize=(4.8 * max(1, len(metrics)), 3.8), squeeze=False)
    for ax, m in zip(axes[0], metrics):
        t = None
        for c in curves:
            if m not in c.scores:
                continue
            mean, ci = confidence_interval(c.scores[m])
            t = np.arange(cond_frames + 1, cond_frames + len(mean) + 1)
            style = (":" if "blank" in c.label else "-.") if c.baseline else "-"
            (line,) = ax.plot(t, mean, style, label=c.label, linewidth=1.5, color="grey" if c.baseline else None)
            ax.fill_between(t, mean - ci, mean + ci, color=line.get_color(), alpha=0.2, linewidth=0)
        if train_seq_len is not None and t is not None and t[0] <= train_seq_len <= t[-1]:
            ax.axvline(train_seq_len, color="black", linewidth=0.8,
                       label=f"t = {train_seq_len}: end of the training clips (later frames: extrapolation)")
        ax.set_xlabel(f"t (frame index; {cond_frames} conditioning frames before)")
        ax.set_title(METRICS[m].title)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return buf.getvalue()


def per_step_figure(result: EvalResult, train_seq_len: int | None = None) -> bytes:
    """PNG of the best samples' per-step scores of every setting of ``result`` (:func:`curves_figure`)."""
    return curves_figure(result_curves(result, legend=True), result.cond_frames, train_seq_len)


SCORES_FORMAT = "srvp-eval-scores/1"


def write_scores(result: EvalResult, path: str | Path) -> Path:
    """Save every array of ``result`` (per-sequence and per-frame scores of each setting, indices, ELBO) with its
    settings in one ``.npz`` (no pickled objects), so that the result can be read back by :func:`read_scores`
    exactly, e.g. to reuse an evaluation or to compare two runs sequence by sequence."""
    arrays: dict[str, np.ndarray] = {"indices": np.asarray(result.indices)}
    settings = []
    for i, s in enumerate(result.settings):
        settings.append({"name": s.name, "dt": s.dt, "fvd": s.fvd})
        for kind in ("best", "worst", "best_index", "random", "best_curves"):
            for m, values in getattr(s, kind).items():
                arrays[f"{i}/{kind}/{m}"] = np.asarray(values)
    if result.elbo is not None:
        arrays["elbo"] = np.asarray(result.elbo)
    for part, scores in (result.reconstruction or {}).items():
        for m, values in scores.items():
            arrays[f"reconstruction/{part}/{m}"] = np.asarray(values)
    header = {"format": SCORES_FORMAT, "metrics": list(result.metrics), "cond_frames": result.cond_frames,
              "horizon": result.horizon, "n_samples": result.n_samples, "batch_size": result.batch_size,
              "seed": result.seed, "precision": result.precision, "train_dt": result.train_dt,
              "skipped": result.skipped, "meta": result.meta, "settings": settings}
    arrays["header"] = np.array(json.dumps(header))
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)


def read_scores(path: str | Path) -> EvalResult:
    """The :class:`EvalResult` saved by :func:`write_scores` (one-line :class:`DataError` if it is not one)."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        header = json.loads(str(arrays.pop("header")))
        if header.get("format") != SCORES_FORMAT:
            raise ValueError(f"format {header.get('format')!r}")
        reconstruction: dict[str, dict[str, np.ndarray]] = {}
        for key in [k for k in arrays if k.startswith("reconstruction/")]:
            _, part, m = key.split("/")
            reconstruction.setdefault(part, {})[m] = arrays.pop(key)
        settings = []
        for i, entry in enumerate(header["settings"]):
            s = SettingScores(name=entry["name"], dt=entry["dt"], fvd=entry["fvd"])
            for key, values in arrays.items():
                parts = key.split("/")
                if len(parts) == 3 and parts[0] == str(i):
                    getattr(s, parts[1])[parts[2]] = values
            settings.append(s)
        return EvalResult(metrics=tuple(header["metrics"]), cond_frames=header["cond_frames"],
                          horizon=header["horizon"], n_samples=header["n_samples"],
                          batch_size=header["batch_size"], seed=header["seed"], precision=header["precision"],
                          train_dt=header["train_dt"], indices=arrays["indices"], settings=settings,
                          elbo=arrays.get("elbo"), skipped=header["skipped"], meta=header["meta"],
                          reconstruction=reconstruction or None)
    except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable evaluation scores file ({e})") from None


def write_report(result: EvalResult, out_dir: str | Path, train_seq_len: int | None = None) -> dict[str, Path]:
    """Write every file of the evaluation into ``out_dir``; returns their paths by kind."""
    out = Path(out_dir)
    paths = {"json": out / "results.json", "markdown": out / "results.md", "per_sequence": out / "per_sequence.csv",
             "scores": out / "scores.npz", "per_step": out / "per_step.csv"}
    write_scores(result, paths["scores"])
    atomic_write_text(paths["json"], json.dumps(result.summary(), indent=2) + "\n")
    atomic_write_text(paths["markdown"], markdown_table(result))
    atomic_write_text(paths["per_sequence"], _per_sequence_csv(result))
    if result.frame_metrics:
        atomic_write_text(paths["per_step"], per_step_csv(result_curves(result), result.cond_frames))
        paths["plot"] = out / "per_step.png"
        atomic_write_bytes(paths["plot"], per_step_figure(result, train_seq_len))
    else:
        del paths["per_step"]
    return paths
