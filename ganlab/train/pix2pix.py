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

The data is a fixed set of pairs (a :class:`ganlab.data.PairedDataset`) or an endless stream whose
``batch(index, batch_size, seed=...)`` makes each batch afresh (:class:`ganlab.data.PhotoPatches`, crops
of photographs degraded on the fly). With ``out_dir`` a run writes ``checkpoint.pt`` every
``checkpoint_every`` steps (never with non-finite weights) and resumes exactly: the batches and the
cosine learning rate are functions of the step, and the checkpoint holds the networks, both optimisers,
the config, the history and the caller's ``meta`` (``python -m ganlab train restore`` keeps the task
there). :func:`load_pix2pix_generator` rebuilds the trained ``G`` from it (``weights_only=True``).

Under ``torchrun`` it trains with DistributedDataParallel as ``ganlab.fit`` does (:mod:`.distributed`):
each process takes its rows of every global batch (``batch_size``), G and D are DDP modules, and rank 0
alone keeps the EMA and writes the checkpoint, which is the one a single process writes.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import TensorDataset

from ..checkpoint import CheckpointError, checkpoint_entry, load_checkpoint, save_checkpoint
from ..errors import one_line
from ..losses import get_loss
from ..utils import (check_nonnegative_int, check_positive_float, get_device, remove_stale_temp_files,
                     tune_cpu_allocator)
from . import distributed as dist
from .batches import Batches, check_training_images
from .checkpoints import arg_differences, averaged_weights, load_weights, read_on_main
from .gan import update_ema
from .config import (CHECKPOINT_NAME, check_adam_fields, check_run_fields, check_weight, config_to_dict,
                     known_fields)
from .levers import autocast_context, make_scaler, resolve_precision
from .loop import Run, check_callbacks
from .steps import as_floats, frozen, optimizer_step

__all__ = ["Pix2PixConfig", "Pix2PixResult", "translation_step", "translation_update", "fit_pix2pix",
           "cosine_lr_scale", "load_pix2pix_generator", "PIX2PIX_GENERATORS", "PIX2PIX_RESUMABLE"]


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
    checkpoint_every: int = 500         # steps between checkpoints (needs out_dir); 0: only at the end
    ema_half_life: float | None = None  # an EMA of G, half-life in images (ganlab.fit's rule); None: no EMA
    ema_rampup: float | None = None     # its warm-up, as in TrainConfig; None: none
    max_minutes: float | None = None    # wall-clock budget; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_run_fields(self)
        check_adam_fields(self)
        get_loss(self.loss)  # raises a ValueError naming `loss`
        check_weight("adv_weight", self.adv_weight)
        check_nonnegative_int("checkpoint_every", self.checkpoint_every)
        for name in ("ema_half_life", "ema_rampup"):
            if getattr(self, name) is not None:
                check_positive_float(name, getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Pix2PixConfig":
        return cls(**known_fields(cls, d))


# the fields that may change between a run and its resume without changing what it computes
PIX2PIX_RESUMABLE = frozenset({"steps", "device", "log_every", "checkpoint_every", "max_minutes", "progress"})


@dataclass
class Pix2PixResult:
    """What :func:`fit_pix2pix` returns."""

    G: nn.Module                        # the trained generator
    D: nn.Module | None                 # the trained discriminator (None for an L1-only run)
    G_ema: nn.Module | None             # the EMA of G (a plain copy of G's class), or None
    history: dict[str, list[float]]     # logged values, one entry every `log_every` steps
    step: int                           # steps done
    config: Pix2PixConfig
    stopped: str                        # "steps" (finished) or "time" (max_minutes reached)
    seconds: float                      # wall-clock time of the run
    checkpoint: Path | None = None      # the last checkpoint written, if any

    @property
    def generator(self) -> nn.Module:
        """The restorer to use: the EMA copy when there is one."""
        return self.G_ema if self.G_ema is not None else self.G


def cosine_lr_scale(step: int, steps: int) -> float:
    """The factor on the learning rates for update ``step`` (0-based) of ``steps``: ``(1 + cos(pi step /
    steps)) / 2``, from 1 at the first update towards 0 at the last (Loshchilov & Hutter 2017)."""
    return 0.5 * (1.0 + math.cos(math.pi * step / steps))


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
        if inputs.shape[-2:] != fake.shape[-2:]:  # super-resolution: D sees the input enlarged to the output's size
            inputs = F.interpolate(inputs, size=fake.shape[-2:], mode="nearest")
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
    if hasattr(data, "batch") and callable(data.batch):
        return data  # a stream: batch(index, batch_size, seed=...) -> (inputs, targets)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        data = TensorDataset(*data)
    if not isinstance(data, TensorDataset) or len(data.tensors) != 2:
        raise TypeError("data must be a PairedDataset, a TensorDataset(inputs, targets), a pair of tensors or a "
                        "stream with batch(index, batch_size, seed=...) (e.g. ganlab.data.PhotoPatches)")
    return data


# the generator classes a pix2pix checkpoint may name: class name -> class
class _StreamBatches:
    """Batch ``index`` of a stream (``data.batch(index, batch_size, seed=...)``), as ``Batches`` hands out
    a tensor dataset's: under torchrun each process makes the whole global batch and keeps its own rows, so
    the processes together train on exactly what one process would."""

    def __init__(self, data: Any, batch_size: int, seed: int) -> None:
        world = dist.world_size()
        if batch_size % world:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of the number of processes "
                             f"({world}): each takes an equal part of every batch")
        part = batch_size // world
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.local = slice(dist.rank() * part, (dist.rank() + 1) * part)

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        inputs, targets = self.data.batch(index, self.batch_size, seed=self.seed)
        return inputs[self.local], targets[self.local]


def _generators() -> dict[str, type[nn.Module]]:
    from ..models.pix2pix import RestorationUNet, UNetGenerator

    return {"UNetGenerator": UNetGenerator, "RestorationUNet": RestorationUNet}


PIX2PIX_GENERATORS = ("UNetGenerator", "RestorationUNet")


def _all_finite(net: nn.Module | None) -> bool:
    return net is None or all(bool(torch.isfinite(t).all()) for t in [*net.parameters(), *net.buffers()]
                              if t.is_floating_point())


def _write_checkpoint(run: Run, path: Path, G: nn.Module, D: nn.Module | None, G_ema: nn.Module | None, opt_g,
                      opt_d, config: Pix2PixConfig, meta: dict[str, Any]) -> None:
    bad = [name for name, net in (("G", G), ("D", D), ("G_ema", G_ema)) if not _all_finite(net)]
    if bad:
        raise run.diverged(f"{' and '.join(bad)} has non-finite weights")
    run.saved(save_checkpoint(
        path, kind="pix2pix", g_class=type(G).__name__, g_args=getattr(G, "model_args", None),
        d_class=type(D).__name__ if D is not None else None,
        d_args=getattr(D, "model_args", None) if D is not None else None,
        G=G, D=D.state_dict() if D is not None else None, G_ema=G_ema.state_dict() if G_ema is not None else None,
        opt_g=opt_g, opt_d=opt_d.state_dict() if opt_d is not None else None, config=config.to_dict(),
        step=run.step, history={k: v for k, v in run.history.items() if k != "seconds"}, meta=dict(meta)))


def _resume(path: Path, G: nn.Module, D: nn.Module | None, G_ema: nn.Module | None, opt_g, opt_d,
            config: Pix2PixConfig, device: torch.device) -> tuple[int, dict[str, list[float]]]:
    saved = read_on_main(path, device)   # under torchrun: read by rank 0, handed to every process
    if saved.get("kind") != "pix2pix":
        raise CheckpointError(f"{path} is not a checkpoint of an image-to-image (pix2pix) run")
    try:
        old = Pix2PixConfig.from_dict(checkpoint_entry(saved, "config", dict, path)).to_dict()
    except (ValueError, TypeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: its config is not a valid Pix2PixConfig ({one_line(exc)})") from None
    differ = [k for k, v in config.to_dict().items() if k not in PIX2PIX_RESUMABLE and old[k] != v]
    if differ:
        raise CheckpointError(f"resume: the config differs from the checkpoint's in {', '.join(differ)} "
                              f"({', '.join(f'{k}={old[k]!r}' for k in differ)} in {path})")
    for name, net in (("g", G), ("d", D)):
        args = getattr(net, "model_args", None) if net is not None else None
        saved_args = saved.get(f"{name}_args")
        if isinstance(args, dict) and isinstance(saved_args, dict) and arg_differences(saved_args, args):
            what = ", ".join(f"{k}={a!r} (not {b!r})" for k, (a, b) in arg_differences(saved_args, args).items())
            raise CheckpointError(f"{path} was trained with a {name.upper()} of other arguments: {what}")
    load_weights(G, checkpoint_entry(saved, "G", dict, path), "G", path)
    load_weights(opt_g, checkpoint_entry(saved, "opt_g", dict, path), "opt_g", path)
    if D is not None:
        load_weights(D, checkpoint_entry(saved, "D", dict, path), "D", path)
        load_weights(opt_d, checkpoint_entry(saved, "opt_d", dict, path), "opt_d", path)
    if G_ema is not None:
        load_weights(G_ema, checkpoint_entry(saved, "G_ema", dict, path), "G_ema", path)
    step = checkpoint_entry(saved, "step", int, path)
    history = checkpoint_entry(saved, "history", dict, path)
    if step < 0 or not all(isinstance(v, list) for v in history.values()):
        raise CheckpointError(f"{path}: its step ({step}) or history is malformed")
    return step, {k: list(v) for k, v in history.items()}


def load_pix2pix_generator(checkpoint: str | Path, *, device: str | torch.device = "cpu"
                           ) -> tuple[nn.Module, dict[str, Any]]:
    """The trained ``G`` of a checkpoint written by :func:`fit_pix2pix` (its EMA weights when it kept an
    EMA; in eval mode), and its ``meta``.

    A missing file raises ``FileNotFoundError``; a damaged or foreign one, or one whose weights are not
    finite, a :class:`ganlab.checkpoint.CheckpointError` naming it.
    """
    device = get_device(device)
    saved = load_checkpoint(checkpoint, map_location="cpu")
    if saved.get("kind") != "pix2pix":
        raise CheckpointError(f"{checkpoint} is not a checkpoint of an image-to-image run (`ganlab train "
                              f"restore` writes those)")
    cls = _generators().get(saved.get("g_class"))
    if cls is None:
        raise CheckpointError(f"{checkpoint}: its g_class {saved.get('g_class')!r} is not one of "
                              f"{', '.join(PIX2PIX_GENERATORS)}")
    args = checkpoint_entry(saved, "g_args", dict, checkpoint)
    try:
        G = cls(**args)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{checkpoint}: its g_args do not build a {cls.__name__} ({one_line(exc)})") from None
    if isinstance(saved.get("G_ema"), dict):
        name = "G_ema"
        weights = averaged_weights(saved["G_ema"])
    else:
        name, weights = "G", checkpoint_entry(saved, "G", dict, checkpoint)
    load_weights(G, weights, name, Path(checkpoint))
    meta = saved.get("meta") if isinstance(saved.get("meta"), dict) else {}
    return G.to(device).eval(), meta


def fit_pix2pix(G: nn.Module, D: nn.Module | None, data: Any, config: Pix2PixConfig | None = None, *,
                out_dir: str | Path | None = None, resume: bool = False, meta: dict[str, Any] | None = None,
                callbacks: dict[str, list[Callable]] | None = None) -> Pix2PixResult:
    """Train ``G`` (input -> output) with L1 plus ``config.adv_weight`` times the adversarial loss of ``D``.

    Args:
        G: an image-to-image generator, e.g. :class:`ganlab.models.UNetGenerator` or
            :class:`ganlab.models.RestorationUNet`.
        D: a conditional discriminator ``D(output, input) -> logits``, e.g.
            :class:`ganlab.models.PatchGANDiscriminator`; ``None`` when ``config.adv_weight == 0``.
        data: a :class:`ganlab.data.PairedDataset`, a ``TensorDataset(inputs, targets)``, a pair
            ``(inputs, targets)`` of tensors in [-1, 1], or a stream with ``batch(index, batch_size,
            seed=...)`` such as :class:`ganlab.data.PhotoPatches` with a degradation.
        config: a :class:`Pix2PixConfig` (defaults when ``None``).
        out_dir: folder for ``checkpoint.pt`` (every ``config.checkpoint_every`` steps and at the end);
            ``None`` writes nothing.
        resume: continue from ``out_dir/checkpoint.pt`` (which must exist); the config must match the
            checkpoint's except for :data:`PIX2PIX_RESUMABLE`, and the networks its arguments.
        meta: plain data saved with the checkpoint (for example the task of a restorer).
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
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")
    check_callbacks(callbacks, ("on_step_end",))
    data = _paired(data)
    if isinstance(data, TensorDataset):
        check_training_images("data inputs", data.tensors[0], pixel_range=False)  # noisy inputs may leave [-1, 1]
        check_training_images("data targets", data.tensors[1])
        batches = Batches(data, config.batch_size, config.seed, distributed=True)  # this process's share
    else:
        batches = _StreamBatches(data, config.batch_size, config.seed)
        first_inputs, first_targets = batches(0)
        check_training_images("data inputs", first_inputs, pixel_range=False)
        check_training_images("data targets", first_targets)
    use_d = config.adv_weight > 0
    D = D if use_d else None

    # ---- setup
    device = dist.local_device(config.device)   # under torchrun: this process's own device
    precision = resolve_precision(device, config.precision)
    autocast = autocast_context(device, precision)
    if device.type == "cpu":
        tune_cpu_allocator()  # keep freed activations in the heap: fewer page faults per step (ganlab.fit's lever)
    G.to(device).train()
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = None
    if use_d:
        D.to(device).train()
        opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    scaler_g, scaler_d = make_scaler(device, precision), make_scaler(device, precision)
    d_loss_fn, g_loss_fn = get_loss(config.loss)
    G_ema = None
    if config.ema_half_life is not None and dist.is_main():  # decay set at each update (ganlab.fit's)
        G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.0), use_buffers=True)
    G_run, D_run = dist.prepare(G), (dist.prepare(D) if use_d else None)  # in DDP under torchrun
    step, history = 0, {}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if dist.is_main():
            remove_stale_temp_files(out_dir, (CHECKPOINT_NAME,))
        if resume:
            step, history = _resume(out_dir / CHECKPOINT_NAME, G, D, G_ema, opt_g, opt_d, config, device)

    # ---- loop
    with Run(steps=config.steps, step=step, history=history, log_every=config.log_every,
             max_minutes=config.max_minutes, progress=config.progress,
             desc="pix2pix (L1 + adversarial)" if use_d else "L1 only", postfix={"l1": ".4f"},
             check_logged=True, callbacks=callbacks, checkpoints=out_dir is not None,
             timed=not history or "seconds" in history, advice="Lower the learning rates.",
             distributed=True, resumed_from=out_dir / CHECKPOINT_NAME if step else None) as run:
        while run.running():
            if config.lr_decay:  # set from the step alone, so that a resumed run decays as an unbroken one
                scale = cosine_lr_scale(run.step, config.steps)
                for opt, lr in ((opt_g, config.lr_g), (opt_d, config.lr_d)):
                    for group in (opt.param_groups if opt is not None else []):
                        group["lr"] = lr * scale
            inputs, targets = batches(run.step)
            stats = translation_update(G_run, D_run, inputs.to(device), targets.to(device), opt_g, opt_d,
                                       d_loss_fn, g_loss_fn, adv_weight=config.adv_weight, autocast=autocast,
                                       scaler_g=scaler_g, scaler_d=scaler_d)
            if G_ema is not None:
                update_ema(G_ema, G, config, run.step)
            run.end_step(stats)
            if out_dir is not None and run.due(config.checkpoint_every):
                _write_checkpoint(run, out_dir / CHECKPOINT_NAME, G, D, G_ema, opt_g, opt_d, config, meta or {})
            run.emit("on_step_end", SimpleNamespace(step=run.step, G=G, D=D, history=run.history))
        if out_dir is not None and run.checkpoint_step != run.step:
            _write_checkpoint(run, out_dir / CHECKPOINT_NAME, G, D, G_ema, opt_g, opt_d, config, meta or {})
    return Pix2PixResult(G=G, D=D, G_ema=copy.deepcopy(G_ema.module) if G_ema is not None else None,
                         history=run.history, step=run.step, config=config, stopped=run.stopped,
                         seconds=run.seconds, checkpoint=run.checkpoint)
