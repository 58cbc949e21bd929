"""Inference layout of the frame networks: batch norm folded into the preceding convolution, channels-last weights.

In eval mode a batch norm is a per-channel affine map, so ``bn(conv(x))`` equals a convolution with scaled weights
and a bias: one pass over the activations less per layer (13% of decoding a batch of SM-MNIST frames on CPU in
bf16, ``docs/benchmarks.md``). Channels-last (NHWC) weights make oneDNN and cuDNN run the convolutions in that
layout. The folding itself is PyTorch's (:func:`torch.nn.utils.fusion.fuse_conv_bn_eval`); this module only finds
the layers in our networks, swaps in the inference versions and puts the original layers back afterwards, so that
the model can go on training and its checkpoints keep their keys and layout.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def _is_folding_pair(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, _CONVS) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_mean is not None and bn.num_features == conv.out_channels)


def _convolutions(model: nn.Module) -> list[tuple[nn.Module, str | int, bool]]:
    """``(parent, name, folds)`` for every convolution of ``model``: ``folds`` when it sits in a Sequential directly
    followed by a batch norm with running statistics over its output channels."""
    found = []
    for parent in model.modules():
        children = list(parent.named_children())
        for j, (name, child) in enumerate(children):
            if isinstance(child, _CONVS):
                folds = (isinstance(parent, nn.Sequential) and j + 1 < len(children)
                         and _is_folding_pair(child, children[j + 1][1]))
                found.append((parent, int(name) if isinstance(parent, nn.Sequential) else name, folds))
    return found


def _get(parent: nn.Module, name: str | int) -> nn.Module:
    return parent[name] if isinstance(name, int) else getattr(parent, name)


def _set(parent: nn.Module, name: str | int, module: nn.Module) -> None:
    if isinstance(name, int):
        parent[name] = module
    else:
        setattr(parent, name, module)


@contextmanager
def inference_layers(model: nn.Module, channels_last: bool = False) -> Iterator[nn.Module]:
    """Within the block, every ``conv -> batch norm`` pair of ``model`` (in eval mode) is replaced by the folded
    convolution, and with ``channels_last`` every convolution has channels-last weights; the original layers are
    restored on exit, even on error. Gradients do not reach the original parameters inside the block: use it for
    inference only.

    >>> with inference_layers(model.eval(), channels_last=True), torch.inference_mode():
    ...     frames = model.sample_futures(model.condition(x), horizon=20)
    """
    if model.training:
        raise ValueError("inference_layers needs a model in eval mode (batch norm with running statistics)")
    originals: list[tuple[nn.Module, str | int, nn.Module, nn.Module | None]] = []
    try:
        with torch.no_grad():
            for parent, name, folds in _convolutions(model):
                conv = _get(parent, name)
                bn = parent[name + 1] if folds else None
                if bn is not None:
                    new = fuse_conv_bn_eval(conv, bn, transpose=isinstance(conv, nn.ConvTranspose2d))
                elif channels_last:
                    new = copy.deepcopy(conv)
                else:
                    continue
                if channels_last or conv.weight.is_contiguous(memory_format=torch.channels_last):
                    new = new.to(memory_format=torch.channels_last)
                originals.append((parent, name, conv, bn))
                _set(parent, name, new)
                if bn is not None:
                    parent[name + 1] = nn.Identity()
        yield model
    finally:
        for parent, name, conv, bn in reversed(originals):
            _set(parent, name, conv)
            if bn is not None:
                parent[name + 1] = bn
