"""Training: exact resume after a signal, 2-process DDP on CPU, non-finite guards, command-line errors."""

import os
import signal
import subprocess
import sys

import pytest
import torch
import torch.multiprocessing as mp

from srvp.config import DataConfig, RunConfig, TrainConfig
from srvp.training.checkpoint import CheckpointManager, load_checkpoint, read_checkpoint
from srvp.training.trainer import Trainer, TrainingError, lr_factor, train
from tests.conftest import tiny_model_config


def tiny_run(out_dir, steps=6, **train_overrides) -> RunConfig:
    values = dict(steps=steps, decay_steps=2, batch_size=2, seed=3, val_interval=0, checkpoint_interval=2,
                  log_interval=1, sample_interval=0, keep_checkpoints=2, out_dir=str(out_dir))
    values.update(train_overrides)
    return RunConfig(model=tiny_model_config(), train=TrainConfig(**values),
                     data=DataConfig(digits="embedded", seq_len=4, cond_frames=2, test_seq_len=4, num_digits=1,
                                     val_sequences=4))


def test_learning_rate_schedule():
    assert [lr_factor(s, 10, 4) for s in (0, 5, 6, 7, 9, 10)] == [1, 1, 1, 0.75, 0.25, 0]


def test_resume_after_sigterm_is_exact(tmp_path, monkeypatch):
    reference = load_checkpoint(train(tiny_run(tmp_path / "a"), progress=False) / "last.pt").model

    original = Trainer.train_step

    def preempted(self, x):
        result = original(self, x)
        if self.step == 2:  # the step being taken is the fourth: SIGTERM arrives in the middle of the run
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(Trainer, "train_step", preempted)
    run_dir = train(tiny_run(tmp_path / "b"), progress=False)
    stopped = read_checkpoint(CheckpointManager(run_dir / "checkpoints").latest_good()[1])
    assert stopped["step"] == 3  # the signal finished the current step, saved, and stopped
    monkeypatch.setattr(Trainer, "train_step", original)

    with pytest.raises(Exception, match="--resume"):
        train(tiny_run(tmp_path / "b"), progress=False)  # refuses to overwrite an earlier run
    train(tiny_run(tmp_path / "b"), resume=True, progress=False)
    resumed_state = read_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000006.pt")
    reference_state = read_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000006.pt")
    assert resumed_state["step"] == reference_state["step"] == 6
    for k, v in reference.state_dict().items():
        assert torch.equal(v, resumed_state["model"][k]), k
    opt_a, opt_b = reference_state["optimizer"], resumed_state["optimizer"]
    for pid, s in opt_a["state"].items():
        assert torch.equal(s["step"], opt_b["state"][pid]["step"])
        assert torch.equal(s["exp_avg_sq"], opt_b["state"][pid]["exp_avg_sq"])
    assert reference_state["scheduler"] == resumed_state["scheduler"]


def test_non_finite_loss_skips_steps_then_stops_with_the_last_good_checkpoint(tmp_path, monkeypatch):
    original = Trainer.train_step
    calls = {"n": 0}

    def poisoned(self, x):
        calls["n"] += 1
        if calls["n"] > 2:
            real_loss = self.model.loss

            def nan_loss(x_, out, kl_scale=1.0):
                terms = real_loss(x_, out, kl_scale)
                terms["kl_z"] = terms["kl_z"] * float("nan")
                return terms

            self.model.loss = nan_loss
        return original(self, x)

    monkeypatch.setattr(Trainer, "train_step", poisoned)
    with pytest.raises(TrainingError, match="kl_z"):
        train(tiny_run(tmp_path, steps=10, max_nonfinite=3), progress=False)
    state, path = CheckpointManager(tmp_path / "checkpoints").latest_good()
    assert state["step"] == 2 and path.name == "step_00000002.pt"


def _ddp_worker(rank, world, port, out_dir, result_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = Trainer(tiny_run(out_dir, steps=3, checkpoint_interval=3), progress=False)
    trainer.fit()
    torch.save({k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
               os.path.join(result_dir, f"rank{rank}.pt"))
    torch.distributed.destroy_process_group()


def test_two_process_ddp_keeps_identical_parameters(tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path / "run"), str(tmp_path)), nprocs=2, join=True)
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    init = load_checkpoint(tmp_path / "run" / "last.pt").model.state_dict()
    changed = 0
    for k in a:
        if a[k].is_floating_point() and "running" not in k:
            assert torch.equal(a[k], b[k]), k
            changed += not torch.equal(a[k], init[k]) or 0
    assert (tmp_path / "run" / "checkpoints" / "step_00000003.pt").exists()  # written by rank 0 only
    assert not any(p.name.startswith("rank1") for p in (tmp_path / "run").iterdir())


def _srvp(*args, cwd):
    return subprocess.run([sys.executable, "-m", "srvp.cli.main", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("args,message", [
    (["--dt", "0.3"], "dt=0.3 must be 1/n"),
    (["--digits", "/nonexistent/mnist"], "/nonexistent/mnist: digits directory not found"),
    (["--config", "missing.json"], "missing.json: config file not found"),
    (["--test-set", "bad.npz", "--val-interval", "0", "--steps", "1", "--decay-steps", "0"], None),
])
def test_cli_bad_input_is_one_line(tmp_path, args, message):
    result = _srvp("train", "--preset", "cpu", "--out-dir", str(tmp_path / "run"), *args, cwd=tmp_path)
    if message is None:  # a test set is not read by training: the run works
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
