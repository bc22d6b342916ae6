"""Sampling from a trained generator: reproducible, in eval mode, without gradients.

Taught in ``book/04_implementation.ipynb``. :func:`sample` draws ``z ~ N(0, I)`` from a seeded CPU
generator (the same images on every device), runs ``G(z)`` under ``eval()`` and ``torch.no_grad()``
(nanoGPT's ``generate``) and restores G's mode; a class-conditional G gets :func:`balanced_labels`.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import UsageError
from ..utils import check_finite, check_positive_int, check_seed, device_of
from .nets import call, unwrap

__all__ = ["sample", "balanced_labels"]


@torch.no_grad()
def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """``0, 1, ..., num_classes - 1, 0, 1, ...``: ``n`` labels, every class equally often (up to one)."""
    check_positive_int("n", n)
    check_positive_int("num_classes", num_classes)
    return torch.arange(n) % num_classes


@torch.no_grad()
def sample(G: nn.Module, n: int, *, seed: int | None = 0, z: torch.Tensor | None = None,
           labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
    """``n`` images from ``G`` in [-1, 1], on the CPU; G runs in eval mode (its mode is restored after).

    The noise comes from ``seed`` (reproducible on any device) unless ``z`` is given. A class-conditional
    G gets ``labels``, by default :func:`balanced_labels` (every class equally often).
    """
    check_positive_int("n", n)
    check_positive_int("batch_size", batch_size)
    if seed is not None:
        check_seed("seed", seed)
    G = unwrap(G)
    device = device_of(G)
    if z is None:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, G.z_dim, generator=gen)
    elif z.shape[0] != n:
        raise ValueError(f"z must have n={n} rows, got {tuple(z.shape)}")
    else:
        check_finite("z", z)
    num_classes = getattr(G, "num_classes", None)
    if num_classes is not None and labels is None:
        labels = balanced_labels(n, num_classes)
    if labels is not None:
        if num_classes is None:
            raise ValueError("labels: G is unconditional; pass no labels")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if n and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
            raise UsageError(f"labels must be classes 0..{num_classes - 1}, got values in "
                             f"[{int(labels.min())}, {int(labels.max())}]")
    was_training = G.training
    G.eval()
    try:
        out = []
        for i in range(0, n, batch_size):
            y = labels[i:i + batch_size].to(device) if labels is not None else None
            out.append(call(G, z[i:i + batch_size].to(device), y).float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(out)
