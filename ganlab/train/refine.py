"""Latent refinement: move each noise vector towards where the discriminator finds its image more real.

Taught in ``book/04_implementation.ipynb`` (measured there on both sides: fidelity up, variety down);
the command line's ``sample --refine-steps K`` uses it (off by default: it costs Fréchet distance), with the
step size of :data:`ganlab.recipes.SAMPLE_REFINE`.
"""
from __future__ import annotations

import torch
from torch import nn
from tqdm.auto import tqdm

from ..errors import UsageError
from ..utils import (check_finite, check_nonnegative_int, check_positive_float, check_positive_int,
                     device_of)
from .nets import call, unwrap

__all__ = ["refine_latents"]


def refine_latents(G: nn.Module, D: nn.Module, z: torch.Tensor, *, steps: int = 10, step_size: float = 0.02,
                   labels: torch.Tensor | None = None, batch_size: int = 500,
                   progress: bool = False) -> torch.Tensor:
    """Move each noise vector a few gradient steps to where D finds its image more real; returns the new z.

    Each step is ``z <- z + (step_size / 2) * (grad_z d(G(z)) - z)``: gradient descent on the energy
    ``E(z) = |z|^2 / 2 - d(G(z))``, where ``d`` is D's logit. That is the energy of discriminator-driven
    latent sampling (Che et al. 2020, https://arxiv.org/abs/2003.06060): for an ideal D the logit is
    ``log p_data / p_G``, so ``exp(-E)`` re-weights G's prior towards the data. The Gaussian term keeps z
    where G was trained. Without DDLS's Langevin noise the steps seek higher-density samples rather than
    sampling the re-weighted distribution exactly: they trade some variety for fidelity, more so the larger
    or more numerous they are, and ``book/04_implementation.ipynb`` measures both sides.

    ``G`` and ``D`` run in eval mode (modes restored after); no weight changes or gains a gradient.
    ``steps=0`` returns ``z`` unchanged. A class-conditional pair needs the ``labels`` G draws for.
    ``progress`` shows a bar over the batches (each costs ``steps`` forward and backward passes of G and D).

    ``step_size`` must be below 2: each step multiplies z by ``1 - step_size / 2`` before adding the
    gradient, which for 2 or more no longer pulls z towards the prior but flips and grows it. A refinement
    that still leaves z non-finite (a gradient that overflowed) raises a ``UsageError`` naming
    ``step_size`` rather than returning NaN.
    """
    check_nonnegative_int("steps", steps)
    check_positive_float("step_size", step_size)
    if step_size >= 2:
        raise UsageError(f"step_size must be in (0, 2), got {step_size!r}: at 2 or more the prior's pull on "
                         f"z overshoots and z grows without bound")
    check_positive_int("batch_size", batch_size)
    G, D = unwrap(G), unwrap(D)
    if not isinstance(D, nn.Module):
        raise TypeError(f"D must be an nn.Module, got {type(D).__name__}")
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != G.z_dim:
        raise ValueError(f"z must have shape (N, {G.z_dim}), got {tuple(getattr(z, 'shape', ()))}")
    check_finite("z", z)
    if labels is not None:
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (len(z),):
            raise ValueError(f"labels must have shape ({len(z)},), got {tuple(labels.shape)}")
    elif getattr(G, "num_classes", None) is not None:
        raise ValueError("labels: G is class-conditional; pass the labels the images are drawn for")
    if steps == 0:
        return z
    device = device_of(G)
    modes = G.training, D.training
    G.eval()
    D.eval()
    out = []
    try:
        for i in tqdm(range(0, len(z), batch_size), desc="refining z", unit="batch", disable=not progress):
            zi = z[i:i + batch_size].detach().to(device)
            y = labels[i:i + batch_size].to(device) if labels is not None else None
            for _ in range(steps):
                zi.requires_grad_(True)
                with torch.enable_grad():
                    logits = call(D, call(G, zi, y), y)
                    # only z's gradient is computed: autograd.grad skips the weights' gradients
                    grad, = torch.autograd.grad(logits.float().sum(), zi)
                zi = (zi + 0.5 * step_size * (grad - zi)).detach()
            if not bool(torch.isfinite(zi).all()):
                raise UsageError(f"step_size: refining z with steps of {step_size:g} gave NaN or infinite "
                                 f"values (the discriminator's gradient overflowed); use a smaller step size "
                                 f"or fewer steps")
            out.append(zi.to(z.device))
    finally:
        G.train(modes[0])
        D.train(modes[1])
    return torch.cat(out)
