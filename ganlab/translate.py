"""Image-to-image training, pix2pix-style: an L1 loss plus a weighted adversarial loss.

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

:func:`translation_step` is one step of both players, written out; :func:`fit_pix2pix` loops over it
with a seeded batch order, a progress bar and a history; :func:`translate` applies a trained ``G``.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset
from tqdm.auto import tqdm

from .losses import get_loss
from .train import PRECISIONS, _Batches, _check_run_settings, _config_dict, _floats, _scaler, autocast_context
from .utils import check_positive_int, device_of, get_device

__all__ = ["Pix2PixConfig", "Pix2PixResult", "translation_step", "fit_pix2pix", "translate"]


@dataclass
class Pix2PixConfig:
    """Every setting of an image-to-image run."""

    steps: int = 500                    # updates of G (and of D when adv_weight > 0)
    batch_size: int = 32                # (input, target) pairs per step
    lr_g: float = 2e-4                  # Adam learning rate of G
    lr_d: float = 2e-4                  # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.999)  # pix2pix's Adam settings
    adv_weight: float = 0.01            # λ, the adversarial term's weight next to L1's 1; 0: L1 only
    loss: str = "non_saturating"        # adversarial loss, a name from ganlab.losses.list_losses()
    lr_decay: bool = True               # cosine decay of both learning rates to 0 over `steps`
    device: str = "auto"                # "auto" (cuda > mps > cpu), or a torch device string
    precision: str = "fp32"             # "fp32", "bf16" (CUDA/MPS) or "fp16" (CUDA); a no-op on the CPU
    seed: int = 0                       # seeds the batch order (seed the weights with torch.manual_seed)
    log_every: int = 10                 # steps between history entries
    max_minutes: float | None = None    # wall-clock budget; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        _check_run_settings(self, PRECISIONS)
        w = self.adv_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not (w >= 0 and math.isfinite(w)):
            raise ValueError(f"adv_weight must be a number >= 0, got {w!r}")

    def to_dict(self) -> dict[str, Any]:
        return _config_dict(self)


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


@contextmanager
def _frozen(module: nn.Module):
    # D's weights are constants in G's step: skip their gradients (restored afterwards)
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _update(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler) -> None:
    opt.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()


def _translation_update(G, D, inputs, targets, opt_g, opt_d, d_loss_fn, g_loss_fn, *, adv_weight,
                        autocast=None, scaler_g=None, scaler_d=None) -> dict[str, torch.Tensor]:
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
        _update(d_loss, opt_d, scaler_d)
        stats.update(d_loss=d_loss.detach(), d_real=real_logits.detach().float().mean(),
                     d_fake=fake_logits.detach().float().mean())
        # (2) the adversarial part of G's loss, through the updated D
        with _frozen(D), autocast:
            adv = g_loss_fn(D(fake, inputs).float())
    # G's step: L1 to the target plus λ times the adversarial loss
    l1 = F.l1_loss(fake.float(), targets.float())
    _update(l1 + adv_weight * adv, opt_g, scaler_g)
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
    if isinstance(adv_weight, bool) or not isinstance(adv_weight, (int, float)) or not adv_weight >= 0:
        raise ValueError(f"adv_weight must be a number >= 0, got {adv_weight!r}")
    if adv_weight > 0 and (D is None or opt_d is None):
        raise ValueError("D and opt_d are needed when adv_weight > 0")
    d_loss_fn, g_loss_fn = get_loss(loss)
    return _floats(_translation_update(G, D, inputs, targets, opt_g, opt_d, d_loss_fn, g_loss_fn,
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
    config = config if config is not None else Pix2PixConfig()
    if not isinstance(config, Pix2PixConfig):
        raise TypeError(f"config must be a Pix2PixConfig, got {type(config).__name__}")
    if not isinstance(G, nn.Module):
        raise TypeError("G must be an nn.Module")
    if config.adv_weight > 0 and not isinstance(D, nn.Module):
        raise TypeError("D must be an nn.Module when adv_weight > 0 (pass None only for an L1-only run)")
    cbs = dict(callbacks or {})
    if set(cbs) - {"on_step_end"}:
        raise ValueError(f"callbacks: only 'on_step_end' is supported, got {sorted(cbs)}")
    data = _paired(data)
    use_d = config.adv_weight > 0

    device = get_device(config.device)
    autocast = autocast_context(device, config.precision)
    G.to(device).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = None
    if use_d:
        D.to(device).train()
        opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    opts = [o for o in (opt_g, opt_d) if o is not None]
    schedules = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=config.steps) for o in opts] \
        if config.lr_decay else []
    scaler_g, scaler_d = _scaler(device, config.precision), _scaler(device, config.precision)
    d_loss_fn, g_loss_fn = get_loss(config.loss)
    batches = _Batches(data, config.batch_size, config.seed)  # yields (inputs, targets)

    history: dict[str, list[float]] = {}
    step, stopped = 0, "steps"
    start = time.perf_counter()
    deadline = start + 60.0 * config.max_minutes if config.max_minutes is not None else math.inf
    label = "pix2pix (L1 + adversarial)" if use_d else "L1 only"
    bar = tqdm(total=config.steps, disable=not config.progress, desc=label, unit="step",
               dynamic_ncols=True, mininterval=0.5)
    try:
        while step < config.steps:
            if time.perf_counter() >= deadline:
                stopped = "time"
                break
            inputs, targets = batches(step)
            stats = _translation_update(G, D if use_d else None, inputs.to(device), targets.to(device),
                                        opt_g, opt_d, d_loss_fn, g_loss_fn, adv_weight=config.adv_weight,
                                        autocast=autocast, scaler_g=scaler_g, scaler_d=scaler_d)
            for s in schedules:
                s.step()
            step += 1
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                row = {"step": step, **_floats(stats), "seconds": time.perf_counter() - start}
                if not all(math.isfinite(v) for v in row.values()):
                    raise FloatingPointError(f"training diverged at step {step}: {row}")
                for k, v in row.items():
                    history.setdefault(k, []).append(v)
                bar.set_postfix(l1=f"{row['l1']:.4f}", refresh=False)
            for fn in cbs.get("on_step_end", []):
                fn(_State(step=step, G=G, D=D, history=history))
    finally:
        bar.close()
    return Pix2PixResult(G=G, D=D if use_d else None, history=history, step=step, config=config,
                         stopped=stopped, seconds=time.perf_counter() - start)


@dataclass
class _State:
    step: int
    G: nn.Module
    D: nn.Module | None
    history: dict[str, list[float]]


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
