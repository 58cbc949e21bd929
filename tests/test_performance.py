"""Performance settings of the trainer: they change speed, not results (precision, channels-last, compile, fused
Adam, one host transfer per step, the allocator setting)."""

import copy
import subprocess
import sys

import pytest
import torch

from srvp.config import DataConfig, RunConfig, TrainConfig
from srvp.data import build_train_dataset, to_float
from srvp.files import load_state_checked
from srvp.models import build_model
from srvp.runtime import tune_glibc_malloc
from srvp.training.checkpoint import make_checkpoint
from srvp.training.trainer import Trainer, frames_channels_last
from tests.conftest import tiny_model_config


def tiny_trainer(tmp_path, **train) -> Trainer:
    cfg = RunConfig(model=tiny_model_config(), data=DataConfig(digits="embedded", seq_len=4, num_digits=1),
                    train=TrainConfig(steps=5, decay_steps=0, batch_size=3, seed=5, out_dir=str(tmp_path), **train))
    return Trainer(cfg, progress=False).setup()


def batch(trainer: Trainer) -> torch.Tensor:
    data = build_train_dataset(trainer.cfg.data, 5)
    return to_float(torch.stack([data[i] for i in range(trainer.cfg.train.batch_size)]))


def test_frames_channels_last_keeps_values_and_lays_out_every_frame_channels_last():
    x = torch.rand(2, 3, 3, 8, 8)
    y = frames_channels_last(x)
    assert torch.equal(x, y)
    frames = y.reshape(6, 3, 8, 8)  # what the frame encoder takes
    assert frames.is_contiguous(memory_format=torch.channels_last) and not frames.is_contiguous()
    assert frames.data_ptr() == y.data_ptr()  # a view, no copy


def test_step_returns_the_loss_of_its_forward_pass_and_the_gradient_norm(tmp_path):
    trainer = tiny_trainer(tmp_path)
    x = batch(trainer)
    reference = copy.deepcopy(trainer.model)
    rng = torch.get_rng_state()
    terms = trainer.train_step(x)
    torch.set_rng_state(rng)
    reference.train()
    expected = reference.loss(x, reference(x))
    for k, v in expected.items():
        assert terms[k] == pytest.approx(v.item(), rel=1e-6, abs=1e-6), k
    expected["total"].backward()
    norm = torch.sqrt(sum(p.grad.double().pow(2).sum() for p in reference.parameters() if p.grad is not None))
    assert terms["grad_norm"] == pytest.approx(norm.item(), rel=1e-5)


@pytest.mark.parametrize("settings,rel", [(dict(channels_last=True), 1e-5),
                                          (dict(precision="bf16"), 3e-2),
                                          (dict(precision="bf16", channels_last=True), 3e-2)])
def test_precision_and_channels_last_change_speed_not_results(tmp_path, settings, rel):
    plain, fast = tiny_trainer(tmp_path / "a"), tiny_trainer(tmp_path / "b", **settings)
    x = batch(plain)
    seen = []
    if settings.get("channels_last"):
        x_fast = frames_channels_last(x)
        conv = fast.model.frame_encoder.blocks[1][0]
        conv.register_forward_hook(lambda m, i, out: seen.append(out.is_contiguous(memory_format=torch.channels_last)))
    else:
        x_fast = x
    init = torch.cat([p.detach().flatten() for p in plain.model.parameters()])
    for _ in range(2):  # two steps: the second uses weights updated by the first
        rng = torch.get_rng_state()
        a = plain.train_step(x)
        torch.set_rng_state(rng)
        b = fast.train_step(x_fast)
        for k in ("total", "nll", "kl_y", "kl_z", "residual"):
            assert b[k] == pytest.approx(a[k], rel=rel, abs=rel), k
    # The two runs move the weights the same way (Adam's first steps are nearly sign(gradient) * lr, so weights
    # whose gradient is about 0 may move differently; the direction of the whole update must agree).
    moves = [torch.cat([p.detach().flatten() for p in t.model.parameters()]) - init for t in (plain, fast)]
    cosine = torch.nn.functional.cosine_similarity(moves[0], moves[1], dim=0).item()
    assert cosine > (0.999 if settings.get("precision", "fp32") == "fp32" else 0.9), cosine
    if settings.get("channels_last"):
        assert seen and all(seen)


def test_compiled_networks_keep_the_checkpoint_keys(tmp_path):
    trainer = tiny_trainer(tmp_path, compile=True)  # compilation itself is lazy: nothing is compiled here
    plain = build_model(trainer.cfg.model)
    assert list(trainer.model.state_dict()) == list(plain.state_dict())
    load_state_checked(plain, make_checkpoint(trainer.model, trainer.cfg, 0)["model"], tmp_path / "x.pt")


def test_adam_is_fused_on_cpu(tmp_path):
    assert tiny_trainer(tmp_path).optimizer.defaults["fused"] is True


PAGE_FAULTS = """
import resource, sys
import numpy as np
from srvp.runtime import tune_glibc_malloc
if sys.argv[1] == "tuned":
    assert tune_glibc_malloc()
for i in range(12):  # allocate, touch and free a 64 MB buffer, as a training step does with its activations
    if i == 2:
        start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    np.ones(8 << 20)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_allocator_setting_removes_the_page_faults_of_repeated_large_buffers():
    def faults(mode: str) -> int:
        out = subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], capture_output=True, text=True, check=True)
        return int(out.stdout.strip())

    default, tuned = faults("default"), faults("tuned")
    assert default >= 10 * 32  # each of 10 buffers of 64 MB is mapped and faulted in again (in pages <= 2 MB)
    assert tuned < 0.05 * default
    assert tune_glibc_malloc() in (True, False)


def test_a_cpu_whose_bf16_is_slow_gets_a_warning_naming_the_faster_option(monkeypatch):
    import warnings

    from srvp import runtime

    speedup = runtime.cpu_bf16_speedup()
    assert 0.05 < speedup < 20  # a measured ratio of two real products (about 2.3 or 0.6 on the machines seen)
    assert runtime.cpu_bf16_speedup() == speedup  # measured once per thread count
    cpu = torch.device("cpu")
    for measured, warned in ((0.6, True), (2.3, False)):
        monkeypatch.setitem(runtime._BF16_SPEEDUP, torch.get_num_threads(), measured)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            runtime.warn_if_bf16_is_slow(cpu, "bf16")
            runtime.warn_if_bf16_is_slow(cpu, "fp32")  # never for fp32
        assert [str(w.message) for w in caught] == (
            ["bf16 matrix products run at 0.60x the speed of float32 ones on this CPU (no native bf16 units): "
             "--precision fp32 is faster here"] if warned else [])
