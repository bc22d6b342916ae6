"""The VAE's training loop (``book/03_gan_vs_vae.ipynb``): Adam on the negative ELBO, on the shared skeleton.

A VAE (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114) is trained by minimising

    L(x) = E_{q(z|x)}[-log p(x|z)] + β · KL(q(z|x) ‖ N(0, I)),

the negative evidence lower bound for ``β = 1`` (``ganlab.losses.vae_loss``), with one sample of
``z = μ + σ ε`` per image (the reparameterisation trick). The reparameterisation noise ``ε`` and the
batches are functions of ``(seed, step)``, as in ``ganlab.fit``, so the GAN and the VAE of chapter 3
see the same batches.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..losses import vae_loss
from ..utils import check_positive_float
from . import distributed as dist
from .batches import Batches, step_generator
from .config import check_run_fields, check_weight
from .levers import autocast_context, make_scaler, resolve_precision
from .loop import Run
from .steps import optimizer_step

__all__ = ["VAEConfig", "VAEResult", "fit_vae"]


@dataclass
class VAEConfig:
    """Every setting of a VAE run (the fields shared with ``TrainConfig`` mean the same)."""

    steps: int = 2_000                  # Adam updates
    batch_size: int = 64                # images per update
    lr: float = 1e-3                    # Adam learning rate (Kingma & Welling's setting)
    beta: float = 1.0                   # weight of the KL term; 1 is the ELBO, > 1 a beta-VAE
    device: str = "auto"                # "auto" (cuda > mps > cpu), or a torch device string
    precision: str = "fp32"             # "fp32", "bf16", "fp16" or "auto", as in TrainConfig; a no-op on the CPU
    seed: int = 0                       # seeds the batch order and the reparameterisation noise
    log_every: int = 10                 # steps between history entries
    max_minutes: float | None = None    # wall-clock budget; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_run_fields(self)
        check_positive_float("lr", self.lr)
        check_weight("beta", self.beta)


@dataclass
class VAEResult:
    """What :func:`fit_vae` returns."""

    vae: nn.Module                      # the trained VAE (in train mode, on the training device)
    history: dict[str, list[float]]     # "step", "loss", "recon", "kl" (nats per image), "seconds"
    step: int                           # updates done
    stopped: str                        # "steps" (finished) or "time" (max_minutes reached)
    seconds: float                      # wall-clock time of the call


def fit_vae(vae: nn.Module, data: Any, config: VAEConfig | None = None, **kwargs: Any) -> VAEResult:
    """Train a VAE (``forward(x, generator=...) -> (logits, mu, logvar)``) by minimising ``vae_loss`` with Adam.

    ``data`` is anything ``ganlab.fit`` accepts (labels are ignored); ``config`` a :class:`VAEConfig`.
    The old keyword form ``fit_vae(vae, data, steps=..., lr=...)`` still works, with a
    ``DeprecationWarning``: it builds ``VAEConfig(**kwargs)``.
    """
    if kwargs:
        if config is not None:
            raise TypeError("fit_vae: pass a VAEConfig or keyword settings, not both")
        warnings.warn("fit_vae(vae, data, steps=..., ...) is deprecated: pass fit_vae(vae, data, VAEConfig(...))",
                      DeprecationWarning, stacklevel=2)
        config = VAEConfig(**kwargs)
    config = config if config is not None else VAEConfig()
    if not isinstance(config, VAEConfig):
        raise TypeError(f"config must be a VAEConfig, got {type(config).__name__}")
    if not isinstance(vae, nn.Module) or not hasattr(vae, "decoder"):
        raise TypeError("vae must be an nn.Module with an `encoder` and a `decoder`, such as ganlab.models.VAE")

    # ---- setup
    device = dist.local_device(config.device)   # under torchrun: this process's own device
    precision = resolve_precision(device, config.precision)
    autocast = autocast_context(device, precision)
    vae.to(device).train()
    vae_run = dist.prepare(vae)                 # in DDP under torchrun
    opt = torch.optim.Adam(vae.parameters(), lr=config.lr)
    scaler = make_scaler(device, precision)
    batches = Batches(data, config.batch_size, config.seed, distributed=True)
    batches.check("data")  # float, finite, in [-1, 1]: the Bernoulli likelihood reads (x + 1) / 2 as pixels

    # ---- loop
    with Run(steps=config.steps, log_every=config.log_every, max_minutes=config.max_minutes,
             progress=config.progress, desc="training VAE", postfix={"loss": ".1f", "kl": ".1f"},
             advice="Lower the learning rate.", distributed=True) as run:
        while run.running():
            x = batches(run.step)[0].to(device, non_blocking=True)               # (B, C, H, W)
            with autocast:
                gen = batches.own_stream(step_generator(config.seed, run.step))  # per process
                logits, mu, logvar = vae_run(x, generator=gen)
                terms = vae_loss(logits.float(), x, mu.float(), logvar.float(), beta=config.beta)
            optimizer_step(terms.loss, opt, scaler)
            run.end_step(terms._asdict(), finite=("loss",))
    return VAEResult(vae=vae, history=run.history, step=run.step, stopped=run.stopped, seconds=run.seconds)
