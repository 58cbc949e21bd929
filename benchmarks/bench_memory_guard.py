"""The memory guard's estimates against the real peak resident memory.

For a few sizes of a prediction (``Predictor.predict``) and of a training step, each in a fresh process: the
estimate of :mod:`srvp.runtime` (``generation_bytes`` / ``training_bytes``), and the growth of the peak resident
set size (``ru_maxrss``) over the process's size right before the operation. The guard refuses a request when the
estimate exceeds 80% of the available memory, so an estimate well below the real peak would let an impossible
request through, and one far above would refuse possible ones.

    python benchmarks/bench_memory_guard.py [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

CASES = [("generate", "smmnist", 1, 20, 20), ("generate", "smmnist", 1, 100, 20), ("generate", "smmnist", 4, 100, 20),
         ("generate", "quickstart", 1, 100, 10), ("train", "smmnist", 16, 0, 15), ("train", "smmnist", 32, 0, 15),
         ("train", "quickstart", 16, 0, 10)]

WORKER = r"""
import json, resource, sys, torch
from srvp.config import preset
from srvp.models import build_model
from srvp.runtime import generation_bytes, training_bytes
kind, name, batch, samples, frames = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(int(sys.argv[6]))
cfg = preset(name)
model = build_model(cfg.model)
x = torch.rand(batch, frames if kind == "train" else cfg.data.cond_frames, cfg.model.channels, 64, 64)
estimate = (training_bytes(model, batch, frames) if kind == "train"
            else generation_bytes(model, batch, samples, frames))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if kind == "train":
    opt = torch.optim.Adam(model.parameters())
    model.train()
    loss = model.loss(x, model(x))["total"]
    loss.backward()
    opt.step()
else:
    with torch.no_grad():
        model.predict(x, frames, n_samples=samples).clamp(0, 1).cpu()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"estimate": estimate, "growth": peak - before, "before": before}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    import torch
    from common import load_report, machine_summary

    print(machine_summary(torch.device("cpu")))
    print(load_report())
    print("| operation | preset | clips | samples | frames | estimate (MiB) | peak RSS growth (MiB) | estimate / real"
          " |")
    print("|---|---|---|---|---|---|---|---|")
    for kind, name, batch, samples, frames in CASES:
        done = subprocess.run([sys.executable, "-c", WORKER, kind, name, str(batch), str(samples), str(frames),
                               str(args.threads)], capture_output=True, text=True, check=True)
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {kind} | {name} | {batch} | {samples or '-'} | {frames} | {r['estimate'] / 2**20:,.0f} | "
              f"{r['growth'] / 2**20:,.0f} | {r['estimate'] / max(r['growth'], 1):.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
