"""Building blocks: MLPs and the frame encoders/decoders (DCGAN, VGG16 with skips, MLP).

The convolutional networks follow the SVG / official SRVP designs layer for layer (same layers, same order,
batch norm after each convolution but the first of DCGAN, LeakyReLU(0.2), tanh on the encoding, sigmoid on the
output) so that the authors' checkpoints map onto them by renaming keys only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from srvp.runtime import compute_dtype


def activation(name: str) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}")


class MLP(nn.Module):
    """``n_layers`` linear layers with an activation between consecutive layers (none after the last).

    Input ``(..., in_dim)`` -> output ``(..., out_dim)``.
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int, n_layers: int, act: str = "relu"):
        super().__init__()
        if n_layers < 1:
            raise ValueError("an MLP needs at least one layer")
        layers: list[nn.Module] = []
        for i in range(n_layers):
            if i > 0:
                layers.append(activation(act))
            layers.append(nn.Linear(in_dim if i == 0 else hidden, out_dim if i == n_layers - 1 else hidden))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def conv_block(conv: nn.Module, out_channels: int, act: str = "leaky_relu", bn: bool = True) -> nn.Sequential:
    """Convolution, then batch norm (optional), then activation."""
    modules = [conv]
    if bn:
        modules.append(nn.BatchNorm2d(out_channels))
    modules.append(activation(act))
    return nn.Sequential(*modules)


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

    def __init__(self, in_channels: int, out_channels: int, gemm_weight_grad: bool = False):
        super().__init__(in_channels, out_channels, 4, 2, 1, bias=False)
        self.gemm_weight_grad = gemm_weight_grad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not _gemm_weight_grad_applies(self, x):
            return super().forward(x)
        with torch.autocast("cpu", enabled=False):
            return _StridedConvGemmWeightGrad.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), False)


class StridedConvTranspose2d(nn.ConvTranspose2d):
    """The DCGAN decoder's 4x4, stride-2, padding-1 :class:`torch.nn.ConvTranspose2d` (no bias); with
    ``gemm_weight_grad``, the weight gradient as one matrix product, as :class:`StridedConv2d` (used for the layers
    with 4x4 and 8x8 input maps; 63 vs 45 ms for 512 -> 256 channels, 4x4 -> 8x8, on 240 frames in bf16)."""

    def __init__(self, in_channels: int, out_channels: int, gemm_weight_grad: bool = False):
        super().__init__(in_channels, out_channels, 4, 2, 1, bias=False)
        self.gemm_weight_grad = gemm_weight_grad

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        if output_size is not None or not _gemm_weight_grad_applies(self, x):
            return super().forward(x, output_size)
        with torch.autocast("cpu", enabled=False):
            return _StridedConvGemmWeightGrad.apply(x.to(torch.bfloat16), self.weight.to(torch.bfloat16), True)


class FrameEncoder(nn.Module):
    """Common forward of the frame encoders: ``(N, C, H, W)`` -> encoding ``(N, frame_dim)`` and skip features
    (deepest first), one per block."""

    blocks: nn.ModuleList
    head: nn.Module
    out_dim: int

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        skips = []
        h = x
        for block in self.blocks:
            h = block(h)
            skips.append(h)
        return self.head(h).reshape(x.shape[0], self.out_dim), skips[::-1]


class FrameDecoder(nn.Module):
    """Common forward of the frame decoders: ``(N, in_dim)`` and optional skips -> frames ``(N, C, H, W)`` in
    [0, 1]."""

    first: nn.Module
    blocks: nn.ModuleList
    skip: bool

    def forward(self, h: torch.Tensor, skips: list[torch.Tensor] | None = None) -> torch.Tensor:
        if self.skip != (skips is not None):
            raise ValueError("this decoder " + ("needs" if self.skip else "takes no") + " skip connections")
        h = self.first(h.reshape(*h.shape, 1, 1))
        for i, block in enumerate(self.blocks):
            if skips is not None:
                h = torch.cat([h, skips[i]], 1)
            h = block(h)
        return torch.sigmoid(h)


class DCGANEncoder(FrameEncoder):
    """DCGAN discriminator for 64x64 frames (Radford et al.), as in SVG."""

    def __init__(self, channels: int, out_dim: int, nf: int = 64):
        super().__init__()
        self.out_dim = out_dim
        self.blocks = nn.ModuleList([
            conv_block(nn.Conv2d(channels, nf, 4, 2, 1, bias=False), nf, bn=False),
            conv_block(nn.Conv2d(nf, nf * 2, 4, 2, 1, bias=False), nf * 2),
            # 16x16 -> 8x8 and 8x8 -> 4x4: the weight gradient as a matrix product (StridedConv2d)
            conv_block(StridedConv2d(nf * 2, nf * 4, gemm_weight_grad=True), nf * 4),
            conv_block(StridedConv2d(nf * 4, nf * 8, gemm_weight_grad=True), nf * 8),
        ])
        self.head = conv_block(ProjectionConv2d(nf * 8, out_dim, 4, 1, 0, bias=False), out_dim, act="tanh")


class DCGANDecoder(FrameDecoder):
    """DCGAN generator for 64x64 frames; with ``skip`` each block also takes the matching encoder features."""

    def __init__(self, channels: int, in_dim: int, nf: int = 64, skip: bool = False):
        super().__init__()
        self.skip = skip
        c = 2 if skip else 1
        self.first = conv_block(ProjectionConvTranspose2d(in_dim, nf * 8, 4, 1, 0, bias=False), nf * 8)
        self.blocks = nn.ModuleList([
            # 4x4 -> 8x8 and 8x8 -> 16x16: the weight gradient as a matrix product (StridedConvTranspose2d)
            conv_block(StridedConvTranspose2d(nf * 8 * c, nf * 4, gemm_weight_grad=True), nf * 4),
            conv_block(StridedConvTranspose2d(nf * 4 * c, nf * 2, gemm_weight_grad=True), nf * 2),
            conv_block(nn.ConvTranspose2d(nf * 2 * c, nf, 4, 2, 1, bias=False), nf),
            nn.ConvTranspose2d(nf * c, channels, 4, 2, 1, bias=False),
        ])


def _vgg_convs(channels: list[int]) -> list[nn.Module]:
    return [conv_block(nn.Conv2d(a, b, 3, 1, 1, bias=False), b) for a, b in zip(channels[:-1], channels[1:])]


class VGGEncoder(FrameEncoder):
    """VGG16-style encoder for 64x64 frames, as in SVG."""

    def __init__(self, channels: int, out_dim: int, nf: int = 64):
        super().__init__()
        self.out_dim = out_dim
        pool = lambda: nn.MaxPool2d(kernel_size=2, stride=2, padding=0)  # noqa: E731
        self.blocks = nn.ModuleList([
            nn.Sequential(*_vgg_convs([channels, nf, nf])),
            nn.Sequential(pool(), *_vgg_convs([nf, nf * 2, nf * 2])),
            nn.Sequential(pool(), *_vgg_convs([nf * 2, nf * 4, nf * 4, nf * 4])),
            nn.Sequential(pool(), *_vgg_convs([nf * 4, nf * 8, nf * 8, nf * 8])),
        ])
        self.head = nn.Sequential(pool(), conv_block(ProjectionConv2d(nf * 8, out_dim, 4, 1, 0, bias=False), out_dim,
                                                     act="tanh"))


class VGGDecoder(FrameDecoder):
    """Mirror of :class:`VGGEncoder`; with ``skip`` each block also takes the matching encoder features."""

    def __init__(self, channels: int, in_dim: int, nf: int = 64, skip: bool = False):
        super().__init__()
        self.skip = skip
        c = 2 if skip else 1
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        self.first = nn.Sequential(conv_block(ProjectionConvTranspose2d(in_dim, nf * 8, 4, 1, 0, bias=False), nf * 8),
                                   up())
        self.blocks = nn.ModuleList([
            nn.Sequential(*_vgg_convs([nf * 8 * c, nf * 8, nf * 8, nf * 4]), up()),
            nn.Sequential(*_vgg_convs([nf * 4 * c, nf * 4, nf * 4, nf * 2]), up()),
            nn.Sequential(*_vgg_convs([nf * 2 * c, nf * 2, nf]), up()),
            nn.Sequential(*_vgg_convs([nf * c, nf]), nn.ConvTranspose2d(nf, channels, 3, 1, 1, bias=False)),
        ])


class MLPEncoder(FrameEncoder):
    """Fully connected encoder for small frames or vectors (Pendulum): flattened frame -> tanh encoding."""

    def __init__(self, channels: int, frame_size: int, out_dim: int, hidden: int = 256):
        super().__init__()
        self.out_dim = out_dim
        n_in = channels * frame_size * frame_size
        self.blocks = nn.ModuleList([nn.Sequential(nn.Flatten(), nn.Linear(n_in, hidden), nn.ReLU(),
                                                   nn.Linear(hidden, hidden), nn.ReLU())])
        self.head = nn.Sequential(nn.Linear(hidden, out_dim), nn.Tanh())


class MLPDecoder(FrameDecoder):
    """Fully connected decoder: vector -> ``(N, C, S, S)`` frame in [0, 1]."""

    def __init__(self, channels: int, frame_size: int, in_dim: int, hidden: int = 256):
        super().__init__()
        self.skip = False
        self.first = nn.Flatten()  # undoes the (N, D, 1, 1) view of FrameDecoder.forward
        self.blocks = nn.ModuleList([nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
            nn.Linear(hidden, channels * frame_size * frame_size), nn.Unflatten(1, (channels, frame_size, frame_size)),
        )])


#: architecture name (``ModelConfig.architecture``) -> (encoder, decoder) factories
#: ``encoder(channels, frame_size, out_dim, nf)`` and ``decoder(channels, frame_size, in_dim, nf, skip)``
FRAME_NETWORKS: dict[str, tuple[Callable[..., FrameEncoder], Callable[..., FrameDecoder]]] = {
    "dcgan": (lambda c, size, d, nf: DCGANEncoder(c, d, nf), lambda c, size, d, nf, skip: DCGANDecoder(c, d, nf, skip)),
    "vgg": (lambda c, size, d, nf: VGGEncoder(c, d, nf), lambda c, size, d, nf, skip: VGGDecoder(c, d, nf, skip)),
    "mlp": (lambda c, size, d, nf: MLPEncoder(c, size, d, nf), lambda c, size, d, nf, skip: MLPDecoder(c, size, d, nf)),
}


def _frame_networks(architecture: str) -> tuple[Callable[..., FrameEncoder], Callable[..., FrameDecoder]]:
    if architecture not in FRAME_NETWORKS:
        raise ValueError(f"unknown architecture {architecture!r}; registered: {', '.join(FRAME_NETWORKS)}")
    return FRAME_NETWORKS[architecture]


def build_frame_encoder(architecture: str, channels: int, frame_size: int, out_dim: int, nf: int) -> FrameEncoder:
    """The frame encoder of ``architecture``: frames ``(N, channels, frame_size, frame_size)`` -> ``(N, out_dim)``."""
    return _frame_networks(architecture)[0](channels, frame_size, out_dim, nf)


def build_frame_decoder(architecture: str, channels: int, frame_size: int, in_dim: int, nf: int,
                        skip: bool) -> FrameDecoder:
    """The frame decoder of ``architecture``: ``(N, in_dim)`` (+ skips) -> frames in [0, 1]."""
    return _frame_networks(architecture)[1](channels, frame_size, in_dim, nf, skip)


def init_conv_weights(module: nn.Module, std: float = 0.02) -> None:
    """normal(0, std) for conv and linear weights, normal(1, std) for batch-norm scales, zero biases (DCGAN)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)


def init_orthogonal(module: nn.Module, gain: float) -> None:
    """Orthogonal weights with ``gain`` and zero biases for every linear layer (the transition f)."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.orthogonal_(m.weight, gain=gain)
            nn.init.zeros_(m.bias)
