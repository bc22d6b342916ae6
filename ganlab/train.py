"""The GAN training loop: one visible step for each player, and ``fit`` around them.

Taught in ``book/04_implementation.ipynb``. GAN training is a two-player minimax game (Goodfellow et al.
2014, https://arxiv.org/abs/1406.2661) played by alternating gradient steps: a step of the
discriminator D on a real and a generated batch (:func:`d_step`), then a step of the generator G
through D (:func:`g_step`). ``fit`` only organises those steps: device, mixed precision, the data
order, the EMA of G, logging, progress bar, samples from fixed noise, checkpoints and exact resume.

Exact resume: the batch order and every noise draw are functions of ``(seed, step)``, and a checkpoint
holds every piece of state that changes (weights, optimiser moments, batch-norm statistics, EMA,
history), so a run stopped and resumed ends with the same weights as one that never stopped (on the
CPU; GPU kernels may be non-deterministic).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import Dataset, TensorDataset
from tqdm.auto import tqdm

from .augment import diff_augment, parse_policy
from .checkpoint import load_checkpoint, save_checkpoint
from .losses import get_loss, gradient_penalty, r1_penalty
from .utils import (check_betas, check_bool, check_choice, check_nonnegative_int, check_positive_float,
                    check_positive_int, device_of, get_device, tune_cpu_allocator)

__all__ = [
    "TrainConfig",
    "TrainResult",
    "fit",
    "d_step",
    "g_step",
    "sample",
    "make_optimizers",
    "autocast_context",
    "resolve_precision",
    "speed_settings",
    "resolve_channels_last",
    "resolve_joint_d_batch",
    "ema_decay",
    "balanced_labels",
    "refine_latents",
    "load_discriminator",
    "PRECISIONS",
    "CALLBACK_EVENTS",
]

PRECISIONS = ("fp32", "bf16", "fp16")
CALLBACK_EVENTS = ("on_step_end", "on_sample")
CHECKPOINT_NAME = "checkpoint.pt"


def _check_run_settings(config: Any, precisions: tuple[str, ...]) -> None:
    """Check the fields every ganlab training config has (TrainConfig, translate.Pix2PixConfig).

    ``steps``, ``batch_size``, ``lr_g``, ``lr_d``, ``betas`` (normalised to a tuple of floats),
    ``loss``, ``device``, ``precision`` (one of ``precisions``), ``seed``, ``log_every`` and
    ``max_minutes``; each error is a ``ValueError`` naming the field.
    """
    check_positive_int("steps", config.steps)
    check_positive_int("batch_size", config.batch_size)
    check_positive_float("lr_g", config.lr_g)
    check_positive_float("lr_d", config.lr_d)
    config.betas = check_betas("betas", config.betas)
    get_loss(config.loss)  # raises a ValueError naming `loss`
    if not isinstance(config.device, (str, torch.device)):
        raise ValueError(f"device must be a string such as 'auto', 'cpu' or 'cuda', got {config.device!r}")
    check_choice("precision", config.precision, precisions)
    check_nonnegative_int("seed", config.seed)
    check_positive_int("log_every", config.log_every)
    if config.max_minutes is not None:
        check_positive_float("max_minutes", config.max_minutes)


def _config_dict(config: Any) -> dict[str, Any]:
    """A training config as plain data for a checkpoint: ``betas`` a list, ``device`` a string."""
    d = dataclasses.asdict(config)
    d["betas"], d["device"] = list(config.betas), str(config.device)
    return d


@dataclass
class TrainConfig:
    """Every setting of a training run; saved into each checkpoint."""

    steps: int = 2_000                  # generator updates in the whole run (a resume continues up to it)
    batch_size: int = 64                # real images per discriminator step
    lr_g: float = 2e-4                  # Adam learning rate of G
    lr_d: float = 2e-4                  # Adam learning rate of D
    betas: tuple[float, float] = (0.5, 0.999)  # beta1 = 0.5 as in DCGAN: 0.9 makes the game oscillate
    loss: str = "non_saturating"        # a name from ganlab.losses.list_losses()
    n_critic: int = 1                   # D steps per G step (5 is usual for WGAN-GP)
    gp_weight: float = 0.0              # WGAN-GP lambda; 0 disables the gradient penalty
    r1_weight: float = 0.0              # R1 gamma (the penalty is multiplied by gamma / 2); 0 disables
    augment: str | None = None          # DiffAugment policy for every image D sees, e.g. "translation,cutout"
    ema_half_life: float | None = None  # EMA of G, half-life in images (NVlabs' rule); None disables
    device: str = "auto"                # "auto" (cuda > mps > cpu), or a torch device string
    precision: str = "auto"             # "auto" (see resolve_precision), "fp32", "bf16" (CUDA/MPS) or "fp16"
                                        # (CUDA, with a gradient scaler); every choice is a no-op on the CPU
    channels_last: bool | None = None   # NHWC layout for image models and batches; None: on for 4-D images
    fused_adam: bool | None = None      # Adam's fused kernels; None: fused on CUDA and CPU, multi-tensor elsewhere
    compile: bool = False               # torch.compile G and D (minutes of start-up; penalties run eagerly)
    skip_d_grads: bool = True           # G's step leaves D's weight gradients uncomputed (they are unused)
    joint_d_batch: bool | None = None   # D's step scores the real and the fake batch in one call; None: when D
                                        # declares itself batch-independent (see resolve_joint_d_batch)
    tune_allocator: bool | None = None  # CPU: keep freed activations in the heap (utils.tune_cpu_allocator);
                                        # None: on for the CPU
    seed: int = 0                       # seeds weights' noise draws, batch order and the fixed noise
    log_every: int = 10                 # steps between history entries
    sample_every: int = 0               # steps between sample grids from fixed noise; 0: only at the end
    n_samples: int = 64                 # images in each sample grid
    checkpoint_every: int = 0           # steps between checkpoints (needs out_dir); 0: only at the end
    max_minutes: float | None = None    # wall-clock budget of this call; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        _check_run_settings(self, PRECISIONS + ("auto",))
        parse_policy(self.augment)  # raises a ValueError naming `augment`
        check_positive_int("n_critic", self.n_critic)
        for name in ("gp_weight", "r1_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if self.ema_half_life is not None:
            check_positive_float("ema_half_life", self.ema_half_life)
        for name in ("channels_last", "fused_adam", "tune_allocator", "joint_d_batch"):
            if not (getattr(self, name) is None or isinstance(getattr(self, name), bool)):
                raise ValueError(f"{name} must be True, False or None (automatic), got {getattr(self, name)!r}")
        for name in ("compile", "skip_d_grads"):
            check_bool(name, getattr(self, name))
        check_nonnegative_int("sample_every", self.sample_every)
        check_positive_int("n_samples", self.n_samples)
        check_nonnegative_int("checkpoint_every", self.checkpoint_every)

    def to_dict(self) -> dict[str, Any]:
        return _config_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown field(s) {', '.join(unknown)}")
        return cls(**dict(d))


# a step count that only a time budget (max_minutes) ends; the progress bar then counts without a total
UNLIMITED_STEPS = 10**9

# settings that may change between a run and its resume without changing the result
_RESUMABLE_CHANGES = {"steps", "device", "log_every", "sample_every", "n_samples", "checkpoint_every",
                      "max_minutes", "progress", "precision", "channels_last", "fused_adam", "compile",
                      "skip_d_grads", "tune_allocator"}


@dataclass
class TrainResult:
    """What :func:`fit` returns."""

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


# --- precision -------------------------------------------------------------------------------------

def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """The precision ``fit`` uses: ``"auto"`` is the fastest safe choice for the device.

    On CUDA that is ``"bf16"`` where the GPU supports it (Ampere and newer) and ``"fp16"`` with a gradient
    scaler elsewhere (for example Colab's T4); on MPS and the CPU it is ``"fp32"``. Other values are
    returned unchanged.
    """
    check_choice("precision", precision, PRECISIONS + ("auto",))
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "fp32"


def resolve_channels_last(setting: bool | None, example: torch.Tensor) -> bool:
    """Whether to use the channels-last (NHWC) layout: ``None`` means yes for batches of 2-D images.

    Convolutions in cuDNN (tensor cores) and oneDNN (the CPU) run faster on NHWC;
    ``benchmarks/throughput.py`` measures by how much.
    """
    return example.dim() == 4 if setting is None else bool(setting)


def resolve_joint_d_batch(setting: bool | None, D: nn.Module | None) -> bool:
    """Whether D's step scores the real and the generated batch in one call of D: ``None`` means yes when
    ``D`` declares ``batch_independent = True``.

    One call on ``2B`` images instead of two on ``B`` runs larger, better-used matrix products and, with
    spectral norm, one power iteration per step instead of two. It changes nothing else only when each
    image's logit depends on that image alone: a D with batch norm (whose statistics would then mix real
    and fake images, which pytorch/examples avoids on purpose) or a minibatch-std feature does not
    qualify. ganlab's DCGAN discriminator declares it when it has spectral norm and no minibatch std;
    ``True`` forces one call for any D.
    """
    if setting is not None:
        return bool(setting)
    return bool(getattr(_unwrap(D), "batch_independent", False)) if D is not None else False


def speed_settings(config: "TrainConfig", device: str | torch.device | None = None,
                   example: torch.Tensor | None = None, D: nn.Module | None = None) -> dict[str, Any]:
    """The speed levers :func:`fit` uses for ``config`` on ``device``, with every automatic choice resolved.

    ``example`` is one batch of the data (default: a batch of images, for which channels-last applies);
    ``D`` the discriminator (default: none, for which the joint real-and-fake batch is off).
    Every entry can be forced through the config field of the same name.
    """
    device = get_device(device if device is not None else config.device)
    example = example if example is not None else torch.zeros(1, 1, 8, 8)
    fused = config.fused_adam if config.fused_adam is not None else device.type in ("cuda", "cpu")
    return {
        "precision": resolve_precision(device, config.precision),
        "channels_last": resolve_channels_last(config.channels_last, example),
        "adam": "fused" if fused else ("foreach" if config.fused_adam is None else "per-parameter loop"),
        "skip_d_grads": config.skip_d_grads,
        "joint_d_batch": resolve_joint_d_batch(config.joint_d_batch, D),
        "tune_allocator": bool(config.tune_allocator or (config.tune_allocator is None and device.type == "cpu")),
        "compile": config.compile,
    }


def autocast_context(device: torch.device, precision: str):
    """Autocast for ``bf16``/``fp16`` on accelerators; a no-op for ``fp32`` and on the CPU.

    ``fp16`` needs CUDA (its gradients need a scaler); ``bf16`` needs CUDA with bf16 support or MPS.
    """
    check_choice("precision", precision, PRECISIONS)
    if precision == "fp32" or device.type == "cpu":
        return nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(f"precision: 'fp16' needs a CUDA device, got {device.type!r}")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision: 'bf16' is not supported by this GPU; use 'fp16'")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    # one scaler per optimiser; only fp16 on CUDA needs one, elsewhere it is a pass-through
    enabled = precision == "fp16" and device.type == "cuda"
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)


# --- the two steps ---------------------------------------------------------------------------------

def _noise(n: int, z_dim: int, device: torch.device, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=generator).to(device)


def _call(net: nn.Module, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    # class-conditional networks take labels as a second argument; unconditional ones take none
    return net(x) if y is None else net(x, y)


def _random_labels(G: nn.Module, n: int, generator: torch.Generator | None) -> torch.Tensor | None:
    num_classes = getattr(_unwrap(G), "num_classes", None)
    if num_classes is None:
        return None
    return torch.randint(num_classes, (n,), generator=generator).to(device_of(G))


def _d_update(G, D, real, opt_d, d_loss_fn, *, labels=None, fake=None, gp_weight=0.0, r1_weight=0.0,
              augment=None, scaler=None, autocast=None, generator=None,
              penalty_D=None, joint=False) -> dict[str, torch.Tensor]:
    # `labels` (class-conditional GANs only) are the real batch's; the fakes are made for the same labels;
    # `penalty_D` is the eager D when `D` is compiled (compiled graphs have no double backward);
    # `joint`: one call of D on the real and the fake batch together (see resolve_joint_d_batch)
    autocast = autocast if autocast is not None else nullcontext()
    penalty_D = penalty_D if penalty_D is not None else D
    if fake is None:
        with torch.no_grad(), autocast:
            fake = _call(G, _noise(real.shape[0], G.z_dim, real.device, generator), labels)
    with autocast:
        # no gradient flows into G in D's step
        real_in = diff_augment(real, augment, generator=generator)
        fake_in = diff_augment(fake.detach(), augment, generator=generator)
        if joint:
            both_labels = torch.cat([labels, labels]) if labels is not None else None
            both = _call(D, torch.cat([real_in, fake_in]), both_labels)
            real_logits, fake_logits = both[:len(real_in)], both[len(real_in):]
        else:
            real_logits, fake_logits = _call(D, real_in, labels), _call(D, fake_in, labels)
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
    opt_d.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt_d)
        scaler.update()
    else:
        loss.backward()
        opt_d.step()
    return stats


def _g_update(G, D, batch_size, opt_g, g_loss_fn, *, labels=None, fake=None, augment=None, scaler=None,
              autocast=None, generator=None, skip_d_grads=True) -> dict[str, torch.Tensor]:
    autocast = autocast if autocast is not None else nullcontext()
    # D's weights are constants here: skip their gradients (saves a third of D's backward)
    d_params = [p for p in D.parameters() if p.requires_grad] if skip_d_grads else []
    for p in d_params:
        p.requires_grad_(False)
    try:
        with autocast:
            if fake is None:
                if labels is None:
                    labels = _random_labels(G, batch_size, generator)
                fake = _call(G, _noise(batch_size, G.z_dim, device_of(G), generator), labels)
            loss = g_loss_fn(_call(D, diff_augment(fake, augment, generator=generator), labels).float())
        opt_g.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt_g)
            scaler.update()
        else:
            loss.backward()
            opt_g.step()
    finally:
        for p in d_params:
            p.requires_grad_(True)
    return {"g_loss": loss.detach()}


def _floats(stats: Mapping[str, torch.Tensor]) -> dict[str, float]:
    values = torch.stack([v.float() for v in stats.values()]).tolist()  # one device sync for all
    return dict(zip(stats, values))


def d_step(G: nn.Module, D: nn.Module, real: torch.Tensor, opt_d: torch.optim.Optimizer,
           d_loss_fn: Callable, *, labels: torch.Tensor | None = None, fake: torch.Tensor | None = None,
           gp_weight: float = 0.0, r1_weight: float = 0.0,
           generator: torch.Generator | None = None) -> dict[str, float]:
    """One discriminator update on ``real`` and a generated batch; returns the logged values as floats.

    ``fake`` (detached inside) reuses a generated batch; otherwise G makes one from fresh noise.
    ``labels`` are the real batch's labels, for class-conditional GANs (fakes get the same labels).
    Keys: ``d_loss``, ``d_real`` and ``d_fake`` (mean logits), plus ``gp`` / ``r1`` when enabled.
    """
    return _floats(_d_update(G, D, real, opt_d, d_loss_fn, labels=labels, fake=fake, gp_weight=gp_weight,
                             r1_weight=r1_weight, generator=generator))


def g_step(G: nn.Module, D: nn.Module, batch_size: int, opt_g: torch.optim.Optimizer, g_loss_fn: Callable,
           *, labels: torch.Tensor | None = None, fake: torch.Tensor | None = None,
           generator: torch.Generator | None = None) -> dict[str, float]:
    """One generator update through D (whose weights are held fixed); returns ``{"g_loss": float}``.

    ``fake`` must still carry G's graph when given (for example the batch D was just trained on), and
    ``labels`` must then be the labels it was made for; without ``fake``, a class-conditional G draws
    uniform labels unless ``labels`` are given.
    """
    check_positive_int("batch_size", batch_size)
    return _floats(_g_update(G, D, batch_size, opt_g, g_loss_fn, labels=labels, fake=fake, generator=generator))


def make_optimizers(G: nn.Module, D: nn.Module, config: TrainConfig) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for each player with the config's learning rates and betas.

    The implementation follows ``config.fused_adam``: fused kernels (one pass over all parameters) on
    CUDA and the CPU by default, the multi-tensor ``foreach`` implementation elsewhere (on the CPU it is
    only a loop, which is why fused is the CPU default), the plain per-parameter loop when
    ``fused_adam=False``. All three compute the same update up to rounding.
    """
    device = device_of(G)
    fused = speed_settings(config, device)["adam"] == "fused"
    if fused and device.type not in ("cuda", "cpu", "mps"):
        raise ValueError(f"fused_adam: fused Adam is not available on {device.type!r}")
    kw = {"fused": True} if fused else {"foreach": config.fused_adam is None}
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas, **kw)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas, **kw)
    return opt_g, opt_d


def ema_decay(batch_size: int, half_life_images: float) -> float:
    """Per-step EMA decay with a half-life in images: ``0.5 ** (batch_size / half_life)`` (Karras et al.)."""
    check_positive_int("batch_size", batch_size)
    check_positive_float("half_life_images", half_life_images)
    return 0.5 ** (batch_size / half_life_images)


# --- sampling --------------------------------------------------------------------------------------

def _unwrap(G: nn.Module) -> nn.Module:
    return G.module if isinstance(G, AveragedModel) else G


@torch.no_grad()
def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """``0, 1, ..., num_classes - 1, 0, 1, ...``: ``n`` labels, every class equally often (up to one)."""
    check_positive_int("n", n)
    check_positive_int("num_classes", num_classes)
    return torch.arange(n) % num_classes


@torch.no_grad()
def sample(G: nn.Module, n: int, *, seed: int | None = 0, z: torch.Tensor | None = None,
           labels: torch.Tensor | None = None, batch_size: int = 500) -> torch.Tensor:
    """``n`` images from ``G`` in [-1, 1], on the CPU; G runs in eval mode (its mode is restored after).

    The noise comes from ``seed`` (reproducible on any device) unless ``z`` is given. A class-conditional
    G gets ``labels``, by default :func:`balanced_labels` (every class equally often).
    """
    check_positive_int("n", n)
    check_positive_int("batch_size", batch_size)
    G = _unwrap(G)
    device = device_of(G)
    if z is None:
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        z = torch.randn(n, G.z_dim, generator=gen)
    elif z.shape[0] != n:
        raise ValueError(f"z must have n={n} rows, got {tuple(z.shape)}")
    num_classes = getattr(G, "num_classes", None)
    if num_classes is not None and labels is None:
        labels = balanced_labels(n, num_classes)
    if labels is not None:
        if num_classes is None:
            raise ValueError("labels: G is unconditional; pass no labels")
        labels = torch.as_tensor(labels, dtype=torch.int64)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    was_training = G.training
    G.eval()
    try:
        out = []
        for i in range(0, n, batch_size):
            y = labels[i:i + batch_size].to(device) if labels is not None else None
            out.append(_call(G, z[i:i + batch_size].to(device), y).float().cpu())
    finally:
        G.train(was_training)
    return torch.cat(out)


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
    """
    check_nonnegative_int("steps", steps)
    check_positive_float("step_size", step_size)
    check_positive_int("batch_size", batch_size)
    G, D = _unwrap(G), _unwrap(D)
    if not isinstance(D, nn.Module):
        raise TypeError(f"D must be an nn.Module, got {type(D).__name__}")
    if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != G.z_dim:
        raise ValueError(f"z must have shape (N, {G.z_dim}), got {tuple(getattr(z, 'shape', ()))}")
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
                    logits = _call(D, _call(G, zi, y), y)
                    # only z's gradient is computed: autograd.grad skips the weights' gradients
                    grad, = torch.autograd.grad(logits.float().sum(), zi)
                zi = (zi + 0.5 * step_size * (grad - zi)).detach()
            out.append(zi.to(z.device))
    finally:
        G.train(modes[0])
        D.train(modes[1])
    return torch.cat(out)


# --- data order ------------------------------------------------------------------------------------

class _Batches:
    """Batches as a pure function of ``(seed, index)``: a fixed permutation per epoch, last partial batch dropped."""

    def __init__(self, data: Any, batch_size: int, seed: int) -> None:
        self.labels = None
        if isinstance(data, torch.Tensor):
            self.images, self.dataset = data, None
        elif isinstance(data, TensorDataset):
            self.images, self.dataset = data.tensors[0], None
            self.labels = data.tensors[1] if len(data.tensors) > 1 else None
        elif isinstance(getattr(data, "images", None), torch.Tensor) and getattr(data, "transform", None) is None:
            self.images, self.dataset = data.images, None  # ganlab datasets keep the whole split in memory
            self.labels = getattr(data, "targets", None)
        elif isinstance(data, Dataset) or hasattr(data, "__getitem__"):
            self.images, self.dataset = None, data
        else:
            raise TypeError(f"data must be a tensor of images or a Dataset, got {type(data).__name__}")
        self.n = len(self.images) if self.images is not None else len(self.dataset)
        if self.n < batch_size:
            raise ValueError(f"batch_size ({batch_size}) is larger than the dataset ({self.n} images)")
        self.batch_size, self.seed = batch_size, seed
        self.per_epoch = self.n // batch_size
        self._epoch, self._perm = -1, None

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The images of batch ``index`` and their labels (``None`` when the data has none)."""
        epoch, i = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size]
        if self.images is not None:
            return self.images[idx], (self.labels[idx] if self.labels is not None else None)
        items = [self.dataset[int(j)] for j in idx]
        if all(isinstance(it, (tuple, list)) and len(it) > 1 for it in items):
            return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])
        return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items]), None


def _step_generator(seed: int, index: int) -> torch.Generator:
    # a fresh CPU generator per draw: the noise of step k never depends on how the run got there
    return torch.Generator().manual_seed((seed + 1) * 7_919_104_729 + index)


# --- fit -------------------------------------------------------------------------------------------

def _check_callbacks(callbacks: Mapping[str, Iterable[Callable]] | None) -> dict[str, list[Callable]]:
    if callbacks is None:
        return {}
    if not isinstance(callbacks, Mapping):
        raise TypeError("callbacks must be a dict like {'on_step_end': [fn, ...]}")
    out = {}
    for event, fns in callbacks.items():
        check_choice("callbacks event", event, CALLBACK_EVENTS)
        fns = [fns] if callable(fns) else list(fns)
        if not all(callable(f) for f in fns):
            raise TypeError(f"callbacks[{event!r}] must hold callables")
        out[event] = fns
    return out


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image

    from .utils import atomic_write

    nrow = max(1, int(math.sqrt(len(images))))
    atomic_write(path, lambda tmp: save_image(images, tmp, format="png", nrow=nrow, normalize=True,
                                              value_range=(-1, 1)))


def fit(G: nn.Module, D: nn.Module, data: Any, config: TrainConfig | None = None, *,
        out_dir: str | Path | None = None, resume: bool | str | Path = False,
        callbacks: Mapping[str, Iterable[Callable]] | None = None) -> TrainResult:
    """Train ``G`` against ``D`` on ``data`` (a tensor of images in [-1, 1], or a dataset of them).

    Args:
        G, D: the generator (with a ``z_dim`` attribute) and the discriminator (returning logits).
        data: images ``(N, C, H, W)`` in [-1, 1], a ``TensorDataset`` or any dataset of ``(image, label)``.
        config: a :class:`TrainConfig` (defaults when ``None``).
        out_dir: folder for ``checkpoint.pt`` and sample grids; ``None`` writes nothing.
        resume: ``True`` continues from ``out_dir/checkpoint.pt`` when it exists; a path continues from
            that checkpoint. The config must match the checkpoint's except for steps, device, logging,
            sampling, checkpoint interval, time budget and progress bar.
        callbacks: ``{"on_step_end": [fn], "on_sample": [fn]}``; each ``fn(state)`` gets a namespace with
            ``step``, ``G``, ``D``, ``G_ema``, ``history``, ``config`` (and ``images`` for ``on_sample``).

    The modules are trained in place (moved to the config's device) and returned in the result.
    """
    config = config if config is not None else TrainConfig()
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(G, nn.Module) or not hasattr(G, "z_dim"):
        raise TypeError("G must be an nn.Module with a `z_dim` attribute")
    if not isinstance(D, nn.Module):
        raise TypeError("D must be an nn.Module")
    cbs = _check_callbacks(callbacks)
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume is True and out_dir is None:
        raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")

    device = get_device(config.device)
    precision = resolve_precision(device, config.precision)
    autocast = autocast_context(device, precision)
    levers = speed_settings(config, device, D=D)
    if levers["tune_allocator"]:
        tune_cpu_allocator()
    batches = _Batches(data, config.batch_size, config.seed)
    channels_last = resolve_channels_last(config.channels_last, batches(0)[0])
    layout = torch.channels_last if channels_last else torch.contiguous_format
    G.to(device, memory_format=layout).train()
    D.to(device, memory_format=layout).train()
    d_loss_fn, g_loss_fn = get_loss(config.loss)
    opt_g, opt_d = make_optimizers(G, D, config)
    scaler_g, scaler_d = _scaler(device, precision), _scaler(device, precision)
    # the compiled modules share their parameters with G and D; penalties need double backward, which
    # compiled graphs do not support, so they call the eager D
    G_run, D_run = (torch.compile(G), torch.compile(D)) if config.compile else (G, D)
    G_ema = None
    if config.ema_half_life is not None:
        decay = ema_decay(config.batch_size, config.ema_half_life)
        G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
    history: dict[str, list[float]] = {}
    samples: list[tuple[int, torch.Tensor]] = []
    step = 0

    ckpt_path = None
    if resume is not False:
        ckpt_path = Path(resume) if resume is not True else out_dir / CHECKPOINT_NAME
        if ckpt_path.exists() or resume is not True:
            state = load_checkpoint(ckpt_path, map_location=device)
            saved = TrainConfig.from_dict(state["config"]).to_dict()
            differ = [k for k, v in config.to_dict().items() if k not in _RESUMABLE_CHANGES and saved[k] != v]
            if differ:
                raise ValueError(f"resume: the config differs from the checkpoint's in {', '.join(differ)}")
            G.load_state_dict(state["G"])
            D.load_state_dict(state["D"])
            opt_g.load_state_dict(state["opt_g"])
            opt_d.load_state_dict(state["opt_d"])
            scaler_g.load_state_dict(state["scaler_g"])
            scaler_d.load_state_dict(state["scaler_d"])
            if G_ema is not None:
                G_ema.load_state_dict(state["G_ema"])
            history = {k: list(v) for k, v in state["history"].items()}
            step = int(state["step"])

    fixed_z = torch.randn(config.n_samples, G.z_dim, generator=torch.Generator().manual_seed(config.seed))
    conditional = getattr(G, "num_classes", None) is not None
    if conditional and batches.labels is None and batches.dataset is None:
        raise ValueError("data: G is class-conditional but the data has no labels")

    def make_state(**extra):
        return SimpleNamespace(step=step, G=G, D=D, G_ema=_unwrap(G_ema) if G_ema is not None else None,
                               history=history, config=config, **extra)

    def take_samples():
        images = sample(G_ema if G_ema is not None else G, config.n_samples, z=fixed_z)
        samples.append((step, images))
        if out_dir is not None:
            _save_grid(images, out_dir / f"samples_{step:06d}.png")
        for fn in cbs.get("on_sample", []):
            fn(make_state(images=images))

    def write_checkpoint() -> Path:
        from .models import GAN_REGISTRY

        name = next((k for k, (gc, dc) in GAN_REGISTRY.items()
                     if type(G) is gc and type(D) is dc), None)
        return save_checkpoint(
            out_dir / CHECKPOINT_NAME, model=name, g_args=getattr(G, "model_args", None),
            d_args=getattr(D, "model_args", None), G=G, D=D, opt_g=opt_g, opt_d=opt_d,
            scaler_g=scaler_g, scaler_d=scaler_d, G_ema=G_ema, config=config.to_dict(), step=step,
            history=history)

    def diverged(what: str) -> FloatingPointError:
        return FloatingPointError(
            f"training diverged at step {step}: {what}; the last good checkpoint "
            f"({last_ckpt if last_ckpt is not None else 'none written'}) was kept. "
            f"Lower the learning rates or use a bounded loss (hinge, least_squares).")

    def check_weights() -> None:
        # a finite loss can still be followed by an update that overflows the weights: never checkpoint those
        bad = [name for name, net in (("G", G), ("D", D))
               if not all(bool(torch.isfinite(p).all()) for p in net.parameters())]
        if bad:
            raise diverged(f"{' and '.join(bad)} has non-finite weights")

    start = time.perf_counter()
    deadline = start + 60.0 * config.max_minutes if config.max_minutes is not None else math.inf
    last_ckpt: Path | None = None
    last_ckpt_step = -1
    stopped = "steps"
    bar = tqdm(total=None if config.steps >= UNLIMITED_STEPS else config.steps,
               initial=min(step, config.steps), disable=not config.progress,
               desc="training", unit="step", dynamic_ncols=True, mininterval=0.5)
    try:
        while step < config.steps:
            if time.perf_counter() >= deadline:
                stopped = "time"
                break
            for j in range(config.n_critic):
                index = step * config.n_critic + j
                gen = _step_generator(config.seed, index)
                real, labels = batches(index)
                real = real.to(device, non_blocking=True, memory_format=layout)
                if conditional and labels is None:
                    raise ValueError("data: G is class-conditional but the data has no labels")
                labels = labels.to(device, non_blocking=True) if conditional else None
                last = j == config.n_critic - 1
                with autocast, torch.set_grad_enabled(last):  # only the last batch feeds G's step
                    fake = _call(G_run, _noise(real.shape[0], G.z_dim, device, gen), labels)
                d_stats = _d_update(G_run, D_run, real, opt_d, d_loss_fn, labels=labels, fake=fake,
                                    gp_weight=config.gp_weight, r1_weight=config.r1_weight,
                                    augment=config.augment, scaler=scaler_d, autocast=autocast,
                                    generator=gen, penalty_D=D, joint=levers["joint_d_batch"])
            # G's step reuses the last generated batch, still attached to G's graph (as pytorch/examples)
            g_stats = _g_update(G_run, D_run, config.batch_size, opt_g, g_loss_fn, labels=labels, fake=fake,
                                augment=config.augment, scaler=scaler_g, autocast=autocast, generator=gen,
                                skip_d_grads=config.skip_d_grads)
            if G_ema is not None:
                G_ema.update_parameters(G)
            step += 1
            if not (torch.isfinite(d_stats["d_loss"]) and torch.isfinite(g_stats["g_loss"])):
                raise diverged(f"d_loss={float(d_stats['d_loss'])}, g_loss={float(g_stats['g_loss'])}")
            bar.update(1)
            if step % config.log_every == 0 or step == config.steps:
                row = {"step": step, **_floats({**d_stats, **g_stats}),
                       "seconds": time.perf_counter() - start}
                for k, v in row.items():
                    history.setdefault(k, []).append(v)
                bar.set_postfix(d_loss=f"{row['d_loss']:.3f}", g_loss=f"{row['g_loss']:.3f}", refresh=False)
            if config.sample_every and step % config.sample_every == 0:
                take_samples()
            if out_dir is not None and config.checkpoint_every and step % config.checkpoint_every == 0:
                check_weights()
                last_ckpt, last_ckpt_step = write_checkpoint(), step
            for fn in cbs.get("on_step_end", []):
                fn(make_state())
    finally:
        bar.close()
    if not samples or samples[-1][0] != step:
        take_samples()
    if out_dir is not None and last_ckpt_step != step:
        check_weights()
        last_ckpt = write_checkpoint()
    return TrainResult(G=G, D=D, G_ema=copy.deepcopy(_unwrap(G_ema)) if G_ema is not None else None,
                       history=history, samples=samples, step=step, config=config, stopped=stopped,
                       seconds=time.perf_counter() - start, checkpoint=last_ckpt)


def _saved_gan(checkpoint: str | Path) -> tuple[dict[str, Any], type, type]:
    """A checkpoint written by :func:`fit` and its registered ``(generator class, discriminator class)``."""
    from .models import GAN_REGISTRY

    state = load_checkpoint(checkpoint, map_location="cpu")
    name = state.get("model")
    if name not in GAN_REGISTRY or not isinstance(state.get("g_args"), dict):
        raise ValueError(f"checkpoint: {checkpoint} does not name a registered model (model={name!r})")
    return state, *GAN_REGISTRY[name]


def load_generator(checkpoint: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator saved in a checkpoint written by :func:`fit` (its EMA weights when present)."""
    state, g_cls, _ = _saved_gan(checkpoint)
    G = g_cls(**state["g_args"])
    if ema and state.get("G_ema") is not None:
        weights = {k[len("module."):]: v for k, v in state["G_ema"].items() if k.startswith("module.")}
    else:
        weights = state["G"]
    G.load_state_dict(weights)
    return G.to(get_device(device)).eval()


def load_discriminator(checkpoint: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the discriminator saved in a checkpoint written by :func:`fit`, in eval mode."""
    state, _, d_cls = _saved_gan(checkpoint)
    if not isinstance(state.get("d_args"), dict) or not isinstance(state.get("D"), dict):
        raise ValueError(f"checkpoint: {checkpoint} holds no discriminator")
    D = d_cls(**state["d_args"])
    D.load_state_dict(state["D"])
    return D.to(get_device(device)).eval()


__all__.append("load_generator")


# --- the VAE's loop (book/03_gan_vs_vae.ipynb) -----------------------------------------------------

@dataclass
class VAEResult:
    """What :func:`fit_vae` returns."""

    vae: nn.Module                      # the trained VAE (in train mode, on the training device)
    history: dict[str, list[float]]     # "step", "loss", "recon", "kl" (nats per image), "seconds"
    step: int                           # updates done
    stopped: str                        # "steps" (finished) or "time" (max_minutes reached)
    seconds: float                      # wall-clock time of the call


def fit_vae(vae: nn.Module, data: Any, *, steps: int = 2_000, batch_size: int = 64, lr: float = 1e-3,
            beta: float = 1.0, max_minutes: float | None = None, device: str | torch.device = "auto",
            seed: int = 0, log_every: int = 10, progress: bool = True) -> VAEResult:
    """Train a VAE (``forward(x, generator=...) -> (logits, mu, logvar)``) by minimising ``vae_loss`` with Adam.

    The same machinery as :func:`fit`: batches and the reparameterisation noise are functions of
    ``(seed, step)``, ``max_minutes`` stops the run on a wall-clock budget, the device is resolved once,
    and a ``tqdm`` bar shows progress. ``data`` is anything :func:`fit` accepts (labels are ignored).
    """
    from .losses import vae_loss

    if not isinstance(vae, nn.Module) or not hasattr(vae, "decoder"):
        raise TypeError("vae must be an nn.Module with an `encoder` and a `decoder`, such as ganlab.models.VAE")
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    check_positive_float("lr", lr)
    check_nonnegative_int("seed", seed)
    check_positive_int("log_every", log_every)
    if max_minutes is not None:
        check_positive_float("max_minutes", max_minutes)
    dev = get_device(device)
    vae.to(dev).train()
    opt = torch.optim.Adam(vae.parameters(), lr=lr)
    batches = _Batches(data, batch_size, seed)
    history: dict[str, list[float]] = {}
    step, stopped = 0, "steps"
    start = time.perf_counter()
    deadline = start + 60.0 * max_minutes if max_minutes is not None else math.inf
    with tqdm(total=steps, disable=not progress, desc="training VAE", unit="step", dynamic_ncols=True,
              mininterval=0.5) as bar:
        while step < steps:
            if time.perf_counter() >= deadline:
                stopped = "time"
                break
            x = batches(step)[0].to(dev, non_blocking=True)
            logits, mu, logvar = vae(x, generator=_step_generator(seed, step))
            terms = vae_loss(logits, x, mu, logvar, beta=beta)
            opt.zero_grad(set_to_none=True)
            terms.loss.backward()
            opt.step()
            step += 1
            if not torch.isfinite(terms.loss):
                raise FloatingPointError(f"VAE training diverged at step {step}: loss={float(terms.loss)}; "
                                         "lower the learning rate")
            bar.update(1)
            if step % log_every == 0 or step == steps:
                row = {"step": step, **_floats(terms._asdict()), "seconds": time.perf_counter() - start}
                for k, v in row.items():
                    history.setdefault(k, []).append(v)
                bar.set_postfix(loss=f"{row['loss']:.1f}", kl=f"{row['kl']:.1f}", refresh=False)
    return VAEResult(vae=vae, history=history, step=step, stopped=stopped, seconds=time.perf_counter() - start)


__all__ += ["VAEResult", "fit_vae"]
