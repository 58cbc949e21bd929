"""Building blocks: MLPs and the frame encoders/decoders (DCGAN, VGG16 with skips, MLP).

The convolutional networks follow the SVG / official SRVP designs layer for layer (same layers, same order,
batch norm after each convolution but the first of DCGAN, LeakyReLU(0.2), tanh on the encoding, sigmoid on the
output) so that the authors' checkpoints map onto them by renaming keys only. Only stock PyTorch layers: the CPU
speed layers that compute some of them faster are swapped in by :mod:`srvp.models.cpu_layers`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


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
            conv_block(nn.Conv2d(nf * 2, nf * 4, 4, 2, 1, bias=False), nf * 4),
            conv_block(nn.Conv2d(nf * 4, nf * 8, 4, 2, 1, bias=False), nf * 8),
        ])
        self.head = conv_block(nn.Conv2d(nf * 8, out_dim, 4, 1, 0, bias=False), out_dim, act="tanh")


class DCGANDecoder(FrameDecoder):
    """DCGAN generator for 64x64 frames; with ``skip`` each block also takes the matching encoder features."""

    def __init__(self, channels: int, in_dim: int, nf: int = 64, skip: bool = False):
        super().__init__()
        self.skip = skip
        c = 2 if skip else 1
        self.first = conv_block(nn.ConvTranspose2d(in_dim, nf * 8, 4, 1, 0, bias=False), nf * 8)
        self.blocks = nn.ModuleList([
            conv_block(nn.ConvTranspose2d(nf * 8 * c, nf * 4, 4, 2, 1, bias=False), nf * 4),
            conv_block(nn.ConvTranspose2d(nf * 4 * c, nf * 2, 4, 2, 1, bias=False), nf * 2),
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
        self.head = nn.Sequential(pool(), conv_block(nn.Conv2d(nf * 8, out_dim, 4, 1, 0, bias=False), out_dim,
                                                     act="tanh"))


class VGGDecoder(FrameDecoder):
    """Mirror of :class:`VGGEncoder`; with ``skip`` each block also takes the matching encoder features."""

    def __init__(self, channels: int, in_dim: int, nf: int = 64, skip: bool = False):
        super().__init__()
        self.skip = skip
        c = 2 if skip else 1
        up = lambda: nn.Upsample(scale_factor=2, mode="nearest")  # noqa: E731
        self.first = nn.Sequential(conv_block(nn.ConvTranspose2d(in_dim, nf * 8, 4, 1, 0, bias=False), nf * 8),
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
