"""A run survives SIGKILL at any moment: `srvp train` is killed again and again (inside checkpoint writes and at
random times, with the newest checkpoint corrupted or truncated between two sessions), resumed each time with
``--resume``, and ends with parameters, optimizer and scheduler state bit-identical to an uninterrupted run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from srvp.config import RunConfig
from srvp.files import FILE_MODE
from srvp.training.checkpoint import MANIFEST, CheckpointManager, read_checkpoint
from srvp.training.trainer import Trainer, train
from tests.conftest import REPO
from tests.test_training import tiny_run

STEPS = 12
TINY_CONFIG = {
    "model": {"filters": 4, "frame_dim": 16, "state_dim": 4, "noise_dim": 3, "inference_hidden": 16,
              "forward_hidden": 16, "content_frames": 2},
    "data": {"digits": "embedded", "seq_len": 4, "cond_frames": 2, "test_seq_len": 4, "num_digits": 1,
             "val_sequences": 4},
    # validation (best-of-2 PSNR, best.pt) and TensorBoard samples draw random numbers between training steps
    "train": {"steps": STEPS, "decay_steps": 4, "batch_size": 2, "seed": 3, "val_interval": 3, "val_samples": 2,
              "checkpoint_interval": 2, "keep_checkpoints": 2, "log_interval": 1, "sample_interval": 5,
              "device": "cpu"},
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


class Session:
    """One `srvp train` process, its output in files (a pipe could fill up and block it)."""

    def __init__(self, tmp: Path, name: str, out_dir: Path, config: Path, extra: list[str], hook=None):
        self.stdout, self.stderr = tmp / f"{name}.out", tmp / f"{name}.err"
        self.marker = tmp / f"{name}.marker"
        args = ["train", "--config", str(config), "--out-dir", str(out_dir), "--no-progress", *extra]
        prefix = [sys.executable, "-m", "srvp.cli.main"] if hook is None else \
            [sys.executable, "-m", "tests.kill_helper", hook[0], str(hook[1]), hook[2], str(self.marker), "--"]
        with open(self.stdout, "w") as out, open(self.stderr, "w") as err:
            self.process = subprocess.Popen(prefix + args, stdout=out, stderr=err, cwd=REPO, env=ENV)

    def kill_at_marker(self, timeout: float = 120.0) -> str:
        """SIGKILL once the process has stopped inside the hooked write; returns the file it was writing."""
        deadline = time.monotonic() + timeout
        while not self.marker.exists():
            assert self.process.poll() is None, f"exited ({self.process.returncode}) before the hooked write: " \
                                                f"{self.stderr.read_text()[-2000:]}"
            assert time.monotonic() < deadline, "the hooked write never happened"
            time.sleep(0.05)
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        return self.marker.read_text()

    def kill_while_training(self, seconds: float, timeout: float = 120.0) -> None:
        """SIGKILL ``seconds`` after the session has resumed (unless it finished before)."""
        deadline = time.monotonic() + timeout
        while "resumed from" not in self.stdout.read_text():
            assert self.process.poll() is None, self.stderr.read_text()[-2000:]
            assert time.monotonic() < deadline, "the session never resumed"
            time.sleep(0.02)
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def finish(self) -> tuple[str, str]:
        rc = self.process.wait(timeout=300)
        out, err = self.stdout.read_text(), self.stderr.read_text()
        assert rc == 0, err[-3000:]
        return out, err


def newest_listed(run: Path) -> Path:
    entries = json.loads((run / "checkpoints" / MANIFEST).read_text())["checkpoints"]
    return run / "checkpoints" / entries[-1]["file"]


def assert_same_run(a: Path, b: Path) -> None:
    """Final checkpoint (model, optimizer, scheduler, RNG), last.pt and best.pt are bit-identical."""
    name = f"step_{STEPS:08d}.pt"
    sa, sb = read_checkpoint(a / "checkpoints" / name), read_checkpoint(b / "checkpoints" / name)
    assert sa["step"] == sb["step"] == STEPS
    assert sa["model"].keys() == sb["model"].keys()
    for k, v in sa["model"].items():
        assert torch.equal(v, sb["model"][k]), k
    oa, ob = sa["optimizer"], sb["optimizer"]
    assert oa["param_groups"] == ob["param_groups"] and oa["state"].keys() == ob["state"].keys()
    for pid, state in oa["state"].items():
        for key, value in state.items():
            assert torch.equal(value, ob["state"][pid][key]), (pid, key)
    assert sa["scheduler"] == sb["scheduler"]
    assert torch.equal(sa["rng"]["torch"], sb["rng"]["torch"])
    for file in ("last.pt", "best.pt"):
        ma, mb = read_checkpoint(a / file)["model"], read_checkpoint(b / file)["model"]
        assert all(torch.equal(v, mb[k]) for k, v in ma.items()), file


@pytest.mark.slow
def test_sigkill_anywhere_then_resume_is_bit_identical(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    reference, run = tmp_path / "reference", tmp_path / "killed"
    uninterrupted = Session(tmp_path, "reference", reference, config, [])

    # Kills inside the writes of a checkpoint (every 2 steps: step file, manifest, last.pt) and of best.pt.
    s = Session(tmp_path, "a0", run, config, [], hook=("config.json", 1, "write"))
    s.kill_at_marker()  # config.json half-written, no checkpoint: --resume will start from step 0
    s = Session(tmp_path, "a", run, config, ["--resume"], hook=(MANIFEST, 1, "fsync"))
    s.kill_at_marker()  # step_2 in place, the first manifest written but not renamed
    assert "no checkpoint yet; starting the run from step 0" in s.stdout.read_text()
    assert not (run / "checkpoints" / MANIFEST).exists() and (run / "checkpoints" / "step_00000002.pt").exists()
    s = Session(tmp_path, "b", run, config, ["--resume"], hook=("best.pt", 1, "write"))
    s.kill_at_marker()  # the first validation (step 3) half-way through writing best.pt
    assert "step_00000002.pt at step 2" in s.stdout.read_text()
    s = Session(tmp_path, "c", run, config, ["--resume"], hook=("step_*.pt", 2, "write"))
    s.kill_at_marker()  # step 4 complete; step 6 half-written
    assert "step_00000002.pt at step 2" in s.stdout.read_text()
    assert any(p.name.startswith(".step_00000006.pt.") for p in (run / "checkpoints").iterdir())
    s = Session(tmp_path, "d", run, config, ["--resume"], hook=("last.pt", 1, "after"))
    s.kill_at_marker()  # step 6, its manifest and last.pt written
    assert "step_00000004.pt at step 4" in s.stdout.read_text()
    s = Session(tmp_path, "e", run, config, ["--resume"], hook=("step_*.pt", 1, "after"))
    assert s.kill_at_marker().endswith("step_00000008.pt")  # renamed into place, not yet in the manifest
    assert "step_00000006.pt at step 6" in s.stdout.read_text()

    # Damage the newest listed checkpoint (step 6): the checksum catches it and step 4 is used.
    newest = newest_listed(run)
    assert newest.name == "step_00000006.pt"
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    rng = random.Random(8)
    s = Session(tmp_path, "f", run, config, ["--resume"])
    s.kill_while_training(rng.uniform(0.0, 1.5))  # at a random moment
    assert "checksum mismatch" in s.stderr.read_text() and "step_00000004.pt at step 4" in s.stdout.read_text()

    newest = newest_listed(run)  # truncated this time
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 3])
    s = Session(tmp_path, "g", run, config, ["--resume"])
    s.kill_while_training(rng.uniform(0.0, 1.5))
    assert f"srvp train: warning: {newest}: checksum mismatch (truncated or corrupt); using an older checkpoint\n" \
        in s.stderr.read_text()

    # The last session loads clips with a worker process: batches do not depend on the loader.
    out, _ = Session(tmp_path, "h", run, config, ["--resume", "--num-workers", "1"]).finish()
    assert "resumed from" in out
    uninterrupted.finish()
    assert_same_run(reference, run)
    leftovers = sorted(p.name for p in run.rglob(".*.tmp"))
    assert leftovers == [], "temporary files of killed writes were not cleaned up"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [MANIFEST, "step_00000010.pt",
                                                                       "step_00000012.pt"]


def test_skipped_non_finite_step_keeps_batches_a_function_of_the_step(tmp_path, monkeypatch):
    """A non-finite step consumes its batch and counts: the run reaches its last step (instead of the loader
    running out) and a resumed run sees the same batches as an uninterrupted one."""
    original = Trainer.train_step

    def nan_at_step_3(self, x):
        if self.step == 2:
            return "kl_z"  # what train_step returns for a non-finite term; nothing is updated
        return original(self, x)

    monkeypatch.setattr(Trainer, "train_step", nan_at_step_3)
    reference = tiny_run(tmp_path / "a", steps=8)
    train(reference, progress=False)
    final = read_checkpoint(tmp_path / "a" / "checkpoints" / "step_00000008.pt")
    assert final["step"] == 8 and final["scheduler"]["last_epoch"] == 8
    assert final["optimizer"]["state"][0]["step"].item() == 7  # seven updates in eight steps

    def preempted(self, x):
        result = nan_at_step_3(self, x)
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(Trainer, "train_step", preempted)
    train(tiny_run(tmp_path / "b", steps=8), progress=False)
    assert CheckpointManager(tmp_path / "b" / "checkpoints").latest_good()[0]["step"] == 5
    monkeypatch.setattr(Trainer, "train_step", nan_at_step_3)
    train(tiny_run(tmp_path / "b", steps=8), resume=True, progress=False)
    resumed = read_checkpoint(tmp_path / "b" / "checkpoints" / "step_00000008.pt")
    for k, v in final["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


def test_resume_without_any_checkpoint_starts_over_but_not_over_damaged_ones(tmp_path, capsys):
    cfg = tiny_run(tmp_path / "run", steps=2)
    train(cfg, resume=True, progress=False)  # nothing there yet: a plain start
    assert "no checkpoint yet" in capsys.readouterr().out
    for p in (tmp_path / "run" / "checkpoints").glob("step_*.pt"):
        p.write_bytes(b"")
    with pytest.raises(Exception, match="no usable checkpoint"):  # damaged checkpoints are never overwritten
        train(cfg, resume=True, progress=False)


def test_checkpoint_files_are_readable_like_normally_written_files(tmp_path):
    cfg: RunConfig = tiny_run(tmp_path / "run", steps=2)
    run = train(cfg, progress=False)
    reference = tmp_path / "plain"
    reference.write_bytes(b"")  # created with the umask, like torch.save or np.save would
    for p in [run / "last.pt", run / "config.json", *(run / "checkpoints").iterdir()]:
        assert p.stat().st_mode & 0o777 == reference.stat().st_mode & 0o777 == FILE_MODE, p


def test_manifest_entries_outside_the_directory_are_ignored(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    checkpoints = tmp_path / "run" / "checkpoints"
    checkpoints.mkdir(parents=True)
    entries = [{"file": str(victim), "step": 0, "sha256": None}, {"file": "../../precious.txt", "step": 1,
                                                                   "sha256": None}]
    (checkpoints / MANIFEST).write_text(json.dumps({"checkpoints": entries}))
    manager = CheckpointManager(checkpoints, keep=1)
    assert manager.latest_good() is None
    model = torch.nn.Linear(2, 2)
    from srvp.training.checkpoint import make_checkpoint

    for step in (2, 3):
        manager.save(make_checkpoint(model, RunConfig(), step))
    assert victim.read_text() == "keep me"
    assert [e["file"] for e in json.loads((checkpoints / MANIFEST).read_text())["checkpoints"]] == ["step_00000003.pt"]


def test_fp16_loss_scale_is_restored_on_resume(tmp_path):
    """The GradScaler's scale (fp16 on GPUs) travels in the checkpoint; a CPU scaler stands in for the CUDA one."""
    cfg = tiny_run(tmp_path / "run", steps=2)
    cfg.train.precision = "fp16"  # the scaler is enabled (setup builds nothing that runs fp16 on the CPU)
    trainer = Trainer(cfg, progress=False).setup()
    assert trainer.scaler.is_enabled()
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=256.0, growth_interval=7)
    trainer._save()
    resumed = Trainer(cfg, resume=True, progress=False).setup()
    assert resumed.scaler.get_scale() == 256.0 and resumed.scaler.get_growth_interval() == 7


def _ddp_worker(rank: int, world: int, port: int, jobs: list[tuple[str, int | None, bool]]) -> None:
    """Runs the trainings ``(out_dir, rank receiving SIGTERM at step 3 or None, resume)`` one after the other."""
    import datetime

    import torch.distributed as dist

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))  # a regression fails, not hangs
    original = Trainer.train_step
    for out_dir, signal_rank, resume in jobs:

        def preempted(self, x, signal_rank=signal_rank):
            result = original(self, x)
            if self.rank == signal_rank and self.step == 2:  # the signal reaches one process only
                os.kill(os.getpid(), signal.SIGTERM)
            return result

        Trainer.train_step = preempted
        trainer = Trainer(tiny_run(out_dir, steps=6, checkpoint_interval=3), resume=resume, progress=False)
        trainer.fit()
        torch.save({"step": trainer.step, "model": trainer.model.state_dict(), "next_draw": torch.rand(8)},
                   Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def _spawn_ddp(jobs: list[tuple[Path, int | None, bool]]) -> list[list[dict]]:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, [(str(d), r, resume) for d, r, resume in jobs]), nprocs=2, join=True)
    return [[torch.load(d / f"rank{r}.pt", weights_only=True) for r in range(2)] for d, _, _ in jobs]


@pytest.mark.slow
def test_ddp_signal_on_one_process_stops_all_at_the_same_step_and_resumes_exactly(tmp_path):
    """Two gloo processes: SIGTERM to one stops both at the same step; the resumed run restores each process's random
    stream and equals an uninterrupted run."""
    run, reference_dir = tmp_path / "run", tmp_path / "reference"
    reference, stopped = _spawn_ddp([(reference_dir, None, False), (run, 0, False)])
    assert [s["step"] for s in stopped] == [3, 3]  # the other process stopped with it instead of crashing
    assert CheckpointManager(run / "checkpoints").latest_good()[0]["step"] == 3
    (resumed,) = _spawn_ddp([(run, None, True)])
    for r in range(2):
        assert resumed[r]["step"] == reference[r]["step"] == 6
        for k, v in reference[r]["model"].items():
            assert torch.equal(v, resumed[r]["model"][k]), (r, k)
        assert torch.equal(resumed[r]["next_draw"], reference[r]["next_draw"])  # each process's own stream
    assert not torch.equal(reference[0]["next_draw"], reference[1]["next_draw"])  # processes draw different noise


def test_step_files_left_unlisted_by_a_kill_are_removed_by_the_next_save(tmp_path):
    """A kill between writing the manifest and deleting the stale checkpoint leaves an unlisted file behind; the next
    save removes it (other files in the directory are left alone)."""
    from srvp.training.checkpoint import make_checkpoint

    checkpoints = tmp_path / "checkpoints"
    manager = CheckpointManager(checkpoints, keep=2)
    model = torch.nn.Linear(2, 2)
    for step in (1, 2):
        manager.save(make_checkpoint(model, RunConfig(), step))
    (checkpoints / "step_00000000.pt").write_bytes((checkpoints / "step_00000001.pt").read_bytes())  # the orphan
    (checkpoints / "notes.txt").write_text("mine")
    manager.save(make_checkpoint(model, RunConfig(), 3))
    assert sorted(p.name for p in checkpoints.iterdir()) == [MANIFEST, "notes.txt", "step_00000002.pt",
                                                             "step_00000003.pt"]
