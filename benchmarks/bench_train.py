"""Training-step throughput of SRVP: plain fp32 eager versus the optimised configuration, in one run.

The step is the trainer's own (:meth:`srvp.training.trainer.Trainer.train_step`: forward, loss, backward, Adam),
on the paper's Stochastic Moving MNIST model (preset ``smmnist``: DCGAN, nf 64, ny = nz = 20, 15-frame clips) or
the KTH model (``--preset kth``: VGG with skips, 20-frame clips). Variants (TrainConfig fields)::

    fp32-defaults precision fp32, contiguous, eager, and PyTorch's and glibc's defaults: stock layers, the
                  default Adam, glibc's allocator settings (the plain step; run in a subprocess of its own)
    fp32          precision fp32, contiguous, eager, with the trainer's settings (fused Adam, allocator)
    bf16          precision bf16
    bf16+cl       precision bf16, channels_last
    bf16+cl+comp  precision bf16, channels_last, compile   (torch.compile of the frame encoder and decoder)

All variants start from the same weights and take the same batches; their timed steps are interleaved (variant
A step, variant B step, ...) so that a change of load on a shared machine hits all of them, and the figure is the
median. ``fp32-defaults`` runs in a child process (the trainer's allocator setting cannot be undone within a
process) that takes its steps when the parent tells it to, in the same interleaved order. The data cost is measured
separately (clips generated in the training process, as with ``num_workers=0``) and the end-to-end rate is
measured with the trainer's DataLoader (``num_workers`` 0 for the plain step, ``--workers`` for the optimised one,
which overlaps data generation with the step).

Also printed: FLOPs of one step (``torch.utils.flop_counter``), achieved GFLOP/s against the measured 2048^2
matrix-multiply peak in fp32 and bf16, and the peak resident memory of each variant (each in its own subprocess).

Usage (run the whole script under the same allocator settings; see docs/benchmarks.md)::

    export GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736
    OMP_NUM_THREADS=2 python benchmarks/bench_train.py --batch-sizes 16 32
    python benchmarks/bench_train.py --preset kth --batch-sizes 4 --repeats 2 --variants fp32 bf16+cl
    python benchmarks/bench_train.py --profile            # top operators of one optimised step
    python benchmarks/bench_train.py --convergence 200    # fp32 vs bf16 loss curves, docs/convergence_bf16.{csv,png}
    python benchmarks/bench_train.py --device cuda --batch-sizes 16 32 128 --variants fp32 bf16+cl bf16+cl+comp
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, default_collate
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    load_report,
    machine_summary,
    matmul_peak,
    median,
    peak_rss_mb,
    sync,
    timed,
)

from srvp.config import RunConfig, preset  # noqa: E402
from srvp.data import build_train_dataset, to_float  # noqa: E402
from srvp.errors import DataError  # noqa: E402
from srvp.models.cpu_layers import use_stock_layers  # noqa: E402
from srvp.runtime import tune_glibc_malloc  # noqa: E402
from srvp.training.trainer import StepBatchSampler, Trainer  # noqa: E402

VARIANTS: dict[str, dict] = {
    # PyTorch's and glibc's defaults, in a process of its own: stock layers, torch.optim.Adam with its default
    # (for-loop) implementation on CPU, glibc's allocator settings. What a plain training loop of this model runs.
    "fp32-defaults": dict(precision="fp32", channels_last=False, compile=False),
    "fp32": dict(precision="fp32", channels_last=False, compile=False),
    "bf16": dict(precision="bf16", channels_last=False, compile=False),
    "bf16+cl": dict(precision="bf16", channels_last=True, compile=False),
    "bf16+cl+comp": dict(precision="bf16", channels_last=True, compile=True),
    "fp32+cl": dict(precision="fp32", channels_last=True, compile=False),
    "fp16+cl": dict(precision="fp16", channels_last=True, compile=False),  # GPU only
}


def run_config(preset_name: str, batch: int, variant: str, device: str, out_dir: str, workers: int = 0) -> RunConfig:
    cfg = preset(preset_name)
    cfg.train.batch_size = batch
    cfg.train.device = device
    cfg.train.out_dir = out_dir
    cfg.data.num_workers = workers
    for key, value in VARIANTS[variant].items():
        setattr(cfg.train, key, value)
    return cfg


def build_trainer(cfg: RunConfig, variant: str = "") -> Trainer:
    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(cfg, progress=False)
    return trainer.setup()


def make_batches(cfg: RunConfig, n: int) -> tuple[list[torch.Tensor], list[float]]:
    """``n`` uint8 batches from the training dataset and the seconds each took to generate in this process
    (random clips of the same shape when the dataset is not converted here: the step costs the same)."""
    try:
        dataset = build_train_dataset(cfg.data, cfg.train.seed)
    except DataError as e:
        print(f"({e}; using random clips)")
        shape = (cfg.train.batch_size, cfg.data.seq_len, cfg.model.channels, cfg.model.frame_size, cfg.model.frame_size)
        return [torch.randint(0, 256, shape, dtype=torch.uint8) for _ in range(n)], [float("nan")] * n
    batches, seconds = [], []
    for i in range(n):
        start = time.perf_counter()
        batches.append(default_collate([dataset[i * cfg.train.batch_size + j] for j in range(cfg.train.batch_size)]))
        seconds.append(time.perf_counter() - start)
    return batches, seconds


def step(trainer: Trainer, batch: torch.Tensor) -> dict:
    x = to_float(batch).to(trainer.device, non_blocking=True)
    result = trainer.train_step(x)
    if isinstance(result, str):
        raise RuntimeError(f"non-finite {result} in the benchmark step")
    return result


def count_flops(trainer: Trainer, batch: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter:
        step(trainer, batch)
    return float(counter.get_total_flops())


def loader_rate(cfg: RunConfig, trainer: Trainer, steps: int, skip: int = 2) -> float:
    """Clips per second of ``steps`` steps fed by the trainer's DataLoader (the first ``skip`` steps, which start
    the workers and fill their queue, are not timed)."""
    dataset = build_train_dataset(cfg.data, cfg.train.seed)
    sampler = StepBatchSampler(1000, 1000 + steps + skip, cfg.train.batch_size)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.data.num_workers,
                        pin_memory=trainer.device.type == "cuda", generator=torch.Generator().manual_seed(0))
    it = iter(loader)
    for _ in range(skip):
        step(trainer, next(it))
    sync(trainer.device)
    start = time.perf_counter()
    for batch in it:
        step(trainer, batch)
    sync(trainer.device)
    return steps * cfg.train.batch_size / (time.perf_counter() - start)


def probe(args: argparse.Namespace) -> None:
    """Child process: two warm-up steps and ``--probe-steps`` measured steps of one variant; prints the peak
    resident memory, and per step the wall and CPU seconds and the minor page faults, as JSON."""
    if args.probe_tune:
        tune_glibc_malloc()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(args.preset, args.probe_batch, args.probe, args.device, tmp)
        before = peak_rss_mb()
        trainer = build_trainer(cfg, args.probe)
        if args.probe == "fp32-defaults":
            use_pytorch_defaults(trainer)
        batches, _ = make_batches(cfg, 1)
        for _ in range(2):
            step(trainer, batches[0])
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        for _ in range(args.probe_steps):
            step(trainer, batches[0])
        r1, n = resource.getrusage(resource.RUSAGE_SELF), args.probe_steps
        out = {"peak_rss_mb": peak_rss_mb(), "before_model_mb": before,
               "wall_s_per_step": (time.perf_counter() - t0) / n,
               "user_s_per_step": (r1.ru_utime - r0.ru_utime) / n, "sys_s_per_step": (r1.ru_stime - r0.ru_stime) / n,
               "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / n}
        if trainer.device.type == "cuda":
            out["cuda_peak_mb"] = torch.cuda.max_memory_allocated(trainer.device) / 2**20
        print(json.dumps(out))


def use_pytorch_defaults(trainer: Trainer) -> None:
    """Stock layers and the default (for-loop on CPU) Adam, at a constant learning rate."""
    use_stock_layers(trainer.model)
    trainer.optimizer = torch.optim.Adam(trainer.model.parameters(), lr=trainer.cfg.train.lr)
    trainer.scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.optimizer, lambda s: 1.0)


def worker(args: argparse.Namespace) -> None:
    """Child process of one variant with its own allocator settings (glibc's defaults for ``fp32-defaults``):
    builds the trainer and the batches as the parent does, takes two warm-up steps, then one timed step per
    ``step I`` line on stdin (answering the seconds and the loss as JSON), and its peak memory on ``quit``."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(args.preset, args.probe_batch, args.worker, args.device, tmp)
        trainer = build_trainer(cfg, args.worker)
        if args.worker == "fp32-defaults":
            use_pytorch_defaults(trainer)
        batches, _ = make_batches(cfg, args.worker_batches)
        _, first = timed(lambda: step(trainer, batches[0]), trainer.device)
        step(trainer, batches[0])
        print(json.dumps({"first_step_s": first}), flush=True)
        for line in sys.stdin:
            command = line.split()
            if command[0] == "quit":
                print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)
                return
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            result, seconds = timed(lambda i=int(command[1]): step(trainer, batches[i]), trainer.device)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            print(json.dumps({"seconds": seconds, "total": result["total"], "sys_s": r1.ru_stime - r0.ru_stime,
                              "minor_faults": r1.ru_minflt - r0.ru_minflt}), flush=True)


class Worker:
    """Parent side of :func:`worker`."""

    def __init__(self, args: argparse.Namespace, variant: str, batch: int, n_batches: int):
        cmd = [sys.executable, __file__, "--preset", args.preset, "--device", args.device, "--threads",
               str(args.threads), "--worker", variant, "--probe-batch", str(batch), "--worker-batches", str(n_batches)]
        env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.sys_s: list[float] = []
        self.minor_faults: list[int] = []
        self.first_step_s = self._read()["first_step_s"]

    def _read(self) -> dict:
        while True:  # answers are JSON lines; other lines (notes the worker prints) are skipped
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"benchmark worker exited with status {self.proc.wait()}")
            if line.startswith("{"):
                return json.loads(line)

    def step(self, i: int) -> tuple[float, float]:
        self.proc.stdin.write(f"step {i}\n")
        self.proc.stdin.flush()
        answer = self._read()
        self.sys_s.append(answer["sys_s"])
        self.minor_faults.append(answer["minor_faults"])
        return answer["seconds"], answer["total"]

    def close(self) -> float:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        peak = self._read()["peak_rss_mb"]
        self.proc.wait()
        return peak


def run_probe(args: argparse.Namespace, variant: str, batch: int, steps: int = 1, tune: bool = True) -> dict:
    cmd = [sys.executable, __file__, "--preset", args.preset, "--device", args.device, "--threads", str(args.threads),
           "--probe", variant, "--probe-batch", str(batch), "--probe-steps", str(steps)]
    if tune:
        cmd.append("--probe-tune")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_batch(args: argparse.Namespace, batch: int, peaks: dict[str, float]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = {v: run_config(args.preset, batch, v, args.device, f"{tmp}/{v}") for v in args.variants}
        base = cfgs[args.variants[0]]
        batches, data_seconds = make_batches(base, args.repeats + 1)
        trainers = {}
        workers = {}
        warmup = {}
        for v, cfg in cfgs.items():
            if v == "fp32-defaults":
                workers[v] = Worker(args, v, batch, args.repeats + 1)
                warmup[v] = workers[v].first_step_s
                continue
            trainers[v] = build_trainer(cfg, v)
            _, warmup[v] = timed(lambda t=trainers[v]: step(t, batches[0]), trainers[v].device)  # compile happens here
            step(trainers[v], batches[0])
        flops = count_flops(build_trainer(run_config(args.preset, batch, "fp32", args.device, f"{tmp}/flops")),
                            batches[0])
        times: dict[str, list[float]] = {v: [] for v in args.variants}
        losses: dict[str, list[float]] = {v: [] for v in args.variants}
        for r in range(args.repeats):
            for v in args.variants:  # interleaved
                if v in workers:
                    seconds, total = workers[v].step(r + 1)
                else:
                    result, seconds = timed(lambda t=trainers[v], b=batches[r + 1]: step(t, b), trainers[v].device)
                    total = result["total"]
                times[v].append(seconds)
                losses[v].append(total)
        worker_peaks = {v: w.close() for v, w in workers.items()}
        worker_kernel = {v: {"sys_s_per_step": median(w.sys_s), "minor_faults_per_step": median(w.minor_faults)}
                         for v, w in workers.items()}
        data_s = median(data_seconds[1:] if len(data_seconds) > 1 else data_seconds)
        results = {"batch": batch, "gflop_per_step": flops / 1e9, "data_seconds_per_batch": data_s, "variants": {}}
        plain = args.variants[0]
        trainer_fp32 = "fp32" if "fp32" in args.variants else None
        for v in args.variants:
            t = median(times[v])
            peak = peaks["bf16"] if VARIANTS[v]["precision"] != "fp32" else peaks["fp32"]
            results["variants"][v] = {
                "step_seconds": times[v], "median_step_s": t, "clips_per_s": batch / t, "first_step_s": warmup[v],
                "gflops": flops / t / 1e9, "fraction_of_peak": flops / t / 1e9 / peak,
                "ratio_vs_plain": median(times[plain]) / t,
                "ratio_vs_fp32": median(times[trainer_fp32]) / t if trainer_fp32 else float("nan"),
                "losses": losses[v], **worker_kernel.get(v, {}),
            }
        if args.loader_steps:
            if plain in workers:
                plain = trainer_fp32 or args.variants[1]
            best = args.variants[-1]
            results["end_to_end"] = {}
            for v, workers in ((plain, 0), (best, args.workers)):
                cfg = run_config(args.preset, batch, v, args.device, f"{tmp}/{v}", workers)
                results["end_to_end"][f"{v} (num_workers={workers})"] = loader_rate(cfg, trainers[v], args.loader_steps)
        if args.memory:
            results["memory"] = {v: ({"peak_rss_mb": worker_peaks[v]} if v in workers else run_probe(args, v, batch))
                                 for v in args.variants}
    return results


def print_batch(results: dict, peaks: dict[str, float]) -> None:
    b = results["batch"]
    print(f"\n== batch {b}: {results['gflop_per_step']:.1f} GFLOP per step (fp32 count); generating one batch of "
          f"clips in-process: {results['data_seconds_per_batch'] * 1e3:.0f} ms")
    print(f"  {'variant':14s} {'step s':>8s} {'clips/s':>8s} {'x plain':>8s} {'x fp32':>7s} {'GFLOP/s':>8s} "
          f"{'% peak':>7s} {'1st step s':>10s}  {'peak RSS MB':>11s}  steps (s)")
    for v, r in results["variants"].items():
        mem = results.get("memory", {}).get(v, {})
        rss = f"{mem['peak_rss_mb']:.0f}" if "peak_rss_mb" in mem else "-"
        print(f"  {v:14s} {r['median_step_s']:8.3f} {r['clips_per_s']:8.2f} {r['ratio_vs_plain']:8.2f} "
              f"{r['ratio_vs_fp32']:7.2f} "
              f"{r['gflops']:8.1f} {100 * r['fraction_of_peak']:6.0f}% {r['first_step_s']:10.1f}  {rss:>11s}  "
              + " ".join(f"{s:.2f}" for s in r["step_seconds"]))
    for v, r in results["variants"].items():
        if "minor_faults_per_step" in r:
            print(f"  {v} (own process): {r['minor_faults_per_step']:.0f} minor page faults and "
                  f"{r['sys_s_per_step']:.2f} s of kernel time per step (medians)")
    if "end_to_end" in results:
        rates = results["end_to_end"]
        names = list(rates)
        print("  end to end with the trainer's DataLoader: "
              + ", ".join(f"{k} {r:.2f} clips/s" for k, r in rates.items())
              + f"; ratio {rates[names[-1]] / rates[names[0]]:.2f}x")
    print("  (x plain: against the first variant; x fp32: against the fp32 step with the trainer's settings; % peak:"
          " against the measured fp32 matmul peak for fp32 variants, the bf16 peak for the others)")


def allocator(args: argparse.Namespace) -> None:
    """Per step: wall and CPU seconds and minor page faults with glibc's default allocator settings and with
    :func:`srvp.training.trainer.tune_glibc_malloc` (page faults and kernel time do not depend on the load)."""
    for batch in args.batch_sizes:
        for v in (args.variants[0], args.variants[-1]):
            for tune in (False, True):
                r = run_probe(args, v, batch, steps=args.repeats, tune=tune)
                if "error" in r:
                    print(f"batch {batch} {v}: {r['error']}")
                    continue
                print(f"batch {batch:3d} {v:14s} {'tuned  ' if tune else 'default'}: wall {r['wall_s_per_step']:6.2f} s"
                      f"  user {r['user_s_per_step']:6.2f} s  sys {r['sys_s_per_step']:5.2f} s  minor faults "
                      f"{r['minor_faults_per_step']:9.0f}  peak RSS {r['peak_rss_mb']:6.0f} MB  (per step, "
                      f"{args.repeats} steps)", flush=True)


def convergence(args: argparse.Namespace) -> None:
    """fp32 and bf16 runs of the ``cpu`` preset over the same batches and the same random draws, step by step."""
    import csv

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with tempfile.TemporaryDirectory() as tmp:
        variants = {"fp32": run_config("cpu", 16, "fp32", args.device, f"{tmp}/a"),
                    "bf16": run_config("cpu", 16, "bf16+cl", args.device, f"{tmp}/b")}
        for cfg in variants.values():
            cfg.train.steps, cfg.train.decay_steps = args.convergence, 0
        trainers = {k: build_trainer(cfg) for k, cfg in variants.items()}
        rng = {k: torch.get_rng_state() for k in variants}  # each run gets the same random draws
        dataset = build_train_dataset(variants["fp32"].data, 1)
        rows = []
        seconds = {k: 0.0 for k in variants}
        for i in range(args.convergence):
            batch = default_collate([dataset[i * 16 + j] for j in range(16)])
            row = {"step": i + 1}
            for k, trainer in trainers.items():
                torch.set_rng_state(rng[k])
                result, s = timed(lambda t=trainer, b=batch: step(t, b), trainer.device)
                rng[k] = torch.get_rng_state()
                seconds[k] += s
                row.update({f"{k}_{term}": result[term] for term in ("total", "nll", "kl_y", "kl_z", "residual")})
            rows.append(row)
            if (i + 1) % 25 == 0:
                print(f"step {i + 1}: fp32 total {row['fp32_total']:.2f}  bf16 total {row['bf16_total']:.2f}",
                      flush=True)
    out = Path(args.convergence_out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
    steps = [r["step"] for r in rows]
    for k in variants:
        axes[0].plot(steps, [r[f"{k}_total"] for r in rows], label=k, lw=1)
        axes[1].plot(steps, [r[f"{k}_kl_z"] for r in rows], label=k, lw=1)
    axes[2].plot(steps, [r["bf16_total"] - r["fp32_total"] for r in rows], lw=1, color="k")
    axes[0].set(xlabel="step", ylabel="training loss (total)", title="cpu preset, batch 16")
    axes[1].set(xlabel="step", ylabel="KL on z (nats)", title="same batches, same random draws")
    axes[2].set(xlabel="step", ylabel="bf16 - fp32", title="difference of the total loss")
    for ax in axes[:2]:
        ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    last = rows[-20:]
    mean = lambda k: sum(r[k] for r in last) / len(last)  # noqa: E731
    print(f"mean total loss over the last {len(last)} steps: fp32 {mean('fp32_total'):.3f}, bf16 "
          f"{mean('bf16_total'):.3f}; time fp32 {seconds['fp32']:.0f} s, bf16+channels-last {seconds['bf16']:.0f} s")
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")


def profile(args: argparse.Namespace) -> None:
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    variant = args.variants[-1]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = run_config(args.preset, args.batch_sizes[0], variant, args.device, tmp)
        trainer = build_trainer(cfg, variant)
        batches, _ = make_batches(cfg, 3)
        step(trainer, batches[0])
        step(trainer, batches[1])
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if trainer.device.type == "cuda" else [])
        with torch_profile(activities=activities) as prof:
            step(trainer, batches[2])
    sort = "self_cuda_time_total" if trainer.device.type == "cuda" else "self_cpu_time_total"
    print(f"profile of one {variant} step, {args.preset} preset, batch {args.batch_sizes[0]}:")
    print(prof.key_averages().table(sort_by=sort, row_limit=args.profile_rows, max_name_column_width=40))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="smmnist", help="model and data preset (smmnist, kth, cpu, ...)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[16, 32])
    parser.add_argument("--variants", nargs="+", default=["fp32-defaults", "fp32", "bf16", "bf16+cl"],
                        choices=list(VARIANTS), help="the first one is the reference of the ratios")
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per variant (after two warm-up steps)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on CPU")
    parser.add_argument("--loader-steps", type=int, default=0, help="steps of an end-to-end DataLoader "
                        "measurement after the interleaved one (default 0: skip)")
    parser.add_argument("--workers", type=int, default=1, help="loader workers of the optimised end-to-end run")
    parser.add_argument("--memory", action=argparse.BooleanOptionalAction, default=True,
                        help="peak resident memory of each variant, each in its own subprocess")
    parser.add_argument("--profile", action="store_true", help="profile one step of the last variant instead")
    parser.add_argument("--profile-rows", type=int, default=15)
    parser.add_argument("--convergence", type=int, default=0, metavar="STEPS",
                        help="instead: fp32 vs bf16 loss curves over STEPS steps of the cpu preset")
    parser.add_argument("--convergence-out", default="docs/convergence_bf16", help="CSV/PNG path without suffix")
    parser.add_argument("--json", default="", help="also write the results to this JSON file")
    parser.add_argument("--allocator", action="store_true", help="instead: the plain and the last variant with "
                        "glibc's default allocator and with srvp's setting (each in its own subprocess)")
    parser.add_argument("--probe", default="", help=argparse.SUPPRESS)
    parser.add_argument("--probe-batch", type=int, default=16, help=argparse.SUPPRESS)
    parser.add_argument("--probe-steps", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--probe-tune", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", default="", help=argparse.SUPPRESS)
    parser.add_argument("--worker-batches", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.probe:
        return probe(args)
    if args.worker:
        return worker(args)
    tune_glibc_malloc()  # as the trainer does: every variant of this process runs with the same allocator
    device = torch.device(args.device)
    print(machine_summary(device))
    print(f"started {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; {load_report()}", flush=True)
    if args.convergence:
        return convergence(args)
    if args.profile:
        return profile(args)
    if args.allocator:
        return allocator(args)
    peaks = {"fp32": matmul_peak(torch.float32, device), "bf16": matmul_peak(torch.bfloat16, device)}
    print(f"matmul 2048^2 peak: fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s", flush=True)
    everything = {"machine": machine_summary(device), "preset": args.preset, "peaks_gflops": peaks, "batches": []}
    for batch in args.batch_sizes:
        results = bench_batch(args, batch, peaks)
        print_batch(results, peaks)
        everything["batches"].append(results)
    print(f"\nfinished {time.strftime('%H:%M:%S')}; {load_report()}")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=2) + "\n")


if __name__ == "__main__":
    main()
