"""The image-to-image loop, pix2pix-style: an L1 loss plus a weighted adversarial loss.

Taught in ``book/05b_image_restoration.ipynb``. Isola et al. 2017 (pix2pix,
https://arxiv.org/abs/1611.07004) train a generator ``G`` that maps an input image ``x`` (noisy, masked,
small, grey) to an output, with

    loss_G = ‖G(x) - y‖₁  +  λ · ℓ_G(D(G(x), x))

where ``y`` is the clean target and ``D`` a *conditional* discriminator that judges (output, input)
pairs: it learns to tell ``(y, x)`` from ``(G(x), x)``, so it penalises outputs that do not look like
real images *and* outputs that do not fit their input. The L1 term alone makes the output the
(per-pixel) median of the plausible answers, which is blurry where the input is ambiguous; the
adversarial term pushes towards one sharp plausible answer. pix2pix uses L1 weight 100 and adversarial
weight 1; here L1 has weight 1 and ``adv_weight`` is λ (0.01 is pix2pix's ratio).

``adv_weight=0`` trains the L1-only network with the same code (``D`` is then not needed and not
touched), so the two variants differ in the adversarial term only. SRGAN (Ledig et al. 2017,
https://arxiv.org/abs/1609.04802) is the same idea for super-resolution, with a perceptual loss in
place of L1.

:func:`translation_step` is one step of both players, written out; :func:`fit_pix2pix` loops over it on
the shared run skeleton (:mod:`.loop`); ``ganlab.translate.translate`` applies a trained ``G``.
"""
from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

from ..losses import get_loss
from . import distributed as dist
from .batches import Batches, check_training_images
from .config import check_adam_fields, check_run_fields, check_weight, config_to_dict
from .levers import autocast_context, make_scaler, resolve_precision
from .loop import Run, check_callbacks
from .steps import as_floats, frozen, optimizer_step

__all__ = ["Pix2PixConfig", "Pix2PixResult", "translation_step", "translation_update", "fit_pix2pix"]


@dataclass
class Pix2PixConfig:
    """Every setting of an image-to-image run (the fields shared with ``TrainConfig`` mean the same)."""

    steps: int = 500                    # updates of G (and of D when adv_weight > 0)
    batch_size: int = 32                # (input, target) pairs per step
    lr_g: float = 2e-4                  # Adam learning rate of G
    lr_d: float = 2e-4                  # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.999)  # pix2pix's Adam settings
    adv_weight: float = 0.01            # λ, the adversarial term's weight next to L1's 1; 0: L1 only
    loss: str = "non_saturating"        # adversarial loss, a name from ganlab.losses.list_losses()
    lr_decay: bool = True               # cosine decay of both learning rates to 0 over `steps`
    device: str = "auto"                # "auto" (cuda > mps > cpu), or a torch device string
    precision: str = "fp32"             # "fp32", "bf16", "fp16" or "auto", as in TrainConfig; a no-op on the CPU
    seed: int = 0                       # seeds the batch order (seed the weights with torch.manual_seed)
    log_every: int = 10                 # steps between history entries
    max_minutes: float | None = None    # wall-clock budget; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_run_fields(self)
        check_adam_fields(self)
        get_loss(self.loss)  # raises a ValueError naming `loss`
        check_weight("adv_weight", self.adv_weight)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)


@dataclass
class Pix2PixResult:
    """What :func:`fit_pix2pix` returns."""

    G: nn.Module                        # the trained generator
    D: nn.Module | None                 # the trained discriminator (None for an L1-only run)
    history: dict[str, list[float]]     # logged values, one entry every `log_every` steps
    step: int                           # steps done
    config: Pix2PixConfig
    stopped: str                        # "steps" (finished) or "time" (max_minutes reached)
    seconds: float                      # wall-clock time of the run


def translation_update(G, D, inputs, targets, opt_g, opt_d, d_loss_fn, g_loss_fn, *, adv_weight,
                       autocast=None, scaler_g=None, scaler_d=None) -> dict[str, torch.Tensor]:
    """:func:`translation_step`, returning tensors, with a shared autocast and gradient scalers."""
    autocast = autocast if autocast is not None else nullcontext()
    with autocast:
        fake = G(inputs)                                            # (B, C_out, H, W)
    if fake.shape != targets.shape:
        raise ValueError(f"targets must have G's output shape {tuple(fake.shape)}, got {tuple(targets.shape)}")
    stats: dict[str, torch.Tensor] = {}
    adv = fake.new_zeros(())
    if adv_weight > 0:
        # (1) D's step: (target, input) pairs are real, (output, input) pairs are fake
        with autocast:
            real_logits = D(targets, inputs)
            fake_logits = D(fake.detach(), inputs)                  # no gradient into G here
            d_loss = d_loss_fn(real_logits.float(), fake_logits.float())
        optimizer_step(d_loss, opt_d, scaler_d)
        stats.update(d_loss=d_loss.detach(), d_real=real_logits.detach().float().mean(),
                     d_fake=fake_logits.detach().float().mean())
        # (2) the adversarial part of G's loss, through the updated D
        with frozen(D), autocast:
            adv = g_loss_fn(D(fake, inputs).float())
    # G's step: L1 to the target plus λ times the adversarial loss
    l1 = F.l1_loss(fake.float(), targets.float())
    optimizer_step(l1 + adv_weight * adv, opt_g, scaler_g)
    stats.update(l1=l1.detach(), g_adv=adv.detach())
    return stats


def translation_step(G: nn.Module, D: nn.Module | None, inputs: torch.Tensor, targets: torch.Tensor,
                     opt_g: torch.optim.Optimizer, opt_d: torch.optim.Optimizer | None, *,
                     adv_weight: float, loss: str = "non_saturating") -> dict[str, float]:
    """One pix2pix step: a D update on (target, input) vs (G(input), input) pairs, then a G update on
    ``L1(G(input), target) + adv_weight * g_loss(D(G(input), input))``.

    With ``adv_weight=0`` only G is updated, on L1 (``D`` and ``opt_d`` may be ``None``). Returns
    ``l1`` and ``g_adv`` (G's adversarial loss, 0 when unused), plus ``d_loss``, ``d_real`` and
    ``d_fake`` (mean logits) when D was trained.
    """
    check_weight("adv_weight", adv_weight)
    if adv_weight > 0 and (D is None or opt_d is None):
        raise ValueError("D and opt_d are needed when adv_weight > 0")
    d_loss_fn, g_loss_fn = get_loss(loss)
    return as_floats(translation_update(G, D, inputs, targets, opt_g, opt_d, d_loss_fn, g_loss_fn,
                                       adv_weight=adv_weight))


def _paired(data: Any) -> Any:
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        data = TensorDataset(*data)
    if not isinstance(data, TensorDataset) or len(data.tensors) != 2:
        raise TypeError("data must be a PairedDataset, a TensorDataset(inputs, targets) or a pair of tensors")
    return data


def fit_pix2pix(G: nn.Module, D: nn.Module | None, data: Any, config: Pix2PixConfig | None = None, *,
                callbacks: dict[str, list[Callable]] | None = None) -> Pix2PixResult:
    """Train ``G`` (input -> output) with L1 plus ``config.adv_weight`` times the adversarial loss of ``D``.

    Args:
        G: an image-to-image generator, e.g. :class:`ganlab.models.UNetGenerator`.
        D: a conditional discriminator ``D(output, input) -> logits``, e.g.
            :class:`ganlab.models.PatchGANDiscriminator`; ``None`` when ``config.adv_weight == 0``.
        data: a :class:`ganlab.data.PairedDataset`, a ``TensorDataset(inputs, targets)`` or a pair
            ``(inputs, targets)`` of tensors in [-1, 1].
        config: a :class:`Pix2PixConfig` (defaults when ``None``).
        callbacks: ``{"on_step_end": [fn]}``; ``fn(state)`` gets ``step``, ``G``, ``D``, ``history``.

    The batch order is a function of ``config.seed`` and the step, so two runs that differ only in
    ``adv_weight`` see the same batches. The modules are trained in place (moved to the device).
    """
    # ---- arguments
    config = config if config is not None else Pix2PixConfig()
    if not isinstance(config, Pix2PixConfig):
        raise TypeError(f"config must be a Pix2PixConfig, got {type(config).__name__}")
    if not isinstance(G, nn.Module):
        raise TypeError("G must be an nn.Module")
    if config.adv_weight > 0 and not isinstance(D, nn.Module):
        raise TypeError("D must be an nn.Module when adv_weight > 0 (pass None only for an L1-only run)")
    check_callbacks(callbacks, ("on_step_end",))
    data = _paired(data)
    check_training_images("data inputs", data.tensors[0], pixel_range=False)  # noisy inputs may leave [-1, 1]
    check_training_images("data targets", data.tensors[1])
    use_d = config.adv_weight > 0
    D = D if use_d else None

    # ---- setup
    device = dist.local_device(config.device)   # under torchrun: this process's own device
    precision = resolve_precision(device, config.precision)
    autocast = autocast_context(device, precision)
    G.to(device).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = None
    if use_d:
        D.to(device).train()
        opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    opts = [o for o in (opt_g, opt_d) if o is not None]
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=config.steps) for o in opts] \
        if config.lr_decay else []
    scaler_g, scaler_d = make_scaler(device, precision), make_scaler(device, precision)
    d_loss_fn, g_loss_fn = get_loss(config.loss)
    batches = Batches(data, config.batch_size, config.seed, distributed=True)  # yields (inputs, targets)
    G_run, D_run = dist.prepare(G), (dist.prepare(D) if use_d else None)  # in DDP under torchrun

    # ---- loop
    with Run(steps=config.steps, log_every=config.log_every, max_minutes=config.max_minutes,
             progress=config.progress, desc="pix2pix (L1 + adversarial)" if use_d else "L1 only",
             postfix={"l1": ".4f"}, check_logged=True, callbacks=callbacks,
             advice="Lower the learning rates.", distributed=True) as run:
        while run.running():
            inputs, targets = batches(run.step)
            stats = translation_update(G_run, D_run, inputs.to(device), targets.to(device), opt_g, opt_d,
                                       d_loss_fn, g_loss_fn, adv_weight=config.adv_weight, autocast=autocast,
                                       scaler_g=scaler_g, scaler_d=scaler_d)
            for s in schedules:
                s.step()
            run.end_step(stats)
            run.emit("on_step_end", SimpleNamespace(step=run.step, G=G, D=D, history=run.history))
    return Pix2PixResult(G=G, D=D, history=run.history, step=run.step, config=config,
                         stopped=run.stopped, seconds=run.seconds)
