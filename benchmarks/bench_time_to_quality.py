"""Time to quality: train recipes under a wall-clock budget and score snapshots with the paper's protocol.

Each recipe is a preset plus configuration overrides (``NAME=PRESET[,key=value ...]``, keys as in ``srvp train
--help`` with underscores). It trains in its own run folder under ``--run-root`` with checkpoints, so an
interrupted benchmark continues where it stopped when started again with the same arguments. Whenever the
recipe's training clock passes one of the ``--snapshots`` (minutes), the model it would ship (the weight average
when the recipe has one) is scored on a fixed test set: best of N and one random sample, PSNR and SSIM, beside the
blank and last-frame baselines, and the model's posterior reconstruction of the test clips and of their
conditioning frames (what its frame autoencoder can draw). Then training goes on, until the budget (the last
snapshot) or the recipe's steps are used up.

The clock (``--clock``): ``cpu`` (default), the CPU seconds the training process spent on training steps
(``Trainer.train_cpu_seconds``; with ``--threads 1`` one-thread minutes that do not count the time another process
held the core, so recipes measured while the machine does other work stay comparable), or ``wall``
(``Trainer.train_seconds``). Evaluation and checkpoints of the benchmark are excluded from both.

Outputs in ``--out-dir`` (every recipe found there, so runs made by several processes are merged):
``recipes/NAME.json`` (per recipe, written after every snapshot), ``time_to_quality.csv``, ``time_to_quality.png``
(quality against training minutes, one curve per recipe) and ``time_to_quality.md`` (the table, and for every
recipe the time it takes to reach the final best-of-N PSNR of the reference recipe, ``--reference``).

Two recipes may share the 2-core machine only as one thread each (``--threads 1`` in two processes); the clock is
then a one-thread clock, stated in the outputs.

Example (the quickstart's recipes, one thread each, in two shells)::

    python benchmarks/bench_time_to_quality.py --threads 1 --snapshots 1 2.5 5 10 \\
        --recipe paper=cpu,lr=3e-4,obs_scale=1,beta_z=2,precision=fp32 --out-dir docs/time-to-quality/quickstart
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_report, machine_summary  # noqa: E402

from srvp.config import SECTIONS, RunConfig, apply_overrides, preset  # noqa: E402
from srvp.data import load_test_set  # noqa: E402
from srvp.errors import ConfigError, SrvpError  # noqa: E402
from srvp.evaluation.protocol import EvalSettings, evaluate_model  # noqa: E402
from srvp.files import atomic_write_bytes, atomic_write_text  # noqa: E402
from srvp.training.checkpoint import atomic_torch_save, make_checkpoint  # noqa: E402
from srvp.training.trainer import Trainer  # noqa: E402

FIELDS = ["recipe", "minutes", "train_seconds", "train_cpu_seconds", "step", "psnr_best", "psnr_best_ci", "ssim_best",
          "ssim_best_ci", "psnr_random", "psnr_random_ci", "ssim_random", "ssim_random_ci", "psnr_blank", "ssim_blank",
          "psnr_last", "ssim_last", "psnr_recon", "ssim_recon", "psnr_recon_cond", "ssim_recon_cond"]
CLOCKS = {"cpu": "train_cpu_seconds", "wall": "train_seconds"}


def row_minutes(row: dict, clock: str) -> float:
    """The training minutes of a snapshot row on the recipe's clock (rows recorded before the CPU clock existed
    have only the wall clock)."""
    return row.get(CLOCKS[clock], row["train_seconds"]) / 60


def recipe_config(spec: str, run_root: Path) -> tuple[str, RunConfig]:
    """``NAME=PRESET[,key=value ...]`` -> (name, validated config whose run folder is ``run_root/NAME``); the
    overrides go through :func:`srvp.config.apply_overrides`, as ``srvp train --key value`` would."""
    if "=" not in spec:
        raise ConfigError(f"--recipe {spec!r}: expected NAME=PRESET[,key=value ...]")
    name, rest = spec.split("=", 1)
    parts = [p for p in rest.split(",") if p]
    if not name or not parts:
        raise ConfigError(f"--recipe {spec!r}: expected NAME=PRESET[,key=value ...]")
    where = {f: s for s, cls in SECTIONS.items() for f in cls.__dataclass_fields__}
    overrides = {f"cfg__{s}__{f}": None for f, s in where.items()}
    for item in parts[1:]:
        key, _, value = item.partition("=")
        if key not in where or not value:
            raise ConfigError(f"--recipe {name}: {item!r} is not key=value with a configuration key")
        overrides[f"cfg__{where[key]}__{key}"] = value
    overrides["cfg__train__out_dir"] = str(run_root / name)
    overrides["cfg__train__val_interval"] = overrides["cfg__train__sample_interval"] = "0"
    return name, apply_overrides(preset(parts[0]), argparse.Namespace(**overrides), f"--recipe {name}")


def scores_row(result, recipe: str, minutes: float, clocks: dict[str, float], step: int
               ) -> dict[str, float | str | int]:
    summary = result.summary()
    by_name = {s["name"]: s["metrics"] for s in summary["settings"]}
    model = by_name["model"]
    row: dict[str, float | str | int] = {"recipe": recipe, "minutes": minutes, "step": step,
                                         **{k: round(clocks[k], 1) for k in CLOCKS.values()}}
    reconstruction = summary.get("reconstruction") or {}
    for part, suffix in (("clip", "recon"), ("conditioning", "recon_cond")):
        for m in ("psnr", "ssim"):
            if part in reconstruction:
                row[f"{m}_{suffix}"] = reconstruction[part][m]["mean"]
    for m in ("psnr", "ssim"):
        for kind in ("best", "random"):
            row[f"{m}_{kind}"] = model[m][kind]["mean"]
            row[f"{m}_{kind}_ci"] = model[m][kind]["ci95"]
        row[f"{m}_blank"] = by_name["blank"][m]["best"]["mean"]
        row[f"{m}_last"] = by_name["last frame"][m]["best"]["mean"]
    return row


def run_recipe(name: str, cfg: RunConfig, spec: str, snapshots: list[float], test: np.ndarray, args) -> None:
    """Train ``cfg`` until its last snapshot (or its steps), scoring the model at every snapshot."""
    record_path = args.out_dir / "recipes" / f"{name}.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else None
    if record is not None and record["spec"] != spec:
        raise SrvpError(f"{record_path}: recorded for recipe {record['spec']!r}, not {spec!r}; use another "
                        f"--out-dir or remove the file")
    if record is None:
        record = {"spec": spec, "command": args.command, "config": cfg.to_dict(), "threads": torch.get_num_threads(),
                  "clock": args.clock, "machine": machine_summary(torch.device("cpu")), "rows": [], "load": []}
    if record.get("clock", "wall") != args.clock:
        raise SrvpError(f"{record_path}: recorded on the {record.get('clock', 'wall')} clock, not --clock "
                        f"{args.clock}; use the same clock or another --out-dir")
    record["load"].append(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, start: {load_report()}")
    done = {row["minutes"] for row in record["rows"]}
    todo = [m for m in snapshots if m not in done]
    if not todo:
        print(f"{name}: every snapshot already scored ({record_path})")
        return
    horizon = cfg.data.test_seq_len - cfg.data.cond_frames

    def at_snapshot(trainer: Trainer, final: bool = False) -> None:
        if not todo or (getattr(trainer, CLOCKS[args.clock]) < todo[0] * 60 and not final):
            return
        minutes = todo.pop(0)
        model = trainer.eval_model()
        start = time.perf_counter()
        settings = EvalSettings(n_samples=args.samples, horizon=horizon, precision=args.eval_precision, seed=0,
                                elbo=False)
        result = evaluate_model(model, test, cfg.data.cond_frames, settings, device=next(model.parameters()).device,
                                progress=False)
        model.train()
        row = scores_row(result, name, minutes, trainer.clocks(), trainer.step)
        record["rows"].append(row)
        record["load"].append(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {minutes} min: {load_report()}")
        atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")
        if args.keep_snapshots:
            atomic_torch_save(make_checkpoint(model, cfg, trainer.step, extra=trainer.clocks()),
                              Path(cfg.train.out_dir) / "snapshots" / f"minutes_{minutes:g}.pt")
        print(f"{name}: {minutes:g} min (step {trainer.step}): best-of-{args.samples} PSNR {row['psnr_best']:.2f} "
              f"SSIM {row['ssim_best']:.4f}, random PSNR {row['psnr_random']:.2f} (blank {row['psnr_blank']:.2f} / "
              f"{row['ssim_blank']:.4f}, last {row['psnr_last']:.2f} / {row['ssim_last']:.4f}); reconstruction "
              f"{row.get('psnr_recon', float('nan')):.2f} dB / {row.get('ssim_recon', float('nan')):.4f} "
              f"(conditioning frames {row.get('psnr_recon_cond', float('nan')):.2f} dB); scored in "
              f"{time.perf_counter() - start:.0f} s", flush=True)
        if not todo:
            trainer.request_stop()

    record_path.parent.mkdir(parents=True, exist_ok=True)
    resume = (Path(cfg.train.out_dir) / "checkpoints").exists()
    trainer = Trainer(cfg, resume=resume, progress=args.progress, callbacks=[at_snapshot])
    trainer.fit()
    if todo and trainer.stopped_early:  # SIGTERM / Ctrl-C: checkpoint saved; the same command continues it
        print(f"{name}: stopped at step {trainer.step} ({getattr(trainer, CLOCKS[args.clock]) / 60:.2f} training "
              f"minutes, {args.clock} clock); run the same command again to continue")
        raise SystemExit(143)
    if todo:  # the recipe's steps ran out before the budget: score the final model once, at its own time
        minutes = getattr(trainer, CLOCKS[args.clock]) / 60
        print(f"{name}: the recipe's {cfg.train.steps} steps ended at {minutes:.2f} min, before the {todo[0]:g}-minute "
              f"snapshot: scoring the final model in its place")
        at_snapshot(trainer, final=True)
        todo.clear()
    record["finished"] = {"step": trainer.step, **{k: trainer.clocks()[k] for k in CLOCKS.values()}}
    atomic_write_text(record_path, json.dumps(record, indent=1) + "\n")


def time_to_reach(rows: list[dict], target: float, key: str = "psnr_best", clock: str = "wall"
                  ) -> tuple[float, bool] | None:
    """Training minutes (on ``clock``) at which ``key`` first reaches ``target``, linearly interpolated between
    snapshots, and whether it was already reached at the first snapshot (then the minutes are an upper bound)."""
    previous = None
    for row in sorted(rows, key=lambda r: row_minutes(r, clock)):
        t, v = row_minutes(row, clock), row[key]
        if v >= target:
            if previous is None:
                return t, True
            (t0, v0) = previous
            return (t0 + (t - t0) * (target - v0) / (v - v0) if v != v0 else t), False
        previous = (t, v)
    return None


def write_report(out_dir: Path, reference: str | None, command: str) -> None:
    records = {p.stem: json.loads(p.read_text()) for p in sorted((out_dir / "recipes").glob("*.json"))}
    if not records:
        return
    rows = [row for rec in records.values() for row in sorted(rec["rows"], key=lambda r: r["minutes"])]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{row[k]:.4f}" if isinstance(row.get(k), float) else row.get(k, "")) for k in FIELDS})
    atomic_write_text(out_dir / "time_to_quality.csv", text.getvalue())

    lines = [f"# Time to quality ({datetime.now(timezone.utc):%Y-%m-%d})", "", f"Report command: `{command}`", ""]
    machines = sorted({rec["machine"] for rec in records.values()})
    lines += [f"Machine: {m}" for m in machines] + [""]
    clock_of = {name: rec.get("clock", "wall") for name, rec in records.items()}
    for name, rec in records.items():
        how = f"`{rec['command']}`" if rec.get("command") else f"`--recipe {rec['spec']}`"
        lines.append(f"- `{name}`, {rec['threads']} thread(s), {clock_of[name]} clock: {how}")
    lines += ["", "Minutes: training minutes on the recipe's clock (cpu: CPU minutes of the training process; wall: "
              "wall-clock minutes). Reconstruction: the posterior reconstruction of the whole test clip (every frame "
              "seen) and of the conditioning frames alone, PSNR / SSIM.", "",
              "| recipe | minutes | step | best PSNR | best SSIM | random PSNR | random SSIM | reconstruction clip | "
              "reconstruction conditioning | blank PSNR / SSIM | last frame PSNR / SSIM |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]

    def pair(row: dict, suffix: str) -> str:
        if f"psnr_{suffix}" not in row:
            return "–"
        return f"{row[f'psnr_{suffix}']:.2f} / {row[f'ssim_{suffix}']:.4f}"

    for row in rows:
        lines.append(f"| {row['recipe']} | {row_minutes(row, clock_of[row['recipe']]):.1f} | {row['step']} | "
                     f"{row['psnr_best']:.2f} ± {row['psnr_best_ci']:.2f} | {row['ssim_best']:.4f} ± "
                     f"{row['ssim_best_ci']:.4f} | {row['psnr_random']:.2f} | {row['ssim_random']:.4f} | "
                     f"{pair(row, 'recon')} | {pair(row, 'recon_cond')} | "
                     f"{row['psnr_blank']:.2f} / {row['ssim_blank']:.4f} | {row['psnr_last']:.2f} / "
                     f"{row['ssim_last']:.4f} |")
    if reference in records and records[reference]["rows"]:
        ref_rows = records[reference]["rows"]
        ref_clock = clock_of[reference]
        final = max(ref_rows, key=lambda r: row_minutes(r, ref_clock))
        target, ref_minutes = final["psnr_best"], row_minutes(final, ref_clock)
        lines += ["", f"Speed-up over `{reference}`: training minutes to reach its final best-of-N PSNR "
                  f"({target:.2f} dB at {ref_minutes:.1f} min).", "", "| recipe | minutes to reach | speed-up |",
                  "|---|---|---|"]
        for name, rec in records.items():
            found = time_to_reach(rec["rows"], target, clock=clock_of[name])
            if found is None:
                lines.append(f"| {name} | not reached | - |")
                continue
            t, first = found
            bound = ("≤ ", "≥ ") if first else ("", "")
            lines.append(f"| {name} | {bound[0]}{t:.1f} | {bound[1]}{ref_minutes / t:.1f}x |")
        lines += ["", "≤ / ≥: already reached at the recipe's first snapshot (the time is an upper bound and the "
                  "speed-up a lower bound)."]
    lines += ["", "Machine load at every snapshot:", ""]
    for name, rec in records.items():
        lines += [f"- {name}: " + " / ".join(rec["load"][-3:])]
    atomic_write_text(out_dir / "time_to_quality.md", "\n".join(lines) + "\n")
    atomic_write_bytes(out_dir / "time_to_quality.png", figure(records))


def figure(records: dict[str, dict]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    baselines_drawn = False
    for i, (name, rec) in enumerate(records.items()):
        clock = rec.get("clock", "wall")
        rows = sorted(rec["rows"], key=lambda r: row_minutes(r, clock))
        if not rows:
            continue
        color = f"C{i}"
        minutes = [row_minutes(r, clock) for r in rows]
        for ax, m in zip(axes, ("psnr", "ssim")):
            ax.plot(minutes, [r[f"{m}_best"] for r in rows], "-o", color=color, label=f"{name}: best of N")
            ax.plot(minutes, [r[f"{m}_random"] for r in rows], "--", color=color, alpha=0.7,
                    label=f"{name}: one random sample")
            recon = [(t, r[f"{m}_recon"]) for t, r in zip(minutes, rows) if f"{m}_recon" in r]
            if recon:
                ax.plot(*zip(*recon), ":x", color=color, alpha=0.9, label=f"{name}: posterior reconstruction")
            if not baselines_drawn:
                ax.axhline(rows[0][f"{m}_blank"], color="k", ls=":", label="blank frame")
                ax.axhline(rows[0][f"{m}_last"], color="grey", ls="-.", label="last conditioning frame")
        baselines_drawn = True
    threads = {rec["threads"] for rec in records.values()}
    clocks = {"CPU" if rec.get("clock") == "cpu" else "wall-clock" for rec in records.values()}
    for ax, title in zip(axes, ("PSNR (dB) ↑", "SSIM ↑")):
        ax.set_xscale("log")
        ax.set_xlabel(f"training minutes ({'/'.join(sorted(clocks))}; {'/'.join(map(str, sorted(threads)))} "
                      f"thread(s) per recipe; evaluation excluded)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    plt.close(fig)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", action="append", default=[], help="NAME=PRESET[,key=value ...] (repeatable)")
    parser.add_argument("--snapshots", type=float, nargs="+", default=[2.5, 5, 10, 20, 40, 60],
                        help="training minutes at which to score the model; the last one is the budget")
    parser.add_argument("--test-sequences", type=int, default=None, help="test clips (default: the preset's)")
    parser.add_argument("--samples", type=int, default=20, help="samples per test clip (best of N)")
    parser.add_argument("--eval-precision", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--clock", default="cpu", choices=sorted(CLOCKS),
                        help="training clock of the snapshots: cpu (CPU time of the training process) or wall")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/time-to-quality"))
    parser.add_argument("--run-root", type=Path, default=Path("runs/time-to-quality"),
                        help="run folders (checkpoints; not committed)")
    parser.add_argument("--reference", default="paper", help="recipe whose final quality defines the speed-up")
    parser.add_argument("--keep-snapshots", action="store_true", help="save the scored weights of every snapshot")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the CSV, PNG and table")
    parser.add_argument("--progress", action="store_true", help="training progress bars")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python benchmarks/bench_time_to_quality.py " + shlex.join(sys.argv[1:])
    args.command = command
    try:
        snapshots = sorted(set(args.snapshots))
        if not snapshots or any(not math.isfinite(m) or m <= 0 for m in snapshots):
            raise ConfigError("--snapshots: give positive minutes")
        recipes = [(spec, *recipe_config(spec, args.run_root)) for spec in args.recipe]
        if not args.report_only:
            for spec, name, cfg in recipes:
                if args.test_sequences:
                    cfg.data.test_sequences = args.test_sequences
                test = load_test_set(cfg.data)
                print(f"{name}: {spec}; {len(test)} test clips, {torch.get_num_threads()} thread(s); "
                      f"{load_report()}", flush=True)
                run_recipe(name, cfg, spec, snapshots, test, args)
                write_report(args.out_dir, args.reference, command)
        write_report(args.out_dir, args.reference, command)
    except SrvpError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out_dir / 'time_to_quality.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
