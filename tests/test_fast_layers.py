"""Layers computed differently for speed give the stock layers' results: the 1x1 <-> kxk projections as matrix
products, and batch norm folded into convolutions for inference."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from srvp.models import build_model
from srvp.models.cpu_layers import (
    ProjectionConv2d,
    ProjectionConvTranspose2d,
    StridedConv2d,
    StridedConvTranspose2d,
    _StridedConvGemmWeightGrad,
    cpu_layers,
    use_cpu_layers,
)
from srvp.models.inference import ThinConvTranspose2d, inference_layers
from tests.conftest import tiny_model_config

CL = torch.channels_last


def check_against_functional(layer: nn.Module, x: torch.Tensor, functional) -> torch.Tensor:
    """``layer(x)`` equals ``functional(x, weight, bias)`` in float64, and so do the gradients of the input and the
    weight; returns ``layer(x)``."""
    x = x.detach().requires_grad_()
    y = layer(x)
    ref_x = x.detach().clone().requires_grad_()
    ref_w = layer.weight.detach().clone().requires_grad_()
    ref = functional(ref_x, ref_w, layer.bias)
    assert y.shape == ref.shape
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(ref)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(layer.weight.grad, ref_w.grad, rtol=1e-12, atol=1e-12)
    return y


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_projection_conv_equals_the_convolution_in_values_and_gradients(channels_last, bias):
    torch.manual_seed(0)
    layer = ProjectionConv2d(12, 7, 4, 1, 0, bias=bias).double()
    x = torch.randn(5, 12, 4, 4, dtype=torch.float64)
    if channels_last:
        layer, x = layer.to(memory_format=CL), x.contiguous(memory_format=CL)
    y = check_against_functional(layer, x, F.conv2d)
    assert y.shape == (5, 7, 1, 1)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_projection_conv_transpose_equals_the_transposed_convolution(channels_last, bias):
    torch.manual_seed(1)
    layer = ProjectionConvTranspose2d(9, 6, 4, 1, 0, bias=bias).double()
    if channels_last:
        layer = layer.to(memory_format=CL)
    y = check_against_functional(layer, torch.randn(3, 9, 1, 1, dtype=torch.float64), F.conv_transpose2d)
    assert y.shape == (3, 6, 4, 4)
    assert y.is_contiguous(memory_format=CL if channels_last else torch.contiguous_format)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("transposed", [False, True])
def test_matrix_product_weight_gradient_equals_the_convolution_gradient(channels_last, transposed):
    """The autograd function itself, in float64 (the layers take it in bf16 only)."""
    torch.manual_seed(7)
    functional = F.conv_transpose2d if transposed else F.conv2d
    layer = (nn.ConvTranspose2d(6, 5, 4, 2, 1, bias=False) if transposed
             else nn.Conv2d(6, 5, 4, 2, 1, bias=False)).double()
    size = 4 if transposed else 8
    x = torch.randn(3, 6, size, size, dtype=torch.float64)
    if channels_last:
        layer, x = layer.to(memory_format=CL), x.contiguous(memory_format=CL)
    layer.forward = lambda x: _StridedConvGemmWeightGrad.apply(x, layer.weight, transposed)
    y = check_against_functional(layer, x, lambda x, w, b: functional(x, w, b, 2, 1))
    assert y.shape == ((3, 5, 8, 8) if transposed else (3, 5, 4, 4))


def test_strided_layers_take_the_stock_path_outside_bf16_training():
    torch.manual_seed(9)
    layer = StridedConv2d(6, 5, 4, 2, 1, bias=False)
    x = torch.randn(2, 6, 8, 8)
    calls = []
    original = _StridedConvGemmWeightGrad.apply
    try:
        _StridedConvGemmWeightGrad.apply = lambda *a: calls.append(1) or original(*a)
        layer(x)  # fp32
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x)  # no gradient due
        assert calls == []
        with torch.autocast("cpu", dtype=torch.bfloat16):
            layer(x)
        assert calls == [1]
    finally:
        _StridedConvGemmWeightGrad.apply = original


@pytest.mark.parametrize("transposed", [False, True])
def test_strided_layers_under_bf16_autocast_match_the_stock_bf16_gradient(transposed):
    torch.manual_seed(8)
    cls, stock_cls = ((StridedConvTranspose2d, nn.ConvTranspose2d) if transposed else (StridedConv2d, nn.Conv2d))
    ours = cls(64, 32, 4, 2, 1, bias=False).to(memory_format=CL)
    stock = stock_cls(64, 32, 4, 2, 1, bias=False).to(memory_format=CL)
    stock.weight.data.copy_(ours.weight.data)
    x = torch.randn(8, 64, 4, 4).contiguous(memory_format=CL)
    exact = stock_cls(64, 32, 4, 2, 1, bias=False).double()
    exact.weight.data.copy_(ours.weight.data)
    g = torch.randn(exact(x.double()).shape)
    exact(x.double()).backward(g.double())
    for layer in (ours, stock):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x)
        assert out.dtype == torch.bfloat16
        out.float().backward(g)
    err = lambda m: (m.weight.grad.double() - exact.weight.grad).abs().max()  # noqa: E731
    assert ours.weight.grad.dtype == torch.float32
    assert err(ours) <= 2 * err(stock) + 1e-3 * exact.weight.grad.abs().max()


def test_dcgan_computes_the_weight_gradient_by_matrix_product_for_the_small_map_layers():
    model = model_with_trained_batch_norm("dcgan", False)
    assert not any(getattr(m, "gemm_weight_grad", False) for m in model.modules())  # the architecture: stock layers
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with cpu_layers(model):
        flagged = [(type(m).__name__, m.in_channels, m.out_channels) for m in model.modules()
                   if getattr(m, "gemm_weight_grad", False)]
        projections = [type(m).__name__ for m in model.modules() if "Projection" in type(m).__name__]
        assert model.state_dict().keys() == before.keys()  # same parameters and keys: checkpoints unaffected
    nf = model.config.filters
    assert flagged == [("StridedConv2d", nf * 2, nf * 4), ("StridedConv2d", nf * 4, nf * 8),
                       ("StridedConvTranspose2d", nf * 8, nf * 4), ("StridedConvTranspose2d", nf * 4, nf * 2)]
    assert projections == ["ProjectionConv2d", "ProjectionConvTranspose2d"]
    assert {type(m) for m in model.modules()}.isdisjoint({StridedConv2d, ProjectionConv2d})  # restored on exit


def test_cpu_layers_change_the_speed_not_the_training_step():
    """A training step of the model with the CPU speed layers equals the stock model's (fp32: the speed layers take
    the same path or an exact matrix product), and the swap is undone by the returned call."""
    torch.manual_seed(3)
    stock = build_model(tiny_model_config()).train()
    fast = build_model(tiny_model_config()).train()
    fast.load_state_dict(stock.state_dict())
    restore = use_cpu_layers(fast)
    x = torch.rand(2, 4, 1, 64, 64)
    losses = []
    for model in (stock, fast):
        torch.manual_seed(4)
        loss = model.loss(x, model(x))["total"]
        loss.backward()
        losses.append(loss)
    torch.testing.assert_close(losses[0], losses[1], rtol=1e-5, atol=1e-3)
    for (name, a), b in zip(stock.named_parameters(), fast.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-4, atol=1e-5, msg=name)
    restore()
    assert {type(m) for m in fast.modules()} == {type(m) for m in stock.modules()}


def test_projection_layers_fall_back_to_the_stock_layer_for_other_shapes():
    torch.manual_seed(2)
    conv = ProjectionConv2d(3, 5, 4, 1, 0)
    x = torch.randn(2, 3, 9, 9)  # the kernel does not cover the input
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, conv.bias))
    convt = ProjectionConvTranspose2d(3, 5, 4, 1, 0)
    x = torch.randn(2, 3, 3, 3)
    torch.testing.assert_close(convt(x), F.conv_transpose2d(x, convt.weight, convt.bias))


def model_with_trained_batch_norm(architecture: str, skips: bool) -> nn.Module:
    torch.manual_seed(3)
    model = build_model(tiny_model_config(architecture=architecture, skip_connections=skips))
    for m in model.modules():  # statistics and affine parameters far from their initial values
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.2, 3)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-1, 1)
    return model.eval()


@pytest.mark.parametrize("architecture,skips,channels_last", [("dcgan", False, False), ("dcgan", False, True),
                                                               ("vgg", True, True)])
def test_inference_layers_gives_the_same_frames_and_restores_the_model(architecture, skips, channels_last):
    model = model_with_trained_batch_norm(architecture, skips)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    modules = list(model.modules())
    x = torch.rand(2, 5, 1, 64, 64)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in modules)
    with torch.inference_mode():
        torch.manual_seed(4)
        ref = model.sample_futures(model.condition(x), 3, 2)
        with inference_layers(model, channels_last=channels_last):
            assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) < n_bn // 4
            convs = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
            layout = CL if channels_last else torch.contiguous_format
            assert all(m.weight.is_contiguous(memory_format=layout) for m in convs)
            torch.manual_seed(4)
            folded = model.sample_futures(model.condition(x), 3, 2)
    torch.testing.assert_close(folded, ref, rtol=1e-4, atol=1e-5)
    assert list(model.modules()) == modules  # the very same layers are back, in their layout
    assert all(p.is_contiguous() for p in model.parameters())
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_inference_layers_restores_on_error_and_refuses_training_mode():
    model = model_with_trained_batch_norm("dcgan", False)
    modules = list(model.modules())
    with pytest.raises(RuntimeError, match="inside"), inference_layers(model):
        raise RuntimeError("inside")
    assert list(model.modules()) == modules
    with pytest.raises(ValueError, match="eval mode"), inference_layers(model.train()):
        pass


@pytest.mark.parametrize("out_channels,bias", [(1, False), (3, True)])
def test_thin_transposed_convolution_equals_the_stock_layer(out_channels, bias):
    torch.manual_seed(5)
    conv = nn.ConvTranspose2d(8, out_channels, 4, 2, 1, bias=bias).double()
    assert ThinConvTranspose2d.applies_to(conv)
    thin = ThinConvTranspose2d(conv)
    for x in (torch.randn(3, 8, 5, 7, dtype=torch.float64),
              torch.randn(3, 8, 6, 6, dtype=torch.float64).contiguous(memory_format=CL)):
        with torch.no_grad():
            torch.testing.assert_close(thin(x).double(), conv(x), rtol=1e-12, atol=1e-12)
    # under bf16 autocast: as close to the fp32 result as the stock bf16 layer is
    conv, thin = conv.float(), ThinConvTranspose2d(conv.float())
    x = torch.randn(4, 8, 16, 16).contiguous(memory_format=CL)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        stock_bf16, thin_bf16 = conv(x).float(), thin(x).float()
    exact = conv(x).detach()
    scale = exact.abs().max()
    assert (thin_bf16 - exact).abs().max() <= 3 * (stock_bf16 - exact).abs().max() + 1e-3 * scale
    assert not ThinConvTranspose2d.applies_to(nn.ConvTranspose2d(8, 16, 4, 2, 1))  # wide layers stay oneDNN's
    assert not ThinConvTranspose2d.applies_to(nn.ConvTranspose2d(8, 1, 3, 1, 1))


def test_inference_layers_use_the_thin_layer_and_in_place_activations_then_restore_them():
    model = model_with_trained_batch_norm("dcgan", False)
    activations = [m for m in model.modules() if isinstance(m, (nn.ReLU, nn.LeakyReLU))]
    last = model.frame_decoder.blocks[-1]
    with inference_layers(model):
        assert isinstance(model.frame_decoder.blocks[-1], ThinConvTranspose2d)
        conv_activations = [m for m in model.frame_decoder.modules() if isinstance(m, nn.LeakyReLU)]
        assert conv_activations and all(m.inplace for m in conv_activations)
    assert model.frame_decoder.blocks[-1] is last
    assert not any(m.inplace for m in activations)


def test_validation_score_is_the_same_with_the_inference_layers():
    from srvp.training.trainer import validation_scores

    model = model_with_trained_batch_norm("dcgan", False).train()
    modules = list(model.modules())
    seqs = (torch.rand(3, 7, 1, 64, 64) * 255).to(torch.uint8).numpy()
    kw = dict(cond_frames=4, n_samples=3, device=torch.device("cpu"), batch_size=2, seed=1)
    fast = validation_scores(model, seqs, inference_layout=True, **kw)
    plain = validation_scores(model, seqs, inference_layout=False, **kw)
    assert fast.keys() == plain.keys() and len(fast) == 3
    for key in fast:
        assert fast[key] == pytest.approx(plain[key], abs=1e-4)
    assert model.training and list(model.modules()) == modules


def test_the_trainer_and_the_predictor_use_the_cpu_layers(tmp_path):
    """The speed figures of docs/benchmarks.md are those of the trainer's and Predictor's models: both run with the
    CPU speed layers, which the architecture itself (stock layers) does not contain."""
    from srvp.api import Predictor
    from srvp.training.trainer import Trainer
    from tests.test_training import tiny_run

    trainer = Trainer(tiny_run(tmp_path / "run", steps=1), progress=False).setup()
    kinds = {type(m) for m in trainer.model.modules()}
    assert {StridedConv2d, StridedConvTranspose2d, ProjectionConv2d, ProjectionConvTranspose2d} <= kinds
    predictor = Predictor(build_model(tiny_model_config()), device="cpu")
    assert {ProjectionConv2d, ProjectionConvTranspose2d} <= {type(m) for m in predictor.model.modules()}
