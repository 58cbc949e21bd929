"""Paired per-sequence differences behind the verdicts of docs/results/paper-claims.md.

Reads only the committed raw scores (docs/results/paper-claims/<folder>/eval/<run>/scores.npz, through
:func:`srvp.evaluation.report.read_scores`) and prints Markdown tables; nothing is trained or evaluated.

    .venv/bin/python tools/paper_claims_verdicts.py [--root docs/results/paper-claims] [--out FILE]

Every difference is "model A minus model B" on the same generated test clips, oriented so that a positive value is
the paper's ordering (for the step-size rows: the refined step minus the nominal one, so about 0 is "holds").

How seeds are combined. With one training seed per model the difference is the mean over clips of
d(i) = A(i) - B(i), with the paper's interval 1.96 * std(d) / sqrt(N) (std with ddof 0). With two seeds, each seed
of A is paired with the same seed of B on the same clips (d_s(i) = A_s(i) - B_s(i), reported per seed with the
interval above); the combined figure is the mean of the per-seed differences (the same as the difference of the
seed-averaged scores), and its interval adds, to the clips' variance of the seed-averaged difference (/ N), each
model's variance between its seeds' means (ddof 1, / S). That second term is the training noise; it does not
depend on which seed of A is matched with which seed of B (the seeds of different models are independent runs),
and with S = 2 it is a rough, one-degree-of-freedom estimate. This is the rule of
srvp.tasks.compare.statistics.paired_differences, so the combined figures equal the "paired" lines of each
comparison.md.

Columns: PSNR and SSIM of the best of N samples per clip (the paper's protocol), PSNR of a random sample (mean
over the kept random samples), and "late PSNR": the mean PSNR over the second half of the predicted frames of
the clip's best-PSNR sample (on SM-MNIST the frames past the 15-frame training length; on MM-NIST t = 53-100).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from srvp.evaluation.report import read_scores

COLUMNS = (("psnr", "best", "ΔPSNR best", 2), ("ssim", "best", "ΔSSIM best", 4),
           ("psnr", "random", "ΔPSNR random", 2), ("psnr", "late", "ΔPSNR late", 2))


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a model of a folder (its runs ``<model>-seed<s>``) at one test step size
    (``dt`` None: the model's first setting, its training step) or a baseline (``baseline`` = "blank")."""

    folder: str
    model: str
    dt: Fraction | None = None
    baseline: str | None = None


def _setting(result, side: Side):
    if side.baseline is not None:
        return next(s for s in result.settings if s.dt is None and s.name == side.baseline)
    if side.dt is None:
        return result.settings[0]
    return next(s for s in result.settings if s.dt is not None and Fraction(s.dt).limit_denominator(16) == side.dt)


def scores(root: Path, side: Side, seeds: list[int]) -> dict[tuple[str, str], np.ndarray]:
    """``{(metric, kind): (S, N)}`` per-clip scores of ``side`` for each training seed."""
    out: dict[tuple[str, str], list[np.ndarray]] = {}
    for seed in seeds:
        result = read_scores(root / side.folder / "eval" / f"{side.model}-seed{seed}" / "scores.npz")
        s = _setting(result, side)
        n = len(s.best["psnr"])
        curves = np.asarray(s.best_curves["psnr"], dtype=np.float64)
        values = {("psnr", "best"): s.best["psnr"], ("ssim", "best"): s.best["ssim"],
                  ("psnr", "random"): np.asarray(s.random["psnr"]).reshape(n, -1).mean(axis=1),
                  ("psnr", "late"): curves[:, curves.shape[1] // 2:].mean(axis=1)}
        for key, v in values.items():
            out.setdefault(key, []).append(np.asarray(v, dtype=np.float64))
    return {k: np.stack(v) for k, v in out.items()}


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float, list[tuple[float, float]]]:
    """Combined mean and 95% half-width of ``a - b`` (both ``(S, N)``), and each seed's own (mean, half-width)."""
    per_seed = []
    for x, y in zip(a, b, strict=True):
        d = x - y
        per_seed.append((float(d.mean()), float(1.96 * d.std() / np.sqrt(len(d)))))
    d = a.mean(axis=0) - b.mean(axis=0)
    var = d.var() / len(d) + sum(x.mean(axis=1).var(ddof=1) / len(x) for x in (a, b) if len(x) > 1)
    return float(d.mean()), float(1.96 * np.sqrt(var)), per_seed


def borrowed(root: Path, a_side: Side, b_side: Side, noise_folder: str) -> list[str]:
    """Cells of a one-seed comparison whose interval also holds training noise, borrowed from SRVP's two seeds in
    ``noise_folder``: each one-seed model's score is given the variance sigma^2 of SRVP's seed means there (ddof 1),
    so the difference of two independent one-seed models gets 2 sigma^2 on top of the clips' variance."""
    a, b = scores(root, a_side, [1]), scores(root, b_side, [1])
    noise = scores(root, Side(noise_folder, "srvp"), [1, 2])
    cells = []
    for metric, kind, _, digits in COLUMNS:
        d = a[metric, kind][0] - b[metric, kind][0]
        var = d.var() / len(d) + 2 * noise[metric, kind].mean(axis=1).var(ddof=1)
        cells.append(_cell(float(d.mean()), float(1.96 * np.sqrt(var)), digits))
    return cells


def _cell(mean: float, half: float, digits: int) -> str:
    mark = "" if abs(mean) <= half else " *"
    return f"{mean:+.{digits}f} ± {half:.{digits}f}{mark}"


def _seeds_cell(per_seed: list[tuple[float, float]], digits: int) -> str:
    return ", ".join(f"{m:+.{digits}f} ± {h:.{digits}f}" for m, h in per_seed)


def table(root: Path, rows: list[tuple[str, str, Side, Side, list[int]]], seed_column: bool = True,
          psnr_digits: int = 2, first: str = "claim") -> list[str]:
    head = [first, "A − B", "clips", "seeds", *[c[2] for c in COLUMNS]]
    if seed_column:
        head.append("ΔPSNR best per seed (1, 2)")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for claim, label, a_side, b_side, seeds in rows:
        a, b = scores(root, a_side, seeds), scores(root, b_side, seeds)
        cells = [claim, label, str(a["psnr", "best"].shape[1]), ",".join(map(str, seeds))]
        per_seed_best: list[tuple[float, float]] = []
        for metric, kind, _, digits in COLUMNS:
            mean, half, per_seed = paired(a[metric, kind], b[metric, kind])
            cells.append(_cell(mean, half, psnr_digits if metric == "psnr" else digits))
            if (metric, kind) == ("psnr", "best"):
                per_seed_best = per_seed
        if seed_column:
            cells.append(_seeds_cell(per_seed_best, 2) if len(seeds) > 1 else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def seeds_of(root: Path, side: Side) -> list[int]:
    """The training seeds of ``side``'s model whose evaluations are in its folder (``eval/<model>-seed<k>``)."""
    found = [int(p.name.rsplit("-seed", 1)[1]) for p in (root / side.folder / "eval").glob(f"{side.model}-seed*")
             if p.name.rsplit("-seed", 1)[1].isdigit()]
    return sorted(found)


Row = tuple[str, str, Side, Side, list[int]]  # claim, label, A, B, training seeds


def rows_with_seeds(root: Path, rows: list[tuple[str, str, Side, Side]]) -> list[Row]:
    """Each row with the seeds both sides have."""
    out = []
    for claim, label, a, b in rows:
        seeds = sorted(set(seeds_of(root, a)) & set(seeds_of(root, b if b.baseline is None else a)))
        out.append((claim, label, a, b, seeds))
    return out


def borrowed_table(root: Path, rows: list[tuple[tuple[str, str, Side, Side, list[int]], str]]) -> list[str]:
    """One-seed rows again with the training noise of SRVP's two seeds in the named folder."""
    lines = table(root, [], seed_column=False)[:2]
    for (claim, label, a_side, b_side, _), noise_folder in rows:
        n = len(scores(root, a_side, [1])["psnr", "best"][0])
        cells = [claim, label, str(n), f"1 (+ noise of SRVP's 2 seeds, {noise_folder})"]
        lines.append("| " + " | ".join([*cells, *borrowed(root, a_side, b_side, noise_folder)]) + " |")
    return lines


def seed_noise_table(root: Path, folders: dict[str, tuple[str, ...]]) -> list[str]:
    """The same model, seed 2 minus seed 1, on the same clips, for every listed model with both seeds."""
    lines = table(root, [], seed_column=False, first="folder")[:2]
    for folder, models in folders.items():
        for m in models:
            if not {1, 2} <= set(seeds_of(root, Side(folder, m))):
                continue
            a, b = scores(root, Side(folder, m), [2]), scores(root, Side(folder, m), [1])
            cells = [folder, f"{m}: seed 2 − seed 1", str(a["psnr", "best"].shape[1]), "2 vs 1"]
            for metric, kind, _, digits in COLUMNS:
                mean, h, _ = paired(a[metric, kind], b[metric, kind])
                cells.append(_cell(mean, h, digits))
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def blank_rows(root: Path, folders: dict[str, tuple[str, ...]]) -> list[tuple[str, str, Side, Side, list[int]]]:
    """Each model of each folder minus the blank frame, with the seeds it has."""
    rows = []
    for folder, models in folders.items():
        for m in models:
            rows.append((folder, f"{m} − blank frame", Side(folder, m), Side(folder, m, baseline="blank"),
                         seeds_of(root, Side(folder, m))))
    return rows


HEADER = ("Generated by `.venv/bin/python tools/paper_claims_verdicts.py{stage}` from the committed scores.npz "
          "files. Mean ± 95% interval of the per-clip difference A − B on the same test clips; `*`: the interval "
          "excludes 0. Two seeds: seed s of A paired with seed s of B, combined as the mean of the per-seed "
          "differences with the training-seed variance of both models added to the interval (see the script's "
          "docstring).")


def stage_500(root: Path) -> list[str]:
    """The tables of the 500-step runs (folders sm, mm, sm-ablation, mm-ablation, sm-dt)."""
    two, one = [1, 2], [1]
    half, third, quarter, unit = Fraction(1, 2), Fraction(1, 3), Fraction(1, 4), Fraction(1)
    claims = [
        ("(a) SM-MNIST", "SRVP − SVG-LP", Side("sm", "srvp"), Side("sm", "svg"), two),
        ("(a) MM-NIST", "SRVP − SVG-LP", Side("mm", "srvp"), Side("mm", "svg"), two),
        ("(b) SM-MNIST", "SRVP − MLP", Side("sm", "srvp"), Side("sm", "mlp"), two),
        ("(b) SM-MNIST", "SRVP − GRU", Side("sm", "srvp"), Side("sm", "gru"), two),
        ("(b) MM-NIST", "SRVP − MLP", Side("mm", "srvp"), Side("mm", "mlp"), two),
        ("(b) MM-NIST", "SRVP − GRU", Side("mm", "srvp"), Side("mm", "gru"), two),
        ("(c) SM-MNIST", "SRVP − no w", Side("sm-ablation", "srvp"), Side("sm-ablation", "no-content"), one),
        ("(d) MM-NIST", "SRVP − no z", Side("mm-ablation", "srvp"), Side("mm-ablation", "deterministic"), one),
    ]
    dt_rows = [
        ("(e) trained Δt=1/2", "Δt 1/3 − Δt 1/2", Side("sm-dt", "half-dt", third), Side("sm-dt", "half-dt", half), one),
        ("(e) trained Δt=1/2", "Δt 1/4 − Δt 1/2", Side("sm-dt", "half-dt", quarter), Side("sm-dt", "half-dt", half),
         one),
        ("(e) trained Δt=1/2", "Δt 1 − Δt 1/2", Side("sm-dt", "half-dt", unit), Side("sm-dt", "half-dt", half), one),
        ("(e) trained Δt=1", "Δt 1/2 − Δt 1", Side("sm-dt", "srvp", half), Side("sm-dt", "srvp", unit), one),
        ("(e) trained Δt=1", "Δt 1/3 − Δt 1", Side("sm-dt", "srvp", third), Side("sm-dt", "srvp", unit), one),
        ("(e) trained Δt=1", "Δt 1/4 − Δt 1", Side("sm-dt", "srvp", quarter), Side("sm-dt", "srvp", unit), one),
        ("(e) across models", "Δt=1/2 model at 1/2 − Δt=1 model at 1", Side("sm-dt", "half-dt", half),
         Side("sm-dt", "srvp", unit), one),
    ]
    table1 = ("srvp", "mlp", "gru", "svg")
    blanks = blank_rows(root, {"sm": table1, "mm": table1, "sm-ablation": ("no-content",),
                               "mm-ablation": ("deterministic",), "sm-dt": ("half-dt",)})
    return [
        HEADER.format(stage=""), "",
        "### Paired differences for claims (a)-(d) (positive = the paper's ordering)", "",
        *table(root, claims), "",
        "### One-seed rows again, with training noise borrowed from SRVP's two seeds on the same dataset", "",
        *borrowed_table(root, [(claims[6], "sm"), (claims[7], "mm"), (dt_rows[-1], "sm")]), "",
        "### Step size (claim e): the same model on the same 30 clips at two test step sizes", "",
        *table(root, dt_rows, seed_column=False, psnr_digits=3), "",
        "### Each model minus the blank frame (is it above a trivial prediction?)", "",
        *table(root, blanks, first="folder"), "",
        "### Training noise: the same model, seed 2 minus seed 1, on the same clips", "",
        *seed_noise_table(root, {"sm": table1, "mm": table1}), "",
    ]


def stage_recipe(root: Path) -> list[str]:
    """The tables of the runs with the frame autoencoder's recipe (folders recipe-sm, recipe-sm-ablation): Table 1
    on SM-MNIST with two seeds, the no-w and no-z ablations with the seeds they have."""
    sm, ab = "recipe-sm", "recipe-sm-ablation"
    claims = rows_with_seeds(root, [
        ("(a) SM-MNIST", "SRVP − SVG-LP", Side(sm, "srvp"), Side(sm, "svg")),
        ("(b) SM-MNIST", "SRVP − MLP", Side(sm, "srvp"), Side(sm, "mlp")),
        ("(b) SM-MNIST", "SRVP − GRU", Side(sm, "srvp"), Side(sm, "gru")),
        ("(c) SM-MNIST", "SRVP − no w", Side(ab, "srvp"), Side(ab, "no-content")),
        ("(d) SM-MNIST", "SRVP − no z", Side(ab, "srvp"), Side(ab, "deterministic")),
    ])
    one_seed = [(row, sm) for row in claims if row[4] == [1]]
    blanks = blank_rows(root, {sm: ("srvp", "mlp", "gru", "svg"), ab: ("no-content", "deterministic")})
    return [
        HEADER.format(stage=" --stage recipe"), "",
        "### Paired differences for claims (a)-(d) (positive = the paper's ordering)", "",
        *table(root, claims), "",
        *(["### One-seed rows again, with training noise borrowed from SRVP's two seeds", "",
           *borrowed_table(root, one_seed), ""] if one_seed else []),
        "### Each model minus the blank frame (is it above a trivial prediction?)", "",
        *table(root, blanks, first="folder"), "",
        "### Training noise: the same model, seed 2 minus seed 1, on the same clips", "",
        *seed_noise_table(root, {sm: ("srvp", "mlp", "gru", "svg"), ab: ("no-content", "deterministic")}), "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("docs/results/paper-claims"))
    parser.add_argument("--stage", choices=("500", "recipe"), default="500",
                        help="500: the 500-step runs; recipe: the runs with the frame autoencoder's recipe")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown here")
    args = parser.parse_args()
    text = "\n".join((stage_500 if args.stage == "500" else stage_recipe)(args.root))
    print(text)
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
