"""``fit``: the GAN training loop around :func:`d_step` and :func:`g_step`, in labelled sections.

Taught in ``book/04_implementation.ipynb``. ``fit`` only organises the two steps (:mod:`.steps`):
device, speed levers, the data order, the EMA of G, logging, progress bar, samples from fixed noise,
checkpoints and exact resume. It is written in sections, as NVlabs' ``training_loop``, with no closures:
everything that changes lives in the :class:`~.loop.Run` (step, history, clock) or the
:class:`~.checkpoints.GANState` (networks, optimisers, scalers, EMA).

Exact resume: the batch order and every noise draw are functions of ``(seed, step)`` (:mod:`.batches`),
and a checkpoint holds every piece of state that changes, so a run stopped and resumed ends with the same
weights as one that never stopped (on the CPU; GPU kernels may be non-deterministic). Two runs of the same
seed from the same initial weights (``build_gan(..., seed=...)``) write byte-identical checkpoints.

Nothing is lost: a checkpoint is written every ``checkpoint_every`` steps (500 by default) and never with
non-finite weights or batch-norm statistics; a loss that turns NaN or infinite, or stays beyond
:data:`~.loop.EXPLODING_LOSS` for :data:`~.loop.EXPLODING_STEPS` steps, stops the run with a
``FloatingPointError`` that names the last good checkpoint, which is kept. Temporary files that a killed
run left in ``out_dir`` are removed when the next run starts.

The EMA of G follows NVlabs' half-life rule: after each step ``G_ema <- β G_ema + (1 - β) G`` with
``β = 0.5 ** (batch_size / h)`` for a half-life of ``h`` images (Karras et al. 2018,
https://arxiv.org/abs/1710.10196), and NVlabs' warm-up (``ema_rampup`` in stylegan2-ada and EDM, Karras
et al. 2022, https://arxiv.org/abs/2206.00364): ``h = min(ema_half_life, ema_rampup * n)``, with ``n`` the
images G was trained on before this step. Early on, a fixed ``h`` of 10,000 images would keep most of
the weight on the first, random iterates for hundreds of steps; with the warm-up the average spans the
last ``ema_rampup`` share of the run until it reaches ``ema_half_life``. ``β`` is a function of the step
alone, so a resumed run averages exactly as one that never stopped.

Learning-rate decay (``lr_decay_start``, as pix2pix and CycleGAN end their training): both learning rates
are constant for the first ``lr_decay_start`` share of ``steps`` and then fall linearly towards 0 at the
last step (:func:`lr_scale`), damping the oscillation of the last iterates; set before each step from the
step alone, so that a resume is exact as well.

Under ``torchrun`` (several processes, :mod:`.distributed`) ``fit`` trains with DistributedDataParallel:
each process takes its slice of every global batch (``batch_size``) and its rows of the batch's noise, G
and D are two DDP modules whose gradients are averaged in ``backward`` (D's never in G's step, where it is
frozen), and rank 0 alone keeps the EMA of G, takes the samples and writes the files. Its checkpoint is
the one a single process writes, and either resumes the other.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..losses import get_loss
from ..utils import (check_nonnegative_int, check_positive_float, check_positive_int, remove_stale_temp_files,
                     tune_cpu_allocator)
from . import distributed as dist
from .batches import Batches, step_generator
from .checkpoints import GANState, resume_gan, write_gan_checkpoint
from .config import CALLBACK_EVENTS, CHECKPOINT_NAME, TrainConfig, TrainResult
from .levers import (autocast_context, make_optimizers, make_scaler, resolve_channels_last, resolve_precision,
                     speed_settings)
from .loop import EXPLODING_LOSS, Run, check_callbacks
from .nets import call, unwrap
from .sampling import sample
from .steps import discriminator_update, generator_update

__all__ = ["fit", "ema_decay", "update_ema", "lr_scale"]


def ema_decay(batch_size: int, half_life_images: float, *, rampup: float | None = None,
              images_seen: int = 0) -> float:
    """Per-step EMA decay with a half-life of ``h`` images: ``β = 0.5 ** (batch_size / h)`` (Karras et al.).

    Without ``rampup``, ``h = half_life_images``. With it (NVlabs' warm-up), ``h = min(half_life_images,
    rampup * images_seen)``, ``images_seen`` being the images G was trained on before this update: the
    average then spans the last ``rampup`` share of training so far; ``β = 0`` (a copy of G) at 0 images.
    """
    check_positive_int("batch_size", batch_size)
    check_positive_float("half_life_images", half_life_images)
    h = half_life_images
    if rampup is not None:
        check_positive_float("rampup", rampup)
        check_nonnegative_int("images_seen", images_seen)
        h = min(h, rampup * images_seen)
    return 0.5 ** (batch_size / h) if h > 0 else 0.0


def lr_scale(step: int, steps: int, decay_start: float | None) -> float:
    """The factor on both learning rates for update ``step`` (0-based) of ``steps``.

    1 until ``s = round(decay_start * steps)`` updates are done, then ``(steps - step) / (steps - s)``: a
    linear fall that would reach 0 at ``steps`` (the last update still gets ``1 / (steps - s)``).
    ``decay_start=None``: always 1.
    """
    check_nonnegative_int("step", step)
    check_positive_int("steps", steps)
    if decay_start is None:
        return 1.0
    start = round(decay_start * steps)
    return 1.0 if step < start else max(0.0, (steps - step) / (steps - start))


def _set_lr(opt_g, opt_d, config: TrainConfig, step: int) -> None:
    scale = lr_scale(step, config.steps, config.lr_decay_start)
    for opt, lr in ((opt_g, config.lr_g), (opt_d, config.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr * scale


def update_ema(G_ema: AveragedModel, G: nn.Module, config: TrainConfig, step: int) -> None:
    """``G_ema <- β G_ema + (1 - β) G`` after step ``step + 1``, ``β`` from :func:`ema_decay` at that step
    (``AveragedModel`` copies G at its first update, when ``β`` is 0 anyway with a warm-up)."""
    decay = ema_decay(config.batch_size, config.ema_half_life, rampup=config.ema_rampup,
                      images_seen=step * config.batch_size)
    G_ema.multi_avg_fn = get_ema_multi_avg_fn(decay)
    G_ema.update_parameters(G)


def _check_arguments(G: Any, D: Any, config: Any, out_dir: Any, resume: Any, callbacks: Any) -> None:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not isinstance(G, nn.Module) or not hasattr(G, "z_dim"):
        raise TypeError("G must be an nn.Module with a `z_dim` attribute")
    if not isinstance(D, nn.Module):
        raise TypeError("D must be an nn.Module")
    if resume is True and out_dir is None:
        raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")
    check_callbacks(callbacks, CALLBACK_EVENTS)


def _callback_state(run: Run, state: GANState, config: TrainConfig, **extra: Any) -> SimpleNamespace:
    return SimpleNamespace(step=run.step, G=state.G, D=state.D,
                           G_ema=unwrap(state.G_ema) if state.G_ema is not None else None,
                           history=run.history, config=config, **extra)


def _save_grid(run: Run, images: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image

    nrow = max(1, int(math.sqrt(len(images))))
    run.write(path, lambda tmp: save_image(images, tmp, format="png", nrow=nrow, normalize=True,
                                           value_range=(-1, 1)))


def _take_samples(run: Run, state: GANState, config: TrainConfig, fixed_z: torch.Tensor,
                  samples: list, out_dir: Path | None) -> None:
    """Images of the fixed noise (from the EMA of G when there is one): kept, saved, sent to callbacks."""
    images = sample(state.G_ema if state.G_ema is not None else state.G, config.n_samples, z=fixed_z)
    samples.append((run.step, images))
    if out_dir is not None:
        _save_grid(run, images, out_dir / f"samples_{run.step:06d}.png")
    run.emit("on_sample", _callback_state(run, state, config, images=images))


def _all_finite(tensors: Iterable[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors if t.is_floating_point())


def _checkpoint(run: Run, state: GANState, config: TrainConfig, out_dir: Path) -> None:
    # a finite loss can still be followed by an update that overflows the weights, or the batch-norm
    # statistics (an inf running_var): never checkpoint those
    nets = [("G", state.G), ("D", state.D)] + ([("G_ema", state.G_ema)] if state.G_ema is not None else [])
    bad = [name for name, net in nets[:2] if not _all_finite(net.parameters())]
    if bad:
        raise run.diverged(f"{' and '.join(bad)} has non-finite weights")
    bad = [name for name, net in nets if not _all_finite(net.buffers()) or not _all_finite(net.parameters())]
    if bad:
        raise run.diverged(f"{' and '.join(bad)} has non-finite weights or batch-norm statistics")
    run.saved(write_gan_checkpoint(out_dir / CHECKPOINT_NAME, state, config, run.step, run.history))


def fit(G: nn.Module, D: nn.Module, data: Any, config: TrainConfig | None = None, *,
        out_dir: str | Path | None = None, resume: bool | str | Path = False,
        callbacks: Mapping[str, Iterable[Callable]] | None = None) -> TrainResult:
    """Train ``G`` against ``D`` on ``data`` (a tensor of images in [-1, 1], or a dataset of them).

    Args:
        G, D: the generator (with a ``z_dim`` attribute) and the discriminator (returning logits).
        data: images ``(N, C, H, W)`` in [-1, 1], a ``TensorDataset`` or any dataset of ``(image, label)``.
        config: a :class:`TrainConfig` (defaults when ``None``).
        out_dir: folder for ``checkpoint.pt`` and sample grids; ``None`` writes nothing.
        resume: ``True`` continues from ``out_dir/checkpoint.pt`` when it exists (and starts afresh when it
            does not); a path continues from that checkpoint. The config must match the checkpoint's except
            for steps, device, logging, sampling, checkpoint interval, time budget, progress bar and most
            speed levers, and G and D must be built as the checkpoint's (else a ``CheckpointError``). A
            resumed run's history has no ``seconds`` column: checkpoints do not keep the wall-clock.
        callbacks: ``{"on_step_end": [fn], "on_sample": [fn]}``; each ``fn(state)`` gets a namespace with
            ``step``, ``G``, ``D``, ``G_ema``, ``history``, ``config`` (and ``images`` for ``on_sample``).

    The modules are trained in place (moved to the config's device) and returned in the result. ``data``
    is checked where it enters: float, finite, and images in [-1, 1] (a ``UsageError`` otherwise; 0..255
    pixels go through ``ganlab.data.to_signed`` first). A diverging run stops with a ``FloatingPointError``
    (see the module docstring); an exploding loss stops it too, rather than warning, because the run is on
    its way to NaN and every further checkpoint would replace a good one with exploded weights.
    """
    # ---- arguments
    config = config if config is not None else TrainConfig()
    out_dir = Path(out_dir) if out_dir is not None else None
    _check_arguments(G, D, config, out_dir, resume, callbacks)

    # ---- setup: device, speed levers, data order, networks, optimisers, EMA
    device = dist.local_device(config.device)                # under torchrun: this process's own device
    precision = resolve_precision(device, config.precision)
    autocast = autocast_context(device, precision)
    levers = speed_settings(config, device, D=D)
    if levers["tune_allocator"]:
        tune_cpu_allocator()
    batches = Batches(data, config.batch_size, config.seed, distributed=True)  # this process's share
    batches.check("data")
    layout = torch.channels_last if resolve_channels_last(config.channels_last, batches(0)[0]) \
        else torch.contiguous_format
    G.to(device, memory_format=layout).train()
    D.to(device, memory_format=layout).train()
    d_loss_fn, g_loss_fn = get_loss(config.loss)
    opt_g, opt_d = make_optimizers(G, D, config)
    G_ema = None
    if config.ema_half_life is not None and dist.is_main():  # decay set at each update; rank 0 alone samples
        G_ema = AveragedModel(G, multi_avg_fn=get_ema_multi_avg_fn(0.0), use_buffers=True)
    state = GANState(G=G, D=D, opt_g=opt_g, opt_d=opt_d, scaler_g=make_scaler(device, precision),
                     scaler_d=make_scaler(device, precision), G_ema=G_ema)
    # what the loop calls: G and D in DDP under torchrun, compiled if asked; they share their parameters
    # with G and D. Penalties need double backward, which compiled graphs and SyncBatchNorm lack, so they
    # call the eager D, and a penalised D keeps per-process batch-norm statistics
    penalised = config.gp_weight > 0 or config.r1_weight > 0
    G_run = dist.prepare(G, compile=config.compile)
    D_run = dist.prepare(D, compile=config.compile, sync_batchnorm=not penalised)
    conditional = getattr(G, "num_classes", None) is not None
    if conditional and batches.labels is None and batches.dataset is None:
        raise ValueError("data: G is class-conditional but the data has no labels")

    # ---- resume (after clearing the temporary files of a run killed mid-write)
    if out_dir is not None and dist.is_main():
        remove_stale_temp_files(out_dir, (CHECKPOINT_NAME, "samples_*.png"))
    step, history, resumed_from = 0, {}, None
    if resume is not False:
        path = Path(resume) if resume is not True else out_dir / CHECKPOINT_NAME
        step, history = resume_gan(path, state, config, device, missing_ok=resume is True)
        resumed_from = path if step else None  # a missing file (resume=True) starts afresh
    fixed_z = torch.randn(config.n_samples, G.z_dim, generator=torch.Generator().manual_seed(config.seed))
    samples: list[tuple[int, torch.Tensor]] = []

    # ---- loop: n_critic steps of D, then one of G on D's last generated batch
    with Run(steps=config.steps, step=step, history=history, log_every=config.log_every,
             max_minutes=config.max_minutes, progress=config.progress, desc="training",
             postfix={"d_loss": ".3f", "g_loss": ".3f"}, callbacks=callbacks, events=CALLBACK_EVENTS,
             checkpoints=True, explode_at=EXPLODING_LOSS, timed=not history or "seconds" in history,
             advice="Lower the learning rates or use a bounded loss (hinge, least_squares).",
             distributed=True, resumed_from=resumed_from) as run:
        while run.running():
            if config.lr_decay_start is not None:
                _set_lr(opt_g, opt_d, config, run.step)
            for j in range(config.n_critic):
                index = run.step * config.n_critic + j            # batch and noise are functions of it
                gen = step_generator(config.seed, index)
                real, labels = batches(index)
                real = real.to(device, non_blocking=True, memory_format=layout)   # (B, C, H, W)
                if conditional and labels is None:
                    raise ValueError("data: G is class-conditional but the data has no labels")
                labels = labels.to(device, non_blocking=True) if conditional else None
                last = j == config.n_critic - 1
                with autocast, torch.set_grad_enabled(last):  # only the last batch feeds G's step
                    fake = call(G_run, batches.noise(G.z_dim, device, gen), labels)  # (B, C, H, W)
                d_stats = discriminator_update(
                    G_run, D_run, real, opt_d, d_loss_fn, labels=labels, fake=fake, gp_weight=config.gp_weight,
                    r1_weight=config.r1_weight, augment=config.augment, scaler=state.scaler_d, autocast=autocast,
                    generator=gen, penalty_D=D, joint=levers["joint_d_batch"])
            # G's step reuses the last generated batch, still attached to G's graph (as pytorch/examples)
            g_stats = generator_update(
                G_run, D_run, config.batch_size, opt_g, g_loss_fn, labels=labels, fake=fake,
                augment=config.augment, scaler=state.scaler_g, autocast=autocast, generator=gen,
                skip_d_grads=config.skip_d_grads)
            if G_ema is not None:
                update_ema(G_ema, G, config, run.step)
            run.end_step({**d_stats, **g_stats}, finite=("d_loss", "g_loss"))
            if run.due(config.sample_every) and run.main:
                _take_samples(run, state, config, fixed_z, samples, out_dir)
            if out_dir is not None and run.due(config.checkpoint_every):
                _checkpoint(run, state, config, out_dir)
            run.emit("on_step_end", _callback_state(run, state, config))

    # ---- finish: samples and a checkpoint of the last step
    if run.main and (not samples or samples[-1][0] != run.step):
        _take_samples(run, state, config, fixed_z, samples, out_dir)
    if out_dir is not None and run.checkpoint_step != run.step:
        _checkpoint(run, state, config, out_dir)
    return TrainResult(G=G, D=D, G_ema=copy.deepcopy(unwrap(G_ema)) if G_ema is not None else None,
                       history=run.history, samples=samples, step=run.step, config=config, stopped=run.stopped,
                       seconds=run.seconds, checkpoint=run.checkpoint)
