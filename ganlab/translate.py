"""Applying an image-to-image generator, and the pix2pix loop that trains one (``book/05b_image_restoration.ipynb``).

:func:`translate` runs a trained ``G`` over a batch of images. The training side (L1 plus a weighted
adversarial loss, Isola et al. 2017, https://arxiv.org/abs/1611.07004) lives in
:mod:`ganlab.train.pix2pix` with the package's other loops, and is re-exported here:
:class:`Pix2PixConfig`, :class:`Pix2PixResult`, :func:`translation_step`, :func:`fit_pix2pix` and
:func:`load_pix2pix_generator`.
"""
from __future__ import annotations

import torch
from torch import nn

from .train.pix2pix import Pix2PixConfig, Pix2PixResult, fit_pix2pix, load_pix2pix_generator, translation_step
from .utils import check_positive_int, device_of

__all__ = ["Pix2PixConfig", "Pix2PixResult", "translation_step", "fit_pix2pix", "load_pix2pix_generator",
           "translate"]


@torch.no_grad()
def translate(G: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256) -> torch.Tensor:
    """``G(inputs)`` in eval mode, batch by batch, on the CPU (G's mode is restored after)."""
    check_positive_int("batch_size", batch_size)
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 4:
        raise ValueError(f"inputs must be a tensor of images (N, C, H, W), got "
                         f"{tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__}")
    device = device_of(G)
    was_training = G.training
    G.eval()
    try:
        return torch.cat([G(chunk.to(device)).float().cpu() for chunk in inputs.split(batch_size)])
    finally:
        G.train(was_training)
