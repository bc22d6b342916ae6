"""Differentiable augmentation for GAN training (DiffAugment: Zhao et al. 2020, https://arxiv.org/abs/2006.10738).

With little data the discriminator memorises the real images and its feedback to the generator turns to
noise. DiffAugment applies the same kind of random, differentiable transformation to *every* image D sees,
real or generated, in both players' steps; because it is differentiable, G still receives gradients
through it, and because fakes are augmented too, G is not taught to produce augmented-looking images.
Taught in ``book/06_optimization.ipynb``; used by :func:`ganlab.fit` through ``TrainConfig.augment``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["diff_augment", "POLICIES"]

POLICIES = ("translation", "cutout", "brightness", "contrast")


def _rand(shape, generator, device) -> torch.Tensor:
    return torch.rand(shape, generator=generator).to(device)


def _translation(x, generator, ratio: float = 0.125, fill: float = -1.0) -> torch.Tensor:
    # shift each image by up to `ratio` of its side, filling the uncovered border with the background
    B, C, H, W = x.shape
    sh, sw = max(1, int(H * ratio + 0.5)), max(1, int(W * ratio + 0.5))
    dy = torch.randint(-sh, sh + 1, (B, 1, 1), generator=generator).to(x.device)
    dx = torch.randint(-sw, sw + 1, (B, 1, 1), generator=generator).to(x.device)
    b, i, j = torch.meshgrid(torch.arange(B, device=x.device), torch.arange(H, device=x.device),
                             torch.arange(W, device=x.device), indexing="ij")      # each (B, H, W)
    i = (i + dy + 1).clamp(0, H + 1)            # index into the padded image; out of range -> the border
    j = (j + dx + 1).clamp(0, W + 1)
    padded = F.pad(x, (1, 1, 1, 1), value=fill).permute(0, 2, 3, 1)                # (B, H+2, W+2, C)
    return padded[b, i, j].permute(0, 3, 1, 2)                                     # (B, C, H, W)


def _cutout(x, generator, ratio: float = 0.5, fill: float = -1.0) -> torch.Tensor:
    # blank a random square of `ratio` times the side (placed anywhere, clipped at the edges)
    B, C, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    cy = torch.randint(0, H + (1 - ch % 2), (B, 1, 1), generator=generator).to(x.device)
    cx = torch.randint(0, W + (1 - cw % 2), (B, 1, 1), generator=generator).to(x.device)
    rows = torch.arange(H, device=x.device).view(1, H, 1)
    cols = torch.arange(W, device=x.device).view(1, 1, W)
    top, left = cy - ch // 2, cx - cw // 2                                         # box: ch x cw from here
    inside = (rows >= top) & (rows < top + ch) & (cols >= left) & (cols < left + cw)  # (B, H, W)
    keep = (~inside).unsqueeze(1).to(x.dtype)                                      # (B, 1, H, W)
    return x * keep + fill * (1 - keep)


def _brightness(x, generator) -> torch.Tensor:
    return x + (_rand((x.shape[0], 1, 1, 1), generator, x.device) - 0.5)


def _contrast(x, generator) -> torch.Tensor:
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand((x.shape[0], 1, 1, 1), generator, x.device) + 0.5) + mean


_OPS = {"translation": _translation, "cutout": _cutout, "brightness": _brightness, "contrast": _contrast}


def parse_policy(policy: str | None) -> tuple[str, ...]:
    """``"translation,cutout"`` -> ``("translation", "cutout")``; ``None`` or ``""`` -> ``()``."""
    if policy is None or policy == "":
        return ()
    if not isinstance(policy, str):
        raise ValueError(f"augment must be a comma-separated string of {', '.join(POLICIES)}; got {policy!r}")
    names = tuple(p.strip() for p in policy.split(","))
    unknown = [n for n in names if n not in _OPS]
    if unknown:
        raise ValueError(f"augment: unknown operation(s) {', '.join(map(repr, unknown))}; "
                         f"choose from {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: str | None = "translation,cutout", *,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the operations of ``policy`` (comma-separated, in order) to images ``(B, C, H, W)`` in [-1, 1].

    Every operation is differentiable with respect to ``x``; the random draws come from ``generator``
    (a CPU generator, so that runs are reproducible on any device).
    """
    names = parse_policy(policy)
    if not names:  # no augmentation: any batch shape passes (d_step/g_step on 2-D toy points)
        return x
    if x.dim() != 4:
        raise ValueError(f"x must have shape (B, C, H, W), got {tuple(x.shape)}")
    for name in names:
        x = _OPS[name](x, generator)
    return x
