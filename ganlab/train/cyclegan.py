"""CycleGAN: unpaired image-to-image translation with two generators and a cycle-consistency loss.

Taught in ``book/05c_unpaired_translation.ipynb``. Zhu et al. 2017 (https://arxiv.org/abs/1703.10593)
learn a map ``G_AB`` from domain A to domain B and one back, ``G_BA``, from two sets of images that are
*not* paired, with a discriminator per domain (``D_A``, ``D_B``). With ``a`` from A and ``b`` from B,
one step minimises for the generators

    L_G = ‖D_B(G_AB(a)) - 1‖²  +  ‖D_A(G_BA(b)) - 1‖²                       (least-squares GAN, Mao et al.)
        + λ (‖G_BA(G_AB(a)) - a‖₁ + ‖G_AB(G_BA(b)) - b‖₁)                    (cycle consistency)
        + λ_idt (‖G_AB(b) - b‖₁ + ‖G_BA(a) - a‖₁)                             (identity)

(every norm a mean over pixels), and then for the discriminators

    L_D = ½ ‖D_A(a) - 1‖² + ½ ‖D_A(ã)‖²  +  ½ ‖D_B(b) - 1‖² + ½ ‖D_B(b̃)‖²

where ``ã`` and ``b̃`` are drawn from a replay buffer of the last generated images (:class:`ImagePool`).
The adversarial terms alone only ask that ``G_AB(a)`` look like *some* image of B; the cycle term asks
that ``G_BA`` can bring it back to ``a``, so the translation must keep what identifies ``a``. The
identity term asks a generator to leave an image of its target domain alone, which stops it from
changing what need not change (the paper used it to keep the colours of paintings).

The settings are the reference code's (junyanz/pytorch-CycleGAN-and-pix2pix): ``λ = 10``, the identity
weight ``λ_idt = 0.5 λ = 5`` (its ``lambda_identity`` is relative to ``λ``; here it is absolute),
Adam(2e-4, β = (0.5, 0.999)) for both pairs, a buffer of 50 images, and learning rates constant for the
first half of the run and then falling linearly towards 0 (:func:`ganlab.train.lr_scale`). ganlab's
``g_least_squares`` is ``½ (f - 1)²``; the reference's generator loss, ``(f - 1)²``, is twice it, which
is what is used here so that ``λ = 10`` weighs the same.

With ``ema_half_life`` set, the loop also keeps an exponential moving average of each generator's weights,
by the half-life rule and warm-up of ``ganlab.fit``'s EMA of G (``update_ema``); :meth:`CycleGANResult.generator`,
:func:`load_cyclegan_generator` and so ``ganlab translate`` translate with it. The recipe
(:data:`ganlab.recipes.MNIST_MNISTM`) asks for it: a short run's generators still swing from step to step,
and a run that stopped on a bad swing lost a third of its digits.

Both domains have ``channels`` channels (3): a grey domain is fed as its grey value in all three, so that
either generator can be given either domain's images, as the identity term needs (the reference code
asserts equal channels for it too). :func:`fit_cyclegan` loops over :func:`cyclegan_update` on the shared
run skeleton (:mod:`.loop`), with checkpoints and exact resume as ``ganlab.fit``: the batches of each
domain and the buffer's draws are functions of ``(seed, step)``, and a checkpoint holds the four
networks, both optimisers, both buffers, the EMAs, the config, the step and the history, so a run stopped and
resumed ends with the same weights as one that never stopped (on the CPU).

Under ``torchrun`` (several processes, :mod:`.distributed`) :func:`fit_cyclegan` trains with
DistributedDataParallel: each process takes its slice of every global batch of both domains, the four
networks are DDP modules whose gradients are averaged in ``backward`` (the discriminators' never in the
generators' step, where they are frozen), each process keeps its own replay buffers, and rank 0 alone
writes the checkpoint (its buffers with it).
"""
from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..checkpoint import CheckpointError, checkpoint_entry, load_checkpoint, save_checkpoint
from ..data import to_channels
from ..errors import one_line
from ..losses import d_least_squares, g_least_squares
from ..models import CycleGANNets, build_cyclegan
from ..utils import (check_nonnegative_int, check_positive_float, check_probability, get_device,
                     remove_stale_temp_files)
from .batches import Batches, check_training_images, step_generator
from . import distributed as dist
from .checkpoints import averaged_weights, check_same_args, config_differences, load_weights, read_on_main
from .config import CHECKPOINT_NAME, check_adam_fields, check_run_fields, check_weight, config_to_dict
from .gan import lr_scale, update_ema
from .levers import autocast_context, make_scaler, resolve_precision
from .loop import EXPLODING_LOSS, Run, check_callbacks
from .steps import frozen, optimizer_step

__all__ = ["CycleGANConfig", "CycleGANResult", "CycleGANCheckpoint", "ImagePool", "cyclegan_update",
           "fit_cyclegan", "load_cyclegan", "load_cyclegan_generator", "DIRECTIONS"]

DIRECTIONS = ("a2b", "b2a")
MODEL_NAME = "cyclegan"  # the checkpoint's `model` entry


@dataclass
class CycleGANConfig:
    """Every setting of a CycleGAN run (the fields shared with ``TrainConfig`` mean the same)."""

    steps: int = 1_000                  # updates of both generators (and of both discriminators)
    batch_size: int = 16                # images of each domain per step (the reference code's is 1)
    lr_g: float = 2e-4                  # Adam learning rate of both generators
    lr_d: float = 2e-4                  # Adam learning rate of both discriminators
    betas: tuple[float, float] = (0.5, 0.999)  # the reference code's Adam
    cycle_weight: float = 10.0          # λ, on both cycle-consistency terms; 0: no cycle loss
    cycle_weight_b: float | None = None  # λ_B on the B -> A -> B term alone; None: λ (the reference code's
                                        # lambda_A and lambda_B, both 10 by default)
    identity_weight: float = 5.0        # λ_idt, on both identity terms (the reference's 0.5 λ); 0: none
    pool_size: int = 50                 # generated images each discriminator's replay buffer keeps; 0: none
    ema_half_life: float | None = None  # an EMA of each generator, half-life in images (as TrainConfig's, for
                                        # G_AB and G_BA alike); translations use it; None disables
    ema_rampup: float | None = None     # its warm-up: half-life min(ema_half_life, ema_rampup x images seen)
    lr_decay_start: float | None = 0.5  # share of `steps` after which both rates fall linearly towards 0;
                                        # None: constant (the reference: 100 epochs constant, 100 decaying)
    device: str = "auto"                # "auto" (cuda > mps > cpu), or a torch device string
    precision: str = "fp32"             # "fp32", "bf16", "fp16" or "auto", as in TrainConfig; a no-op on the CPU
    seed: int = 0                       # seeds the batch orders and the buffers' draws (weights: build_cyclegan)
    log_every: int = 10                 # steps between history entries
    checkpoint_every: int = 500         # steps between checkpoints (needs out_dir); 0: only at the end
    max_minutes: float | None = None    # wall-clock budget of this call; None: no limit
    progress: bool = True               # show a tqdm progress bar

    def __post_init__(self) -> None:
        check_run_fields(self)
        check_adam_fields(self)
        check_weight("cycle_weight", self.cycle_weight)
        if self.cycle_weight_b is not None:
            check_weight("cycle_weight_b", self.cycle_weight_b)
        check_weight("identity_weight", self.identity_weight)
        check_nonnegative_int("pool_size", self.pool_size)
        if self.ema_half_life is not None:
            check_positive_float("ema_half_life", self.ema_half_life)
        if self.ema_rampup is not None:
            check_positive_float("ema_rampup", self.ema_rampup)
        if self.lr_decay_start is not None:
            check_probability("lr_decay_start", self.lr_decay_start)
        check_nonnegative_int("checkpoint_every", self.checkpoint_every)

    def to_dict(self) -> dict[str, Any]:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CycleGANConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"config: unknown field(s) {', '.join(unknown)}")
        return cls(**d)


@dataclass
class CycleGANResult:
    """What :func:`fit_cyclegan` returns."""

    nets: CycleGANNets                  # the trained G_AB, G_BA, D_A, D_B
    history: dict[str, list[float]]     # logged values, one entry every `log_every` steps
    step: int                           # steps done in total
    config: CycleGANConfig
    stopped: str                        # "steps" (finished) or "time" (max_minutes reached)
    seconds: float                      # wall-clock time of this call
    checkpoint: Path | None = None      # the last checkpoint written, if any
    G_AB_ema: nn.Module | None = None   # the EMA of G_AB (a plain copy of its class), when the config asks
    G_BA_ema: nn.Module | None = None   # the EMA of G_BA

    def generator(self, direction: str, *, ema: bool = True) -> nn.Module:
        """The generator to translate with: G_AB for ``"a2b"``, G_BA for ``"b2a"``; its EMA when the run
        kept one (unless ``ema=False``)."""
        return _pick(direction, self.nets, self.G_AB_ema, self.G_BA_ema, ema)


def _pick(direction: str, nets: CycleGANNets, G_AB_ema: nn.Module | None, G_BA_ema: nn.Module | None,
          ema: bool) -> nn.Module:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}; got {direction!r}")
    trained, averaged = (nets.G_AB, G_AB_ema) if direction == "a2b" else (nets.G_BA, G_BA_ema)
    return averaged if ema and averaged is not None else trained


class ImagePool:
    """The replay buffer of generated images (Shrivastava et al. 2017, https://arxiv.org/abs/1612.07828).

    The discriminator is shown generated images from a history of ``size`` earlier ones, not only the
    latest batch, so that it cannot chase the generator's last move and the two oscillate less. As the
    reference code's ``ImagePool``: while the buffer is not full each new image is stored and passed on;
    once it is full, each new image is, with probability ½, swapped for a stored one picked uniformly
    (the stored one is passed on, the new one kept), and otherwise passed on as it is. ``size=0`` passes
    every batch through. The draws come from the ``generator`` given to :meth:`query`, so a run's buffer
    is a function of its seed and step, and :meth:`state_dict` puts the images into a checkpoint.
    """

    def __init__(self, size: int = 50) -> None:
        self.size = check_nonnegative_int("size", size)
        self.images: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def query(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The batch for the discriminator: ``images`` ``(B, C, H, W)``, some swapped for stored ones."""
        if self.size == 0:
            return images.detach()  # the discriminators' step never reaches back into the generators
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif float(torch.rand((), generator=generator)) < 0.5:
                i = int(torch.randint(self.size, (), generator=generator))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        return {"size": self.size, "images": torch.stack(self.images) if self.images else torch.empty(0)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        images = state.get("images")
        if state.get("size") != self.size or not isinstance(images, torch.Tensor) or len(images) > self.size:
            raise ValueError(f"the buffer state does not fit a buffer of size {self.size}")
        self.images = [x.clone() for x in images] if images.numel() else []


def _l1(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (x.float() - y.float()).abs().mean()


def cyclegan_update(nets: CycleGANNets, a: torch.Tensor, b: torch.Tensor, opt_g: torch.optim.Optimizer,
                    opt_d: torch.optim.Optimizer, *, cycle_weight: float = 10.0, identity_weight: float = 5.0,
                    cycle_weight_b: float | None = None,
                    pool_a: ImagePool | None = None, pool_b: ImagePool | None = None,
                    generator: torch.Generator | None = None, autocast=None, scaler_g=None,
                    scaler_d=None) -> dict[str, torch.Tensor]:
    """One CycleGAN step on batches ``a`` (domain A) and ``b`` (domain B): both generators, then both
    discriminators on the buffers' images (see the module docstring for the losses). Returns tensors:
    ``g_adv``, ``cycle``, ``identity`` (the unweighted L1 terms, summed over both directions), ``g_loss``
    and ``d_loss``."""
    G_AB, G_BA, D_A, D_B = nets
    autocast = autocast if autocast is not None else nullcontext()
    # ---- the generators: D_A and D_B are constants here
    with autocast, frozen(D_A), frozen(D_B):
        fake_b, fake_a = G_AB(a), G_BA(b)                       # translations, (B, C, H, W)
        adv = 2.0 * (g_least_squares(D_B(fake_b).float()) + g_least_squares(D_A(fake_a).float()))
        zero = adv.new_zeros(())
        weight_b = cycle_weight if cycle_weight_b is None else cycle_weight_b
        cycle_a = _l1(G_BA(fake_b), a) if cycle_weight > 0 else zero    # A -> B -> A
        cycle_b = _l1(G_AB(fake_a), b) if weight_b > 0 else zero        # B -> A -> B
        identity = _l1(G_AB(b), b) + _l1(G_BA(a), a) if identity_weight > 0 else zero
        g_loss = adv + cycle_weight * cycle_a + weight_b * cycle_b + identity_weight * identity
        cycle = cycle_a + cycle_b
    optimizer_step(g_loss, opt_g, scaler_g)
    # ---- the discriminators, on real images and on generated ones from the buffers
    fake_a = pool_a.query(fake_a, generator) if pool_a is not None else fake_a.detach()
    fake_b = pool_b.query(fake_b, generator) if pool_b is not None else fake_b.detach()
    with autocast:
        d_loss = d_least_squares(D_A(a).float(), D_A(fake_a).float()) \
            + d_least_squares(D_B(b).float(), D_B(fake_b).float())
    optimizer_step(d_loss, opt_d, scaler_d)
    return {"g_adv": adv.detach(), "cycle": cycle.detach(), "identity": identity.detach(),
            "g_loss": g_loss.detach(), "d_loss": d_loss.detach()}


@dataclass
class _State:
    """Everything of a CycleGAN run that a checkpoint holds and a resume restores."""

    nets: CycleGANNets
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    pool_a: ImagePool
    pool_b: ImagePool
    emas: dict[str, AveragedModel]      # "G_AB_ema", "G_BA_ema" when the config asks for them (rank 0 only)

    def entries(self) -> dict[str, Any]:
        return {**self.nets._asdict(), "opt_g": self.opt_g, "opt_d": self.opt_d, "scaler_g": self.scaler_g,
                "scaler_d": self.scaler_d, "pool_a": self.pool_a, "pool_b": self.pool_b, **self.emas}


def _write_checkpoint(path: Path, state: _State, config: CycleGANConfig, step: int,
                      history: dict[str, list[float]], images: dict[str, int]) -> Path:
    return save_checkpoint(
        path, model=MODEL_NAME, g_args=getattr(state.nets.G_AB, "model_args", None),
        d_args=getattr(state.nets.D_A, "model_args", None), **state.entries(), config=config.to_dict(),
        images=images, step=step,
        history={k: v for k, v in history.items() if k != "seconds"})  # the wall-clock is not the seed's


def _saved_config(saved: dict[str, Any], path: Path) -> CycleGANConfig:
    if saved.get("model") != MODEL_NAME:
        raise CheckpointError(f"{path} holds a {saved.get('model')!r} run, not a CycleGAN")
    try:
        return CycleGANConfig.from_dict(checkpoint_entry(saved, "config", dict, path))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its config is not a valid CycleGANConfig ({one_line(exc)})") from None


def _resume(path: Path, state: _State, config: CycleGANConfig, device: torch.device, *,
            missing_ok: bool = False) -> tuple[int, dict[str, list[float]]]:
    """Load the checkpoint at ``path`` into ``state``; its ``(step, history)``. As ``resume_gan``: the
    config must match but for budgets, logging and device, the networks must be built alike; ``missing_ok``:
    no file is a fresh start; under torchrun rank 0 reads the file and every process loads what it read."""
    saved = read_on_main(path, device, missing_ok=missing_ok)
    if saved is None:
        return 0, {}
    differ = config_differences(_saved_config(saved, path).to_dict(), config)
    if differ:
        raise CheckpointError(f"resume: the config differs from the checkpoint's in {', '.join(differ)} "
                              f"({', '.join(f'{k}={old!r}' for k, (old, _) in differ.items())} in {path})")
    check_same_args(path, saved, state.nets.G_AB, "G")
    check_same_args(path, saved, state.nets.D_A, "D")
    for key, obj in state.entries().items():
        entry = checkpoint_entry(saved, key, dict, path)
        if isinstance(obj, ImagePool):
            try:
                obj.load_state_dict(entry)
            except ValueError as exc:
                raise CheckpointError(f"{path}: {key}: {exc}") from None
        else:
            load_weights(obj, entry, key, path)
    step = checkpoint_entry(saved, "step", int, path)
    history = checkpoint_entry(saved, "history", dict, path)
    if step < 0 or not all(isinstance(v, list) for v in history.values()):
        raise CheckpointError(f"{path}: its step ({step}) or history is malformed")
    return step, {k: list(v) for k, v in history.items()}


def _images(name: str, data: Any) -> torch.Tensor:
    """A domain's training images, a tensor ``(N, 1 or 3, H, W)`` in [-1, 1]."""
    images = data.tensors[0] if isinstance(data, torch.utils.data.TensorDataset) else getattr(data, "images", data)
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] not in (1, 3):
        raise TypeError(f"{name} must be images (N, 1 or 3, H, W) in [-1, 1] or a dataset holding them as "
                        f"`.images`, got {type(data).__name__}")
    return check_training_images(name, images)


def fit_cyclegan(nets: CycleGANNets, data_a: Any, data_b: Any, config: CycleGANConfig | None = None, *,
                 out_dir: str | Path | None = None, resume: bool | str | Path = False,
                 callbacks: Mapping[str, Iterable[Callable]] | None = None) -> CycleGANResult:
    """Train CycleGAN's four networks (:func:`ganlab.models.build_cyclegan`) on two unpaired domains.

    Args:
        nets: ``(G_AB, G_BA, D_A, D_B)``, trained in place (moved to the config's device).
        data_a, data_b: the images of domains A and B ``(N, 1 or 3, H, W)`` in [-1, 1], or datasets holding
            them as ``.images`` (:class:`ganlab.data.MNIST`, :class:`ganlab.data.MNISTM`); grey images are
            repeated into the generators' channels. Their batch orders differ (seeds ``2 seed`` and
            ``2 seed + 1``), so even two sets built from the same digits are never seen in pairs.
        config: a :class:`CycleGANConfig` (defaults when ``None``).
        out_dir: folder for ``checkpoint.pt``; ``None`` writes nothing.
        resume: as for ``ganlab.fit``: ``True`` continues from ``out_dir/checkpoint.pt`` when it exists,
            a path continues from that checkpoint.
        callbacks: ``{"on_step_end": [fn]}``; ``fn(state)`` gets ``step``, ``nets``, ``history``, ``config``.

    A loss that turns NaN or infinite, or stays beyond 1e6, stops the run with a ``FloatingPointError``
    that names the last checkpoint written, which is kept.
    """
    # ---- arguments
    config = config if config is not None else CycleGANConfig()
    if not isinstance(config, CycleGANConfig):
        raise TypeError(f"config must be a CycleGANConfig, got {type(config).__name__}")
    if not (isinstance(nets, tuple) and len(nets) == 4 and all(isinstance(n, nn.Module) for n in nets)):
        raise TypeError("nets must be (G_AB, G_BA, D_A, D_B), e.g. ganlab.models.build_cyclegan()")
    nets = CycleGANNets(*nets)
    channels = getattr(nets.G_AB, "channels", 3)
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume is True and out_dir is None:
        raise ValueError("resume=True needs out_dir (the folder holding checkpoint.pt)")
    check_callbacks(callbacks, ("on_step_end",))
    images_a, images_b = _images("data_a", data_a), _images("data_b", data_b)
    if images_a.shape[2:] != images_b.shape[2:] or images_a.shape[2] != images_a.shape[3]:
        raise ValueError(f"data_a and data_b must have square images of one size, got "
                         f"{tuple(images_a.shape[2:])} and {tuple(images_b.shape[2:])}")
    # what each domain's images were, for translating new ones (`python -m ganlab translate`)
    images = {"a_channels": images_a.shape[1], "b_channels": images_b.shape[1], "size": images_a.shape[2]}
    images_a, images_b = to_channels(images_a, channels), to_channels(images_b, channels)  # grey repeated

    # ---- setup
    device = dist.local_device(config.device)   # under torchrun: this process's own device
    precision = resolve_precision(device, config.precision)
    autocast = autocast_context(device, precision)
    for net in nets:
        net.to(device).train()
    nets_run = CycleGANNets(*(dist.prepare(net) for net in nets))  # in DDP under torchrun
    g_params = itertools.chain(nets.G_AB.parameters(), nets.G_BA.parameters())
    d_params = itertools.chain(nets.D_A.parameters(), nets.D_B.parameters())
    state = _State(nets=nets, opt_g=torch.optim.Adam(g_params, lr=config.lr_g, betas=config.betas),
                   opt_d=torch.optim.Adam(d_params, lr=config.lr_d, betas=config.betas),
                   scaler_g=make_scaler(device, precision), scaler_d=make_scaler(device, precision),
                   pool_a=ImagePool(config.pool_size), pool_b=ImagePool(config.pool_size), emas={})
    if config.ema_half_life is not None and dist.is_main():  # decay set at each update; rank 0 alone keeps them
        state.emas = {f"{name}_ema": AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(0.0), use_buffers=True)
                      for name, net in (("G_AB", nets.G_AB), ("G_BA", nets.G_BA))}
    # under torchrun each process takes its slice of every global batch
    batches_a = Batches(images_a, config.batch_size, 2 * config.seed, distributed=True)
    batches_b = Batches(images_b, config.batch_size, 2 * config.seed + 1, distributed=True)

    # ---- resume (after clearing the temporary files of a run killed mid-write)
    step, history, resumed_from = 0, {}, None
    if out_dir is not None and dist.is_main():
        remove_stale_temp_files(out_dir, (CHECKPOINT_NAME,))
    if resume is not False:
        path = Path(resume) if resume is not True else out_dir / CHECKPOINT_NAME
        step, history = _resume(path, state, config, device, missing_ok=resume is True)
        resumed_from = path if step else None  # a missing file (resume=True) starts afresh

    def checkpoint(run: Run) -> None:
        bad = [k for k, net in nets._asdict().items()
               if not all(bool(torch.isfinite(p).all()) for p in net.parameters())]
        if bad:
            raise run.diverged(f"{' and '.join(bad)} has non-finite weights")
        run.saved(_write_checkpoint(out_dir / CHECKPOINT_NAME, state, config, run.step, run.history, images))

    # ---- loop
    with Run(steps=config.steps, step=step, history=history, log_every=config.log_every,
             max_minutes=config.max_minutes, progress=config.progress, desc="CycleGAN",
             postfix={"cycle": ".3f", "d_loss": ".3f"}, callbacks=callbacks, checkpoints=True,
             explode_at=EXPLODING_LOSS, timed=not history or "seconds" in history,
             advice="Lower the learning rates.", distributed=True, resumed_from=resumed_from) as run:
        while run.running():
            scale = lr_scale(run.step, config.steps, config.lr_decay_start)
            for opt, lr in ((state.opt_g, config.lr_g), (state.opt_d, config.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr * scale
            a, _ = batches_a(run.step)
            b, _ = batches_b(run.step)
            pool_draws = batches_a.own_stream(step_generator(config.seed, run.step))  # per process
            stats = cyclegan_update(nets_run, a.to(device), b.to(device), state.opt_g, state.opt_d,
                                    cycle_weight=config.cycle_weight, identity_weight=config.identity_weight,
                                    cycle_weight_b=config.cycle_weight_b,
                                    pool_a=state.pool_a, pool_b=state.pool_b,
                                    generator=pool_draws, autocast=autocast,
                                    scaler_g=state.scaler_g, scaler_d=state.scaler_d)
            for name, net in (("G_AB", nets.G_AB), ("G_BA", nets.G_BA)):
                if f"{name}_ema" in state.emas:
                    update_ema(state.emas[f"{name}_ema"], net, config, run.step)
            run.end_step(stats, finite=("g_loss", "d_loss"))
            if out_dir is not None and run.due(config.checkpoint_every):
                checkpoint(run)
            run.emit("on_step_end", SimpleNamespace(step=run.step, nets=nets, history=run.history, config=config))

    # ---- finish: a checkpoint of the last step
    if out_dir is not None and run.checkpoint_step != run.step:
        checkpoint(run)
    emas = {name: copy.deepcopy(ema.module) for name, ema in state.emas.items()}
    return CycleGANResult(nets=nets, history=run.history, step=run.step, config=config, stopped=run.stopped,
                          seconds=run.seconds, checkpoint=run.checkpoint, **emas)


@dataclass
class CycleGANCheckpoint:
    """What :func:`load_cyclegan` reads back from a checkpoint written by :func:`fit_cyclegan`."""

    nets: CycleGANNets                  # the four networks, in eval mode
    config: CycleGANConfig
    step: int                           # steps the run had done
    a_channels: int                     # channels of domain A's training images (1: a grey domain)
    b_channels: int                     # channels of domain B's
    img_size: int                       # the side of the training images
    G_AB_ema: nn.Module | None = None   # the EMA of G_AB, in eval mode, when the run kept one
    G_BA_ema: nn.Module | None = None   # the EMA of G_BA

    def generator(self, direction: str, *, ema: bool = True) -> nn.Module:
        """G_AB for ``"a2b"``, G_BA for ``"b2a"``: its EMA when the run kept one (unless ``ema=False``)."""
        return _pick(direction, self.nets, self.G_AB_ema, self.G_BA_ema, ema)


def load_cyclegan(checkpoint: str | Path, *, device: str | torch.device = "cpu") -> CycleGANCheckpoint:
    """The networks (in eval mode), config and image shapes of a checkpoint written by :func:`fit_cyclegan`.

    A damaged or foreign file, or one whose weights are not finite, raises :class:`CheckpointError`.
    """
    device = get_device(device)
    path = Path(checkpoint)
    saved = load_checkpoint(path, map_location="cpu")
    config = _saved_config(saved, path)
    g_args, d_args = checkpoint_entry(saved, "g_args", dict, path), checkpoint_entry(saved, "d_args", dict, path)
    images = checkpoint_entry(saved, "images", dict, path)
    try:
        nets = build_cyclegan(channels=g_args["channels"], g_base_channels=g_args["base_channels"],
                              g_n_downsampling=g_args["n_downsampling"], g_n_blocks=g_args["n_blocks"],
                              d_base_channels=d_args["base_channels"], d_n_layers=d_args["n_layers"])
        shapes = [int(images[k]) for k in ("a_channels", "b_channels", "size")]
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its g_args, d_args or images do not describe CycleGAN's networks "
                              f"({one_line(exc)})") from None
    for key, net in nets._asdict().items():
        weights = checkpoint_entry(saved, key, dict, path)
        load_weights(net, weights, key, path)
    emas = {}
    for name in ("G_AB", "G_BA"):
        if saved.get(f"{name}_ema") is None:
            continue
        weights = averaged_weights(checkpoint_entry(saved, f"{name}_ema", dict, path))
        emas[f"{name}_ema"] = net = copy.deepcopy(getattr(nets, name))
        load_weights(net, weights, f"{name}_ema", path)
        net.to(device).eval()
    nets = CycleGANNets(*(net.to(device).eval() for net in nets))
    return CycleGANCheckpoint(nets, config, checkpoint_entry(saved, "step", int, path), *shapes, **emas)


def load_cyclegan_generator(checkpoint: str | Path, direction: str = "a2b", *, ema: bool = True,
                            device: str | torch.device = "cpu") -> nn.Module:
    """The generator of ``direction`` (``"a2b"``: G_AB, ``"b2a"``: G_BA) of a CycleGAN checkpoint, in eval
    mode: its EMA when the run kept one, unless ``ema=False``."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(map(repr, DIRECTIONS))}; got {direction!r}")
    return load_cyclegan(checkpoint, device=device).generator(direction, ema=ema)
