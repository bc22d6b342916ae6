"""The two steps of GAN training, written out: one update of the discriminator, one of the generator.

Taught in ``book/04_implementation.ipynb`` (this is the file it opens). GAN training is a two-player
minimax game (Goodfellow et al. 2014, https://arxiv.org/abs/1406.2661),

    min_G max_D  V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))],

played by alternating gradient steps, as in d2l's ``update_D`` / ``update_G`` and pytorch/examples'
two numbered phases: :func:`d_step` moves D on a real and a generated batch, :func:`g_step` moves G
through D, whose weights are held fixed. ``D`` returns raw logits ``d(x)``, so ``D(x) = sigmoid(d(x))``;
the losses (``ganlab.losses``) are written on logits in their numerically stable forms.

:func:`discriminator_update` and :func:`generator_update` are the same steps returning tensors (no
device sync), with the knobs ``ganlab.fit`` adds: a shared autocast, gradient scalers, DiffAugment, the
eager D for the penalties when D is compiled, and the joint real-and-fake batch. :func:`optimizer_step`
(the scaled optimiser update) and :func:`frozen` (D's weights as constants) are shared by every loop.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext

import torch
from torch import nn

from ..augment import diff_augment
from ..losses import gradient_penalty, r1_penalty
from ..utils import check_positive_int, device_of
from .distributed import no_sync
from .nets import call, noise, random_labels

__all__ = ["d_step", "g_step", "discriminator_update", "generator_update", "optimizer_step", "frozen",
           "as_floats"]


def optimizer_step(loss: torch.Tensor, opt: torch.optim.Optimizer,
                   scaler: torch.amp.GradScaler | None = None) -> None:
    """``opt``'s update on the gradient of ``loss``; with an fp16 ``scaler``, on the scaled loss.

    The scaler multiplies the loss before backward (small fp16 gradients would underflow to 0), divides
    the gradients back before the step, skips a step whose gradients overflowed, and adapts the scale.
    A disabled scaler (every precision but fp16 on CUDA) passes everything through unchanged.
    """
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()


@contextmanager
def frozen(module: nn.Module, enabled: bool = True) -> Iterator[None]:
    """Inside the block, ``module``'s trainable weights need no gradient (they are restored after).

    In G's step D's weights are constants: skipping their gradients saves a third of D's backward pass
    while the gradient still flows through D to G's output. Under DDP (several processes) the block also
    runs without DDP's gradient all-reduce for ``module`` (``no_sync``), even with ``enabled=False``: any
    gradient D gets there is thrown away at its next step, so averaging it over the processes would only
    cost time (stylegan2-ada's loss calls D with ``ddp_sync(D, False)`` in G's phase for the same reason).
    """
    params = [p for p in module.parameters() if p.requires_grad] if enabled else []
    for p in params:
        p.requires_grad_(False)
    try:
        with no_sync(module):
            yield
    finally:
        for p in params:
            p.requires_grad_(True)


def as_floats(stats: Mapping[str, torch.Tensor | float]) -> dict[str, float]:
    """Logged values as Python floats, with one device sync for all the tensors among them."""
    keys = [k for k, v in stats.items() if isinstance(v, torch.Tensor)]
    values = dict(zip(keys, torch.stack([stats[k].float() for k in keys]).tolist())) if keys else {}
    return {k: values[k] if k in values else v for k, v in stats.items()}


def discriminator_update(G, D, real, opt_d, d_loss_fn, *, labels=None, fake=None, gp_weight=0.0, r1_weight=0.0,
                         augment=None, scaler=None, autocast=None, generator=None, penalty_D=None,
                         joint=False) -> dict[str, torch.Tensor]:
    """:func:`d_step`, returning tensors; see the module docstring for the extra knobs.

    ``labels`` (class-conditional GANs only) are the real batch's; the fakes are made for the same labels.
    ``penalty_D`` is the eager D when ``D`` is compiled (compiled graphs have no double backward).
    ``joint``: one call of D on the real and the fake batch together (see ``resolve_joint_d_batch``).
    """
    autocast = autocast if autocast is not None else nullcontext()
    penalty_D = penalty_D if penalty_D is not None else D
    if fake is None:
        with torch.no_grad(), autocast:
            fake = call(G, noise(real.shape[0], G.z_dim, real.device, generator), labels)
    with autocast:
        # no gradient flows into G in D's step
        real_in = diff_augment(real, augment, generator=generator)              # (B, C, H, W)
        fake_in = diff_augment(fake.detach(), augment, generator=generator)     # (B, C, H, W)
        if joint:
            both_labels = torch.cat([labels, labels]) if labels is not None else None
            both = call(D, torch.cat([real_in, fake_in]), both_labels)          # (2B,): real first, then fake
            real_logits, fake_logits = both[:len(real_in)], both[len(real_in):]  # (B,) each
        else:
            real_logits, fake_logits = call(D, real_in, labels), call(D, fake_in, labels)
        loss = d_loss_fn(real_logits.float(), fake_logits.float())
    stats = {"d_loss": loss.detach(), "d_real": real_logits.detach().float().mean(),
             "d_fake": fake_logits.detach().float().mean()}
    # the penalties run outside autocast, in fp32: double backward is then AMP-safe without unscaling
    if gp_weight > 0:
        gp = gradient_penalty(penalty_D, real.float(), fake.float(), generator=generator, labels=labels)
        loss = loss + gp_weight * gp
        stats["gp"] = gp.detach()
    if r1_weight > 0:
        r1 = r1_penalty(penalty_D, real.float(), labels=labels)
        loss = loss + 0.5 * r1_weight * r1
        stats["r1"] = r1.detach()
    optimizer_step(loss, opt_d, scaler)
    return stats


def generator_update(G, D, batch_size, opt_g, g_loss_fn, *, labels=None, fake=None, augment=None, scaler=None,
                     autocast=None, generator=None, skip_d_grads=True) -> dict[str, torch.Tensor]:
    """:func:`g_step`, returning tensors; ``skip_d_grads`` leaves D's weight gradients uncomputed."""
    autocast = autocast if autocast is not None else nullcontext()
    with frozen(D, enabled=skip_d_grads):
        with autocast:
            if fake is None:
                if labels is None:
                    labels = random_labels(G, batch_size, generator)
                fake = call(G, noise(batch_size, G.z_dim, device_of(G), generator), labels)  # (B, C, H, W)
            loss = g_loss_fn(call(D, diff_augment(fake, augment, generator=generator), labels).float())
        optimizer_step(loss, opt_g, scaler)
    return {"g_loss": loss.detach()}


def d_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_d: torch.optim.Optimizer,
           d_loss_fn: Callable, *, labels: torch.Tensor | None = None, fake: torch.Tensor | None = None,
           gp_weight: float = 0.0, r1_weight: float = 0.0,
           generator: torch.Generator | None = None) -> dict[str, float]:
    """One discriminator update on ``real`` and a generated batch; returns the logged values as floats.

    D ascends ``V``: with the default loss it minimises the binary cross-entropy of telling real from fake,

        L_D = -E_x[log D(x)] - E_z[log(1 - D(G(z)))]
            = E_x[softplus(-d(x))] + E_z[softplus(d(G(z)))],

    plus ``gp_weight * E[(‖∇D(x̂)‖ - 1)²]`` (WGAN-GP, at points ``x̂`` between real and fake) and
    ``(r1_weight / 2) * E_x[‖∇D(x)‖²]`` (R1, at the real data) when enabled. G's output is detached: no
    gradient reaches G here. ``fake`` reuses a generated batch; otherwise G makes one from fresh noise
    (drawn from ``generator``). ``labels`` are the real batch's labels, for class-conditional GANs (fakes
    get the same labels). Keys: ``d_loss``, ``d_real`` and ``d_fake`` (mean logits), plus ``gp`` / ``r1``.
    """
    return as_floats(discriminator_update(G, D, real, opt_d, d_loss_fn, labels=labels, fake=fake,
                                          gp_weight=gp_weight, r1_weight=r1_weight, generator=generator))


def g_step(G: nn.Module, D: nn.Module, batch_size: int, opt_g: torch.optim.Optimizer, g_loss_fn: Callable,
           *, labels: torch.Tensor | None = None, fake: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> dict[str, float]:
    """One generator update through D (whose weights are held fixed); returns ``{"g_loss": float}``.

    G descends ``V``; the non-saturating loss (the default) replaces ``log(1 - D(G(z)))``, whose gradient
    vanishes while D rejects G's samples, by

        L_G = -E_z[log D(G(z))] = E_z[softplus(-d(G(z)))],

    which has the same fixed point and strong gradients early on (Goodfellow et al. 2014, section 3).
    ``fake`` must still carry G's graph when given (for example the batch D was just trained on), and
    ``labels`` must then be the labels it was made for; without ``fake``, a class-conditional G draws
    uniform labels unless ``labels`` are given.
    """
    check_positive_int("batch_size", batch_size)
    return as_floats(generator_update(G, D, batch_size, opt_g, g_loss_fn, labels=labels, fake=fake,
                                      generator=generator))
