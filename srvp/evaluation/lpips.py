"""LPIPS v0.1 with the AlexNet backbone (Zhang et al., 2018), defined here so that torchvision is not needed.

    d(x, x') = sum_l mean_{h,w} w_l . (u_l(x) - u_l(x'))^2,   u_l = relu_l features unit-normalised over channels

with the ReLU outputs of AlexNet's five convolutions, ``w_l`` the 1x1 linear heads of LPIPS v0.1, and inputs
scaled from [0, 1] to [-1, 1] then normalised by the LPIPS "scaling layer". Grey frames are repeated to 3 channels.
Weights come from files the user provides (:mod:`srvp.evaluation.weights`); their key names are those of the
torchvision AlexNet state_dict (``features.0.weight`` ...) and of the lpips package (``lin0.model.1.weight`` ...).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from srvp.evaluation.weights import ALEXNET, LPIPS_HEADS, load_matching, read_state_dict

#: LPIPS scaling layer: (x - shift) / scale on inputs in [-1, 1]
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
#: channels of the five AlexNet ReLU outputs that LPIPS compares
ALEXNET_CHANNELS = (64, 192, 384, 256, 256)
#: indices in ``features`` of the last module of each LPIPS slice (the ReLUs), torchvision layout
_RELU_INDICES = (1, 4, 7, 9, 11)
_EPS = 1e-10  # added to the channel norm, as in the lpips package
#: smallest frames AlexNet's pooling stages accept
MIN_FRAME_SIZE = 32


class AlexNetFeatures(nn.Module):
    """The convolutional part of torchvision's AlexNet (same module indices, so ``features.{i}.weight`` keys load
    unchanged); :meth:`forward` returns the five ReLU outputs LPIPS uses."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),  # 0, 1
            nn.MaxPool2d(kernel_size=3, stride=2),  # 2
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),  # 3, 4
            nn.MaxPool2d(kernel_size=3, stride=2),  # 5
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),  # 6, 7
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),  # 8, 9
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),  # 10, 11
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _RELU_INDICES:
                outputs.append(x)
        return outputs


class LinearHead(nn.Module):
    """A 1x1 convolution to one channel without bias; ``model.1`` so that the lpips key names load unchanged
    (index 0 is the dropout of the lpips package, inactive at evaluation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(p=0.0), nn.Conv2d(channels, 1, kernel_size=1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """LPIPS v0.1 / AlexNet. :meth:`features` of frames ``(M, C, H, W)`` in [0, 1] can be cached (e.g. for the
    ground truth) and compared with :meth:`distance_from_features`; ``forward(a, b)`` is the distance ``(M,)``."""

    def __init__(self):
        super().__init__()
        self.net = AlexNetFeatures()
        for i, c in enumerate(ALEXNET_CHANNELS):
            self.add_module(f"lin{i}", LinearHead(c))
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def heads(self) -> list[LinearHead]:
        return [getattr(self, f"lin{i}") for i in range(len(ALEXNET_CHANNELS))]

    def features(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """Unit-normalised AlexNet features of frames ``(M, C, H, W)`` in [0, 1] (C = 1 or 3): five tensors
        ``(M, c_l, h_l, w_l)``."""
        if min(frames.shape[-2:]) < MIN_FRAME_SIZE:
            raise ValueError(f"LPIPS (AlexNet) needs frames of at least {MIN_FRAME_SIZE}x{MIN_FRAME_SIZE} pixels, "
                             f"got {tuple(frames.shape[-2:])}")
        if frames.shape[1] == 1:
            frames = frames.expand(-1, 3, -1, -1)
        x = (frames.float() * 2 - 1 - self.shift) / self.scale
        return [f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + _EPS) for f in self.net(x)]

    def distance_from_features(self, feats_a: list[torch.Tensor], feats_b: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS ``(M,)`` from two lists of :meth:`features` (``feats_b`` may have batch 1 and broadcast)."""
        total = 0.0
        for head, fa, fb in zip(self.heads(), feats_a, feats_b):
            total = total + head((fa - fb).pow(2)).mean(dim=(1, 2, 3))
        return total

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.distance_from_features(self.features(a), self.features(b))


def load_lpips(alexnet_path: str | Path | None = None, heads_path: str | Path | None = None,
               device: str | torch.device = "cpu") -> LPIPS:
    """LPIPS with pretrained weights from ``alexnet_path`` (torchvision ``alexnet-owt-7be5be79.pth``; its
    ``classifier.*`` tensors are ignored) and ``heads_path`` (lpips ``v0.1/alex.pth``); default locations in
    :mod:`srvp.evaluation.weights`. Raises :class:`~srvp.evaluation.weights.MissingWeightsError` if a file is
    missing."""
    alex_file = ALEXNET.resolve(alexnet_path)
    heads_file = LPIPS_HEADS.resolve(heads_path)
    model = LPIPS()
    alex = read_state_dict(alex_file)
    load_matching(model.net, {k: v for k, v in alex.items() if k.startswith("features.")}, alex_file)
    heads = read_state_dict(heads_file)
    heads_module = nn.Module()
    for i in range(len(ALEXNET_CHANNELS)):
        heads_module.add_module(f"lin{i}", model.heads()[i])
    load_matching(heads_module, {k: v for k, v in heads.items() if re.match(r"lin\d\.", k)}, heads_file)
    return model.eval().to(device)
