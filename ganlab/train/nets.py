"""How the training loops call the networks: conditional or not, EMA-wrapped or not, and G's noise.

A class-conditional network takes its labels as a second argument (``G(z, y)``, ``D(x, y)``); an
unconditional one takes none. An EMA copy of G (``torch.optim.swa_utils.AveragedModel``) holds the
network as ``.module``. Noise is drawn on the CPU from a ``torch.Generator`` and then moved, so the same
seed gives the same ``z`` on every device.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..utils import device_of

__all__ = ["call", "unwrap", "noise", "random_labels"]


def call(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``net(x)``, or ``net(x, y)`` for a class-conditional network given labels ``y``."""
    return net(x) if y is None else net(x, y)


def unwrap(net: nn.Module) -> nn.Module:
    """The network inside an ``AveragedModel`` (the EMA of G); any other module unchanged."""
    return net.module if isinstance(net, AveragedModel) else net


def noise(n: int, z_dim: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    """``z ~ N(0, I)``, shape ``(n, z_dim)``, drawn on the CPU from ``generator`` and moved to ``device``."""
    return torch.randn(n, z_dim, generator=generator).to(device)


def random_labels(G: nn.Module, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
    """``n`` uniform class labels on G's device for a class-conditional G; ``None`` for an unconditional one."""
    num_classes = getattr(unwrap(G), "num_classes", None)
    if num_classes is None:
        return None
    return torch.randint(num_classes, (n,), generator=generator).to(device_of(G))
