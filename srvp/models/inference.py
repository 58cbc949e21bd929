"""Inference layout of the frame networks: the same functions, computed faster, for sampling only.

:func:`inference_layers` swaps, for the duration of a ``with`` block, layers of a model in eval mode for inference
versions, and puts the original layers back afterwards, so that the model can go on training and its checkpoints
keep their keys and layout. Measured on CPU in ``docs/benchmarks.md`` (``benchmarks/bench_layers.py``):

- batch norm folded into the preceding convolution (in eval mode it is a per-channel affine map;
  :func:`torch.nn.utils.fusion.fuse_conv_bn_eval`): one pass over the activations less per layer;
- channels-last (NHWC) convolution weights, so that oneDNN and cuDNN run the convolutions in that layout;
- the thin DCGAN output layer (a 4x4, stride-2 transposed convolution to 1-4 channels) as one matrix product and
  four strided additions (:class:`ThinConvTranspose2d`): oneDNN runs it at under 20 GFLOP/s, 3x slower;
- activations that follow a convolution, batch norm or linear layer computed in place (no new buffer).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from srvp.models.cpu_layers import use_cpu_layers
from srvp.runtime import compute_dtype

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU)


class ThinConvTranspose2d(nn.Module):
    """Inference version of a :class:`torch.nn.ConvTranspose2d` with kernel 4, stride 2, padding 1 and few output
    channels: ``(N, C, H, W)`` -> ``(N, O, 2H, 2W)``.

    Every input pixel contributes a 4x4 patch of outputs, ``x @ W`` with ``W`` of shape ``(C, 16 O)``; output pixel
    ``2i + a - 1`` (per axis) receives tap ``a`` of input pixel ``i``. Writing ``a = 2q + r``, the padded output
    viewed as ``(N, H + 1, 2, W + 1, 2, O)`` receives tap ``(q_h, r_h, q_w, r_w)`` of pixel ``(i, j)`` at
    ``[i + q_h, r_h, j + q_w, r_w]``: four strided additions (one per ``(q_h, q_w)``), accumulated in fp32 or wider.
    Written by hand because this is the one layer of the DCGAN decoder that oneDNN runs far from the machine's
    peak (one output channel leaves its kernels nothing to vectorise over).
    """

    def __init__(self, conv: nn.ConvTranspose2d):
        super().__init__()
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.weight = conv.weight  # (C, O, 4, 4), shared with the original layer
        self.bias = conv.bias

    @staticmethod
    def applies_to(conv: nn.Module) -> bool:
        return (type(conv) is nn.ConvTranspose2d and conv.kernel_size == (4, 4) and conv.stride == (2, 2)
                and conv.padding == (1, 1) and conv.output_padding == (0, 0) and conv.dilation == (1, 1)
                and conv.groups == 1 and conv.out_channels <= 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        o = self.out_channels
        dtype = compute_dtype(x)
        pixels = x.to(dtype).permute(0, 2, 3, 1).reshape(n * h * w, c)  # a view for a channels-last input
        weight = self.weight.to(dtype).permute(0, 2, 3, 1).reshape(c, 16 * o)  # (kh, kw, o) order
        acc = torch.promote_types(dtype, torch.float32)  # fp32 sums of bf16 / fp16 products
        taps = (pixels @ weight).to(acc).reshape(n, h, w, 2, 2, 2, 2, o)  # n, i, j, q_h, r_h, q_w, r_w, o
        out = torch.zeros(n, h + 1, 2, w + 1, 2, o, device=x.device, dtype=acc)
        for qh in range(2):
            for qw in range(2):
                out[:, qh:qh + h, :, qw:qw + w, :] += taps[:, :, :, qh, :, qw, :].permute(0, 1, 3, 2, 4, 5)
        out = out.reshape(n, 2 * h + 2, 2 * w + 2, o)[:, 1:-1, 1:-1]
        if self.bias is not None:
            out = out + self.bias
        return out.to(dtype).permute(0, 3, 1, 2)  # (N, O, 2H, 2W)


# layers whose output is a buffer of their own, which a following activation may overwrite
_PRODUCERS = (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d, nn.Linear, nn.Identity, ThinConvTranspose2d)


def _is_folding_pair(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_mean is not None and bn.num_features == conv.out_channels)


def _get(parent: nn.Module, name: str | int) -> nn.Module:
    return parent[name] if isinstance(name, int) else getattr(parent, name)


def _set(parent: nn.Module, name: str | int, module: nn.Module) -> None:
    if isinstance(name, int):
        parent[name] = module
    else:
        setattr(parent, name, module)


def _inference_version(conv: nn.Module, bn: nn.Module | None, channels_last: bool) -> nn.Module | None:
    """The layer replacing ``conv`` (followed by ``bn`` when it folds), or None to keep it."""
    new = conv
    if bn is not None:
        new = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
    if ThinConvTranspose2d.applies_to(new) and new.weight.device.type == "cpu":
        return ThinConvTranspose2d(new)
    if channels_last or conv.weight.is_contiguous(memory_format=torch.channels_last):
        new = (new if new is not conv else copy.deepcopy(conv)).to(memory_format=torch.channels_last)
    return None if new is conv else new


@contextmanager
def inference_layers(model: nn.Module, channels_last: bool = False) -> Iterator[nn.Module]:
    """Within the block, ``model`` (in eval mode) computes with its inference layers (see the module docstring):
    batch norm folded, thin output layers as matrix products, activations in place, and with ``channels_last``
    channels-last convolution weights. The original layers are restored on exit, even on error. Gradients do not
    reach the original parameters inside the block: use it for inference only.

    >>> with inference_layers(model.eval(), channels_last=True), torch.inference_mode():
    ...     frames = model.sample_futures(model.condition(x), horizon=20)
    """
    if model.training:
        raise ValueError("inference_layers needs a model in eval mode (batch norm with running statistics)")
    swapped: list[tuple[nn.Module, str | int, nn.Module]] = []
    in_place: list[nn.Module] = []
    restore_classes = use_cpu_layers(model)
    try:
        with torch.no_grad():
            for parent in list(model.modules()):
                children = list(parent.named_children())
                sequential = isinstance(parent, nn.Sequential)
                for j, (name, child) in enumerate(children):
                    key = int(name) if sequential else name
                    if isinstance(child, _CONVS):
                        nxt = children[j + 1][1] if sequential and j + 1 < len(children) else None
                        bn = nxt if nxt is not None and _is_folding_pair(child, nxt) else None
                        new = _inference_version(child, bn, channels_last)
                        if new is not None:
                            swapped.append((parent, key, child))
                            _set(parent, key, new)
                        if bn is not None:
                            swapped.append((parent, key + 1, bn))
                            parent[key + 1] = nn.Identity()
                    elif (sequential and isinstance(child, _ACTIVATIONS) and not child.inplace and j > 0
                          and isinstance(_get(parent, j - 1), _PRODUCERS)):
                        child.inplace = True  # it acts on a buffer its predecessor has just created
                        in_place.append(child)
        yield model
    finally:
        for parent, key, original in reversed(swapped):
            _set(parent, key, original)
        for activation in in_place:
            activation.inplace = False
        restore_classes()
