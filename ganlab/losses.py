"""Adversarial losses by name, and the gradient regularisers.

Taught in ``book/04_implementation.ipynb`` (the loss and one training step) and
``book/02_adversarial_game.ipynb`` (why the non-saturating loss exists).

Every loss is a pure function of discriminator logits. Notation: ``r = D(x)`` are the logits on a real
batch, ``f = D(G(z))`` the logits on a generated batch, ``σ`` the logistic sigmoid; each loss is the
batch mean of the expression given and is *minimised* by the player it belongs to. The identities
``-log σ(t) = softplus(-t)`` and ``-log(1 - σ(t)) = softplus(t)`` give the stable forms used here
(no sigmoid followed by a log).

============== ===================================== =========================================
name           discriminator loss                    generator loss
============== ===================================== =========================================
minimax        -log σ(r) - log(1 - σ(f))             log(1 - σ(f))        (Goodfellow et al. 2014)
non_saturating -log σ(r) - log(1 - σ(f))             -log σ(f)            (same paper, Sec. 3)
hinge          max(0, 1 - r) + max(0, 1 + f)         -f                   (Lim & Ye 2017; Miyato et al. 2018)
wasserstein    f - r                                 -f                   (Arjovsky et al. 2017)
least_squares  ½ (r - 1)² + ½ f²                     ½ (f - 1)²           (Mao et al. 2017, a=0, b=c=1)
============== ===================================== =========================================

For ``wasserstein`` the discriminator is a critic: its output is a score, not a logit, and the loss is
only meaningful with a Lipschitz constraint (``gradient_penalty``, Gulrajani et al. 2017).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LOSSES",
    "get_loss",
    "list_losses",
    "d_minimax",
    "g_minimax",
    "g_non_saturating",
    "d_hinge",
    "g_hinge",
    "d_wasserstein",
    "g_wasserstein",
    "d_least_squares",
    "g_least_squares",
    "gradient_penalty",
    "r1_penalty",
]

LossFn = Callable[..., torch.Tensor]


def d_minimax(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's minimax (binary cross-entropy) loss: mean of ``-log σ(r) - log(1 - σ(f))``."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_minimax(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's original, saturating loss: mean of ``log(1 - σ(f)) = -softplus(f)``; its gradient vanishes when D wins."""
    return -F.softplus(fake_logits).mean()


def g_non_saturating(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's non-saturating loss: mean of ``-log σ(f) = softplus(-f)``; strong gradients when D rejects fakes."""
    return F.softplus(-fake_logits).mean()


def d_hinge(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's hinge loss: mean of ``max(0, 1 - r)`` plus mean of ``max(0, 1 + f)``."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def g_hinge(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's hinge loss: mean of ``-f`` (raise D's score of the fakes)."""
    return -fake_logits.mean()


def d_wasserstein(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """The critic's Wasserstein loss: ``mean(f) - mean(r)`` (the negated estimate of W1)."""
    return fake_logits.mean() - real_logits.mean()


def g_wasserstein(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's Wasserstein loss: ``-mean(f)``."""
    return -fake_logits.mean()


def d_least_squares(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's least-squares loss: mean of ``½ (r - 1)²`` plus mean of ``½ f²`` (targets 1 real, 0 fake)."""
    return 0.5 * (real_logits - 1.0).pow(2).mean() + 0.5 * fake_logits.pow(2).mean()


def g_least_squares(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's least-squares loss: mean of ``½ (f - 1)²``."""
    return 0.5 * (fake_logits - 1.0).pow(2).mean()


LOSSES: dict[str, tuple[LossFn, LossFn]] = {
    "minimax": (d_minimax, g_minimax),
    "non_saturating": (d_minimax, g_non_saturating),
    "hinge": (d_hinge, g_hinge),
    "wasserstein": (d_wasserstein, g_wasserstein),
    "least_squares": (d_least_squares, g_least_squares),
}
_ALIASES = {"bce": "non_saturating", "ns": "non_saturating", "wgan": "wasserstein", "lsgan": "least_squares"}


def list_losses() -> list[str]:
    """Loss names accepted by :func:`get_loss` (aliases: bce/ns, wgan, lsgan)."""
    return sorted(LOSSES)


def get_loss(name: str) -> tuple[LossFn, LossFn]:
    """Return ``(d_loss_fn, g_loss_fn)`` for a loss name (see the table in the module docstring)."""
    key = _ALIASES.get(name, name) if isinstance(name, str) else name
    if key not in LOSSES:
        raise ValueError(f"loss must be one of {', '.join(map(repr, list_losses()))} "
                         f"(or an alias {', '.join(map(repr, sorted(_ALIASES)))}); got {name!r}")
    return LOSSES[key]


def _grad_of(outputs: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    (grad,) = torch.autograd.grad(outputs=outputs.sum(), inputs=inputs, create_graph=True)
    return grad.reshape(grad.shape[0], -1)  # (B, C*H*W)


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, target: float = 1.0,
                     generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP penalty (Gulrajani et al. 2017): mean of ``(‖∇ D(x̂)‖₂ - target)²`` at ``x̂ = ε x + (1 - ε) x̃``.

    ``ε ~ U(0, 1)`` per sample, ``x`` real, ``x̃`` generated (detached). Multiply by the weight (λ = 10 in
    the paper) yourself. The graph is kept, so the penalty can be back-propagated into D. A
    class-conditional D gets ``labels`` (the real and generated batches share them).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake must have the same shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
    eps_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    eps = torch.rand(eps_shape, generator=generator, device="cpu").to(real)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    grad = _grad_of(D(x_hat) if labels is None else D(x_hat, labels), x_hat)
    return (grad.norm(2, dim=1) - target).pow(2).mean()


def r1_penalty(D: nn.Module, real: torch.Tensor, *, labels: torch.Tensor | None = None) -> torch.Tensor:
    """R1 penalty (Mescheder et al. 2018): mean of ``‖∇ D(x)‖₂²`` at real ``x``; multiply by ``γ / 2`` yourself."""
    x = real.detach().requires_grad_(True)
    grad = _grad_of(D(x) if labels is None else D(x, labels), x)
    return grad.pow(2).sum(dim=1).mean()
