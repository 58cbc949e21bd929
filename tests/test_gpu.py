"""The CUDA correctness checks of benchmarks/gpu_check.py as pytest tests (marked ``cuda``, skipped without a GPU):
``pytest -m cuda`` on a machine with one runs them; gpu_check.py runs the same functions in one process within its
time budget, and its tiny CPU mode (tests/test_benchmarks.py) runs them on the CPU in every test run, so that they
cannot rot between the rare sessions that have a GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_check)

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (benchmarks/gpu_check.py)")]


def _passed(result: dict) -> None:
    assert result["passed"], {k: v for k, v in result.items() if k != "traceback"}


@pytest.mark.parametrize("model", ["paper", "svg"])
def test_forward_and_backward_on_cuda_equal_the_cpu(model):
    _passed(gpu_check.check_forward_backward("cuda", model))


def test_fp32_bf16_and_fp16_steps_are_finite_and_close():
    _passed(gpu_check.check_precisions("cuda"))


def test_a_run_stopped_and_resumed_on_cuda_is_bit_identical():
    _passed(gpu_check.check_resume("cuda"))


def test_evaluate_model_on_cuda_equals_the_cpu():
    _passed(gpu_check.check_evaluate("cuda"))


def test_a_one_process_nccl_ddp_step_equals_the_plain_step():
    _passed(gpu_check.check_ddp("cuda"))


def test_from_pretrained_on_cuda_predicts_from_sharded_weights():
    _passed(gpu_check.check_from_pretrained("cuda"))
