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

The VAE's objective, the negative evidence lower bound (:func:`vae_loss`, with :func:`gaussian_kl` and
:func:`bernoulli_nll`), sits at the end; ``book/03_gan_vs_vae.ipynb`` teaches it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

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
    "gaussian_kl",
    "bernoulli_nll",
    "vae_loss",
    "VAELoss",
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


# --- the VAE's objective (book/03_gan_vs_vae.ipynb) ----------------------------------------------

def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, diag(exp(logvar))) || N(0, I))`` per row, in nats: ``½ Σ_j (μ_j² + σ_j² - 1 - log σ_j²)``.

    ``mu`` and ``logvar`` have shape ``(B, z_dim)``; the result has shape ``(B,)`` and is 0 exactly when
    ``mu = 0`` and ``logvar = 0`` (the posterior equals the prior).
    """
    if mu.shape != logvar.shape or mu.dim() != 2:
        raise ValueError(f"mu and logvar must both have shape (B, z_dim), got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``-log p(x | z)`` per image, in nats, for images ``x`` in [-1, 1] and per-pixel Bernoulli ``logits``.

    With ``t = (x + 1) / 2`` the pixel intensity in [0, 1] and ``l`` the logit, each pixel contributes
    ``-t log σ(l) - (1 - t) log(1 - σ(l)) = softplus(l) - t l`` (the stable form), summed over the pixels
    of an image: shape ``(B,)``. For grey levels strictly between 0 and 1 this is the cross-entropy that
    Kingma & Welling used for MNIST; it is an exact log-likelihood only for black-and-white pixels.
    """
    if logits.shape != x.shape:
        raise ValueError(f"logits and x must have the same shape, got {tuple(logits.shape)} and {tuple(x.shape)}")
    t = (x + 1.0) / 2.0
    return F.binary_cross_entropy_with_logits(logits, t, reduction="none").flatten(1).sum(dim=1)


class VAELoss(NamedTuple):
    """What :func:`vae_loss` returns: three batch means, in nats per image."""

    loss: torch.Tensor   # recon + beta * kl: the negative ELBO for beta = 1; minimise it
    recon: torch.Tensor  # E_q[-log p(x | z)], estimated with one z per image
    kl: torch.Tensor     # KL(q(z | x) || p(z))


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
             beta: float = 1.0) -> VAELoss:
    """The VAE's loss, the negative evidence lower bound (Kingma & Welling 2014), averaged over the batch.

    For each image ``x`` with posterior ``q(z | x) = N(mu, diag(exp(logvar)))`` and prior ``p(z) = N(0, I)``::

        log p(x) >= ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))
        loss = mean over the batch of  -E_q[log p(x | z)] + beta * KL(q(z | x) || p(z))

    Sign convention: the loss is *minimised*; with ``beta = 1`` it is ``-ELBO``, an upper bound on
    ``-log p(x)`` in nats per image. The expectation is estimated with the one reparameterised sample
    ``z`` that produced ``logits`` (:func:`bernoulli_nll`); the KL term is in closed form
    (:func:`gaussian_kl`). ``beta != 1`` gives the beta-VAE weighting (Higgins et al. 2017), no longer a bound.
    Returns ``VAELoss(loss, recon, kl)``.
    """
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"beta must be a number >= 0, got {beta!r}")
    recon = bernoulli_nll(logits, x).mean()
    kl = gaussian_kl(mu, logvar).mean()
    return VAELoss(recon + beta * kl, recon, kl)
