"""The benchmark scripts run end to end (tiny settings: the figures mean nothing here, only that every code path
of the scripts works and prints its tables), so that they do not rot between the sessions that measure."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--threads", "1", *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_bench_train_runs_the_plain_worker_and_the_optimised_step(tmp_path):
    out = run("bench_train.py", "--preset", "cpu", "--batch-sizes", "2", "--repeats", "2", "--no-memory",
              "--variants", "fp32-defaults", "fp32", "bf16+cl", "--json", str(tmp_path / "r.json"))
    for line in ("fp32-defaults", "bf16+cl", "minor page faults", "x plain"):
        assert line in out
    assert (tmp_path / "r.json").stat().st_size > 0


@pytest.mark.slow
def test_bench_sampling_runs_the_authors_loop_and_the_fast_path():
    out = run("bench_sampling.py", "--sequences", "1", "--samples", "2", "--chunk", "1", "--repeats", "1",
              "--no-memory", "--approaches", "plain", "once bf16+cl+fast")
    assert "once bf16+cl+fast" in out and "never all 100" in out


@pytest.mark.slow
def test_bench_layers_and_bench_eval_run():
    out = run("bench_layers.py", "--frames", "2", "--decode-frames", "4", "--repeats", "1")
    assert "ProjectionConvTranspose2d" in out and "ThinConvTranspose2d" in out and "inference_layers" in out
    out = run("bench_eval.py", "--sequences", "1", "--samples", "2", "--plain-batch", "1", "--plain-samples", "1")
    assert "protocol bf16 / plain fp32" in out


@pytest.mark.slow
def test_bench_time_to_quality_scores_snapshots_resumes_and_reports(tmp_path):
    args = ["--snapshots", "0.01", "0.02", "--test-sequences", "3", "--samples", "2", "--out-dir",
            str(tmp_path / "out"), "--run-root", str(tmp_path / "runs"),
            "--recipe", "paper=cpu,filters=4,inference_hidden=16,forward_hidden=16,lr=3e-4,obs_scale=1,beta_z=2,"
                        "precision=fp32",
            "--recipe", "fast=cpu,filters=4,inference_hidden=16,forward_hidden=16,steps=400,decay_steps=0,"
                        "lr_schedule=cosine,warmup_steps=5,ema_decay=0.9"]
    out = run("bench_time_to_quality.py", *args)
    assert "paper: 0.01 min" in out and "fast: 0.02 min" in out
    table = (tmp_path / "out" / "time_to_quality.md").read_text()
    assert "Speed-up over `paper`" in table and "| fast |" in table
    rows = (tmp_path / "out" / "time_to_quality.csv").read_text().splitlines()
    assert rows[0].startswith("recipe,minutes,train_seconds,train_cpu_seconds,step,psnr_best") and len(rows) == 5
    assert rows[0].endswith("psnr_recon,ssim_recon,psnr_recon_cond,ssim_recon_cond")
    assert "reconstruction clip" in table and "cpu clock" in table
    assert (tmp_path / "out" / "time_to_quality.png").read_bytes()[:4] == b"\x89PNG"
    again = run("bench_time_to_quality.py", *args)  # finished recipes are not trained again
    assert "every snapshot already scored" in again
    assert (tmp_path / "out" / "time_to_quality.csv").read_text().splitlines() == rows
