"""The settings and the result of a GAN training run: :class:`TrainConfig` and :class:`TrainResult`.

Every loop of the package takes one config dataclass (nanoGPT's ``GPTConfig`` style, each field documented
on its line) and validates it on construction, with a ``ValueError`` naming the bad field. The fields that
mean the same thing have the same name in every config (``steps``, ``batch_size``, ``lr``/``lr_g``/``lr_d``,
``device``, ``precision``, ``seed``, ``log_every``, ``max_minutes``, ``progress``);
:func:`check_run_fields` checks them for all. A config is saved into every checkpoint as plain data
(:func:`config_to_dict`).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..augment import parse_policy
from ..losses import get_loss
from ..utils import (check_betas, check_bool, check_choice, check_nonnegative_int, check_positive_float,
                     check_positive_int, check_probability, check_seed)
from .levers import PRECISIONS, RESUMABLE_LEVERS, SpeedLevers

__all__ = ["TrainConfig", "TrainResult", "UNLIMITED_STEPS", "CALLBACK_EVENTS", "CHECKPOINT_NAME",
           "RESUMABLE_CHANGES", "check_run_fields", "check_adam_fields", "check_weight", "config_to_dict",
           "known_fields"]

# a step count that only a time budget (max_minutes) ends; the progress bar then counts without a total
UNLIMITED_STEPS = 10**9
CALLBACK_EVENTS = ("on_step_end", "on_sample")
CHECKPOINT_NAME = "checkpoint.pt"


def check_run_fields(config: Any) -> None:
    """Check the fields every ganlab loop config has; each error is a ``ValueError`` naming the field.

    ``steps``, ``batch_size``, ``device``, ``precision`` (see :mod:`.levers`), ``seed`` (in
    ``[0, 2**64)``), ``log_every``,
    ``max_minutes`` (``None`` or > 0) and ``progress``.
    """
    check_positive_int("steps", config.steps)
    check_positive_int("batch_size", config.batch_size)
    if not isinstance(config.device, (str, torch.device)):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {config.device!r}")
    check_choice("precision", config.precision, PRECISIONS + ("auto",))
    if isinstance(config, SpeedLevers):
        config.check_levers()
    check_seed("seed", config.seed)
    check_positive_int("log_every", config.log_every)
    if config.max_minutes is not None:
        check_positive_float("max_minutes", config.max_minutes)
    check_bool("progress", config.progress)


def check_adam_fields(config: Any) -> None:
    """Check ``lr_g``, ``lr_d`` (> 0) and ``betas`` (normalised to a tuple of floats) of a two-player config."""
    check_positive_float("lr_g", config.lr_g)
    check_positive_float("lr_d", config.lr_d)
    config.betas = check_betas("betas", config.betas)


def check_weight(name: str, value: Any) -> float:
    """A loss weight: a finite number >= 0 (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return value


def known_fields(cls: type, d: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``d`` (a saved config), after checking that every key is a field of the dataclass ``cls``."""
    unknown = sorted(set(d) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"config: unknown field(s) {', '.join(unknown)}")
    return dict(d)


def config_to_dict(config: Any) -> dict[str, Any]:
    """A loop config as plain data for a checkpoint: ``betas`` a list, ``device`` a string."""
    d = dataclasses.asdict(config)
    if "betas" in d:
        d["betas"] = list(config.betas)
    d["device"] = str(config.device)
    return d


@dataclass
class TrainConfig(SpeedLevers):
    """Every setting of a GAN training run; saved into each checkpoint.

    The speed levers (``precision``, ``channels_last``, ``fused_adam``, ``compile``, ``skip_d_grads``,
    ``joint_d_batch``, ``tune_allocator``) are inherited from :class:`ganlab.train.SpeedLevers`;
    ``precision`` defaults to ``"fp32"`` (``"auto"`` picks bf16 or fp16 on a GPU).
    """

    steps: int = 2_000                  # generator updates in the whole run (a resume continues up to it)
    batch_size: int = 64                # real images per discriminator step (under torchrun: of all the
                                        # processes together, each taking its share)
    lr_g: float = 2e-4                  # Adam learning rate of G
    lr_d: float = 2e-4                  # Adam learning rate of D
    lr_decay_start: float | None = None  # share of `steps` after which lr_g and lr_d fall linearly towards 0
                                         # at `steps` (lr_scale); None: constant learning rates
    betas: tuple[float, float] = (0.5, 0.999)  # beta1 = 0.5 as in DCGAN: 0.9 makes the game oscillate
    loss: str = "non_saturating"        # a name from ganlab.losses.list_losses()
    n_critic: int = 1                   # D steps per G step (5 is usual for WGAN-GP)
    gp_weight: float = 0.0              # WGAN-GP lambda; 0 disables the gradient penalty
    r1_weight: float = 0.0              # R1 gamma (the penalty is multiplied by gamma / 2); 0 disables
    augment: str | None = None          # DiffAugment policy for every image D sees, e.g. "translation,cutout"
    ema_half_life: float | None = None  # EMA of G, half-life in images (NVlabs' rule); None disables
    ema_rampup: float | None = None     # EMA warm-up: half-life min(ema_half_life, ema_rampup x images seen),
                                        # NVlabs' ema_rampup (0.05 in EDM and the recipes); None: no warm-up
    device: str = "auto"                # "auto" (cuda > mps > cpu), or a torch device string
    seed: int = 0                       # seeds the noise draws, batch order and fixed noise (not the weights:
                                        # seed those with torch.manual_seed before building G and D)
    log_every: int = 10                 # steps between history entries
    sample_every: int = 0               # steps between sample grids from fixed noise; 0: only at the end
    n_samples: int = 64                 # images in each sample grid
    checkpoint_every: int = 500         # steps between checkpoints (needs out_dir); 0: only at the end.
                                        # Not 0 by default: a diverging run keeps its last finite checkpoint
    max_minutes: float | None = None    # wall-clock budget of this call; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_run_fields(self)
        check_adam_fields(self)
        if self.lr_decay_start is not None:
            check_probability("lr_decay_start", self.lr_decay_start)
        get_loss(self.loss)  # raises a ValueError naming `loss`
        parse_policy(self.augment)  # raises a ValueError naming `augment`
        check_positive_int("n_critic", self.n_critic)
        check_weight("gp_weight", self.gp_weight)
        check_weight("r1_weight", self.r1_weight)
        if self.ema_half_life is not None:
            check_positive_float("ema_half_life", self.ema_half_life)
        if self.ema_rampup is not None:
            check_positive_float("ema_rampup", self.ema_rampup)
        check_nonnegative_int("sample_every", self.sample_every)
        check_positive_int("n_samples", self.n_samples)
        check_nonnegative_int("checkpoint_every", self.checkpoint_every)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        d = known_fields(cls, d)
        if "ema_half_life" in d and "ema_rampup" not in d:
            d["ema_rampup"] = None  # a checkpoint from before the warm-up: its EMA had none, and keeps none
        return cls(**d)


# settings that may change between a run and its resume without changing the result (with lr_decay_start,
# `steps` also places the decay: a resume to more steps continues on the longer run's schedule)
RESUMABLE_CHANGES = frozenset({"steps", "device", "log_every", "sample_every", "n_samples", "checkpoint_every",
                               "max_minutes", "progress"}) | RESUMABLE_LEVERS


@dataclass
class TrainResult:
    """What :func:`ganlab.fit` returns."""

    G: nn.Module                        # the trained generator
    D: nn.Module                        # the trained discriminator
    G_ema: nn.Module | None             # the EMA of G (a plain copy of G's class), or None
    history: dict[str, list[float]]     # logged values, one entry every `log_every` steps
    samples: list[tuple[int, torch.Tensor]]  # (step, images in [-1, 1] on the CPU) from the fixed noise
    step: int                           # generator updates done in total
    config: TrainConfig
    stopped: str                        # "steps" (finished) or "time" (max_minutes reached)
    seconds: float                      # wall-clock time of this call
    checkpoint: Path | None = None      # the last checkpoint written, if any

    @property
    def generator(self) -> nn.Module:
        """The generator to sample from: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else self.G
