"""CPU speed layers: subclasses of the stock convolutions that compute the same function faster on this project's
CPUs, swapped into a model built from :mod:`srvp.models.nets` (stock layers only) by an explicit, reversible call.

- :class:`ProjectionConv2d` / :class:`ProjectionConvTranspose2d`: the DCGAN encoder's last layer and decoder's
  first layer, whose kernel covers the whole map, as one matrix product;
- :class:`StridedConv2d` / :class:`StridedConvTranspose2d`: the DCGAN layers with 8x8 and 4x4 maps, whose weight
  gradient (on CPU, in bf16) is one matrix product with the input's patches.

:func:`use_cpu_layers` swaps them in (in place: same parameters, buffers and state-dict keys, so checkpoints, the
authors' import and DDP are unaffected) and returns the call that restores the stock classes; :func:`cpu_layers` is
the same as a context. The trainer applies them on CPU; :func:`srvp.models.inference.inference_layers` applies them
for inference. The figures behind each rule are in ``docs/benchmarks.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

from srvp.models.nets import DCGANDecoder, DCGANEncoder, VGGDecoder, VGGEncoder
from srvp.runtime import compute_dtype


class ProjectionConv2d(nn.Conv2d):
    """:class:`torch.nn.Conv2d` whose kernel covers its whole input (stride 1, no padding): ``(N, C, k, k)`` ->
    ``(N, O, 1, 1)``, computed as one matrix product. Same parameters and results as the stock layer.

    Written by hand because oneDNN, PyTorch's CPU convolution library, runs this layer (the encoders' last one) at
    20-75 GFLOP/s where the same product runs near the matrix-multiply peak (~400 GFLOP/s in bf16 on this
    project's CPU; ``docs/benchmarks.md``). Other input shapes go to the stock layer.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (x.dim() != 4 or tuple(x.shape[-2:]) != self.kernel_size or self.stride != (1, 1)
                or self.padding != (0, 0) or self.dilation != (1, 1) or self.groups != 1):
            return super().forward(x)
        n, o = x.shape[0], self.out_channels
        if x.is_contiguous():  # NCHW: (C, kh, kw) order in both operands, no copy
            y = x.reshape(n, -1) @ self.weight.reshape(o, -1).t()
        else:  # channels-last: (kh, kw, C) order
            y = x.permute(0, 2, 3, 1).reshape(n, -1) @ self.weight.permute(0, 2, 3, 1).reshape(o, -1).t()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(n, o, 1, 1)


class ProjectionConvTranspose2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` applied to a ``1x1`` map (stride 1, no padding): ``(N, C, 1, 1)`` ->
    ``(N, O, k, k)``, computed as one matrix product. Same parameters and results as the stock layer.

    Written by hand for the same reason as :class:`ProjectionConv2d` (the decoders' first layer: 75 GFLOP/s in
    oneDNN, 7% of decoding a batch of SM-MNIST frames). The output is channels-last when the weight is, as the
    stock layer's would be.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if (output_size is not None or x.dim() != 4 or tuple(x.shape[-2:]) != (1, 1) or self.stride != (1, 1)
                or self.padding != (0, 0) or self.output_padding != (0, 0) or self.dilation != (1, 1)
                or self.groups != 1):
            return super().forward(x, output_size)
        n, (kh, kw) = x.shape[0], self.kernel_size
        y = x.reshape(n, -1) @ self.weight.permute(0, 2, 3, 1).reshape(self.in_channels, -1)  # (N, kh*kw*O)
        y = y.reshape(n, kh, kw, self.out_channels)
        if self.bias is not None:
            y = y + self.bias
        y = y.permute(0, 3, 1, 2)  # a channels-last (N, O, kh, kw) view
        return y if self.weight.is_contiguous(memory_format=torch.channels_last) else y.contiguous()


def _patches(x: torch.Tensor) -> torch.Tensor:
    """Patches of a 4x4, stride-2, padding-1 convolution over an NHWC map ``(N, H, W, C)``:
    ``(N * H/2 * W/2, 16 C)`` in (kh, kw, c) order (im2col; one copy)."""
    n, h, w, c = x.shape
    padded = nn.functional.pad(x, (0, 0, 1, 1, 1, 1))
    s0, s1, s2, s3 = padded.stride()
    return padded.as_strided((n, h // 2, w // 2, 4, 4, c), (s0, 2 * s1, 2 * s2, s1, s2, s3)).reshape(-1, 16 * c)


def _nhwc_rows(x: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N * H * W, C)`` (a view for a channels-last tensor)."""
    return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])


class _StridedConvGemmWeightGrad(torch.autograd.Function):
    """4x4, stride-2, padding-1 convolution (``transposed``: its transpose) whose weight gradient is one matrix
    product of the output gradient with the input's patches; the forward pass and the input gradient are oneDNN's."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, transposed: bool) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.transposed = transposed
        conv = nn.functional.conv_transpose2d if transposed else nn.functional.conv2d
        return conv(x, weight, None, 2, 1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        layout = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        grad = grad.contiguous(memory_format=layout)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, [2, 2], [1, 1], [1, 1],
                                                         ctx.transposed, [0, 0], 1, [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            if ctx.transposed:  # weight (C_in, C_out, 4, 4): input pixels against the output gradient's patches
                c_in, c_out = weight.shape[:2]
                rows = _nhwc_rows(x).t() @ _patches(grad.permute(0, 2, 3, 1))
                grad_w = rows.reshape(c_in, 4, 4, c_out).permute(0, 3, 1, 2)
            else:  # weight (C_out, C_in, 4, 4): output gradient against the input's patches
                c_out, c_in = weight.shape[:2]
                rows = _nhwc_rows(grad).t() @ _patches(x.permute(0, 2, 3, 1))
                grad_w = rows.reshape(c_out, 4, 4, c_in).permute(0, 3, 1, 2)
        return grad_x, grad_w, None


def _gemm_weight_grad_applies(layer: nn.Module, x: torch.Tensor) -> bool:
    """On CPU, in bf16 (in fp32 oneDNN's kernel is the faster one: 90 vs 108 ms), when a weight gradient is due."""
    return (layer.gemm_weight_grad and x.device.type == "cpu" and x.dim() == 4 and layer.bias is None
            and torch.is_grad_enabled() and layer.weight.requires_grad and compute_dtype(x) == torch.bfloat16)


class StridedConv2d(nn.Conv2d):
    """The DCGAN encoder's 4x4, stride-2, padding-1 :class:`torch.nn.Conv2d` (no bias).

    With ``gemm_weight_grad`` (on CPU, in bf16, when gradients are computed) the weight gradient is one product of
    the output gradient with the input's 4x4 patches instead of oneDNN's kernel, which runs the layers with a small
    output map far from the machine's peak (256 -> 512 channels, 8x8 -> 4x4, on 240 frames: 66 vs 46 ms). Used for
    the layers with 8x8 and 4x4 output maps: the whole SM-MNIST bf16 training step is 1.10-1.13x faster with the
    4x4 ones and 1.04x more with the 8x8 ones; for 16x16 and 32x32 maps the product is 2x slower
    (``docs/benchmarks.md``). The forward pass and the input gradient stay oneDNN's; parameters, keys and results
    are the stock layer's.
    """

    gemm_weight_grad = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _gemm_weight_grad_applies(self, x):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return _StridedConvGemmWeightGrad.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), False)


class StridedConvTranspose2d(nn.ConvTranspose2d):
    """The DCGAN decoder's 4x4, stride-2, padding-1 :class:`torch.nn.ConvTranspose2d` (no bias); with
    ``gemm_weight_grad``, the weight gradient as one matrix product, as :class:`StridedConv2d` (used for the layers
    with 4x4 and 8x8 input maps; 63 vs 45 ms for 512 -> 256 channels, 4x4 -> 8x8, on 240 frames in bf16)."""

    gemm_weight_grad = True

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or not _gemm_weight_grad_applies(self, x):
            return super().forward(x, output_size)
        with torch.autocast("cpu", enabled=False):
            return _StridedConvGemmWeightGrad.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), True)


def _plan(model: nn.Module) -> list[tuple[nn.Module, type]]:
    """``(layer, speed class)`` for every layer of ``model`` that has a speed version: in each DCGAN encoder the
    last two strided convolutions (8x8 and 4x4 output maps) and the head; in each DCGAN decoder the first layer and
    the next two transposed convolutions (4x4 and 8x8 input maps); the VGG encoder's head and decoder's first
    layer."""
    plan: list[tuple[nn.Module, type]] = []
    for m in model.modules():
        if isinstance(m, DCGANEncoder):
            plan += [(m.blocks[-2][0], StridedConv2d), (m.blocks[-1][0], StridedConv2d),
                     (m.head[0], ProjectionConv2d)]
        elif isinstance(m, DCGANDecoder):
            plan += [(m.first[0], ProjectionConvTranspose2d), (m.blocks[0][0], StridedConvTranspose2d),
                     (m.blocks[1][0], StridedConvTranspose2d)]
        elif isinstance(m, VGGEncoder):
            plan.append((m.head[1][0], ProjectionConv2d))
        elif isinstance(m, VGGDecoder):
            plan.append((m.first[0][0], ProjectionConvTranspose2d))
    return plan


def use_cpu_layers(model: nn.Module) -> Callable[[], None]:
    """Swap the CPU speed layers into ``model`` in place (a layer already swapped is left as it is); returns the
    call that puts the original classes back."""
    swapped = []
    for layer, speed_cls in _plan(model):
        if type(layer) is speed_cls.__mro__[1]:  # the stock class it subclasses
            swapped.append((layer, type(layer)))
            layer.__class__ = speed_cls

    def restore() -> None:
        for layer, cls in swapped:
            layer.__class__ = cls

    return restore


@contextmanager
def cpu_layers(model: nn.Module) -> Iterator[nn.Module]:
    """:func:`use_cpu_layers` for the duration of the block; the stock classes are restored on exit, even on
    error."""
    restore = use_cpu_layers(model)
    try:
        yield model
    finally:
        restore()


def use_stock_layers(model: nn.Module) -> nn.Module:
    """Turn every CPU speed layer of ``model`` back into the stock layer it subclasses, in place (the plain model
    of a benchmark, with the same parameters); returns ``model``."""
    for m in model.modules():
        if isinstance(m, (ProjectionConv2d, StridedConv2d)):
            m.__class__ = nn.Conv2d
        elif isinstance(m, (ProjectionConvTranspose2d, StridedConvTranspose2d)):
            m.__class__ = nn.ConvTranspose2d
    return model
