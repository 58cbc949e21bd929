"""Copy the result files of an ``srvp compare`` folder into the repository (docs/results/...), without its runs'
checkpoints: the table (comparison.md/.json), the per-step curves (CSV, PNG), the samples picture, each run's
configuration and training time, and each evaluation's report with its raw per-sequence scores (per_sequence.csv,
scores.npz, which ``srvp.evaluation.read_scores`` reads back), so that another run can be compared sequence by
sequence.

    python tools/collect_comparison.py /var/tmp/srvp-claims/sm docs/results/paper-claims/smmnist
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

TOP_FILES = ("comparison.md", "comparison.json", "per_step.csv", "per_step.png", "samples.png")
EVAL_FILES = ("results.md", "results.json", "per_sequence.csv", "per_step.csv", "scores.npz", "compare_eval.json")


def collect(source: Path, target: Path) -> list[Path]:
    """Copy what :data:`TOP_FILES` and :data:`EVAL_FILES` name for the runs of ``source``'s comparison.json."""
    summary = json.loads((source / "comparison.json").read_text())
    written = []
    target.mkdir(parents=True, exist_ok=True)
    for name in TOP_FILES:
        if (source / name).is_file():
            written.append(Path(shutil.copy2(source / name, target / name)))
    runs = [run for record in summary["models"] for run in record.get("runs", [record["name"]])]
    for run in runs:
        run_dir = source / "runs" / run
        if (run_dir / "config.json").is_file():
            (target / "configs").mkdir(exist_ok=True)
            written.append(Path(shutil.copy2(run_dir / "config.json", target / "configs" / f"{run}.json")))
        if (run_dir / "compare_train.json").is_file():
            seconds = json.loads((run_dir / "compare_train.json").read_text())["seconds"]
            (target / "configs" / f"{run}.seconds.txt").write_text(f"{seconds:.1f}\n")
        for name in EVAL_FILES:
            if (source / "eval" / run / name).is_file():
                (target / "eval" / run).mkdir(parents=True, exist_ok=True)
                written.append(Path(shutil.copy2(source / "eval" / run / name, target / "eval" / run / name)))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="an srvp compare --out-dir")
    parser.add_argument("target", type=Path, help="where the result files go (e.g. docs/results/paper-claims/x)")
    args = parser.parse_args(argv)
    if not (args.source / "comparison.json").is_file():
        print(f"collect_comparison: {args.source}: no comparison.json (run srvp compare first)", file=sys.stderr)
        return 2
    files = collect(args.source, args.target)
    print(f"collect_comparison: {len(files)} files into {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
