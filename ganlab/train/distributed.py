"""Training on several processes: DistributedDataParallel under ``torchrun``, for every loop of the package.

``torchrun --nproc_per_node=N -m ganlab train ...`` starts N copies of the program and tells each one its
place through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``).
:func:`init` joins them into one process group: NCCL on CUDA (one GPU per process, the one of its
``LOCAL_RANK``), gloo on the CPU. Each process then trains the same networks on its own part of every
global batch, and :class:`torch.nn.parallel.DistributedDataParallel` (DDP, Li et al. 2020,
https://arxiv.org/abs/2006.15704) averages the gradients across processes during ``backward``, so every
process takes the same optimiser step: the step one process would take on the whole batch.

The loops get this from the pieces they share, each a line in the loop:

* :func:`local_device` resolves the config's device (and joins the group when torchrun started the
  process and nobody has yet);
* ``Batches(..., distributed=True)`` hands each process its slice of every global batch (``batch_size``
  stays the global batch), and ``Batches.noise`` its rows of the global batch's noise;
* :func:`prepare` wraps a network for the loop to call: in DDP (and :class:`torch.nn.SyncBatchNorm` on
  CUDA, see below), then ``torch.compile`` when asked. The optimiser, the EMA and the checkpoint keep
  the plain network, so a checkpoint is the same whether one process wrote it or eight;
* ``Run(..., distributed=True)`` averages the logged values over the processes in one all-reduce per
  step, and agrees on when to stop (a NaN on any process, or the time budget of any), so no process is
  left waiting for the others; rank 0 alone shows the progress bar and writes files (``Run.write``,
  and :func:`ganlab.save_checkpoint` writes on rank 0 only);
* :func:`ganlab.train.frozen`, which holds D fixed in G's step, also keeps DDP from all-reducing D's
  gradient there (``no_sync``): those gradients are thrown away, as stylegan2-ada's loss does with its
  ``ddp_sync(D, False)`` in the generator's phase.

Buffers. Spectral norm's power-iteration vectors ``u, v`` are buffers updated from the weight alone, so
they stay equal on every process as long as the weights do; DDP's default ``broadcast_buffers=True``
copies rank 0's buffers to the others at each forward pass anyway. Batch norm is the one place where
processes would compute something else than one process does: in training it normalises by the
statistics of the batch it sees. On CUDA, :func:`prepare` turns every batch norm into
:class:`torch.nn.SyncBatchNorm`, which takes them over the global batch (BigGAN's cross-replica batch
norm), so G's statistics do not depend on how many GPUs share the batch (with the recipe's global batch
of 32 on eight GPUs, each would otherwise normalise over 4 images). PyTorch's ``SyncBatchNorm`` has no
CPU kernel and no double backward (so a discriminator trained with a gradient penalty keeps plain batch
norm, ``prepare(..., sync_batchnorm=False)``): there each process normalises over its own part, and the
running statistics that sampling and checkpoints use are rank 0's (broadcast by DDP).

Random draws. The noise of G is drawn for the whole global batch from the step's generator and each
process keeps its rows, so z is the same as in one process. What is drawn after it (DiffAugment, the
points of a gradient penalty, a VAE's sampling noise) comes from a stream of the process's own (rank 0
keeps the shared one), so those draws differ from a one-process run's: the same in distribution, not
draw for draw.
"""
from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UsageError
from ..utils import get_device

__all__ = ["launched", "active", "rank", "world_size", "is_main", "init", "teardown", "local_device",
           "prepare", "no_sync", "ddp_module", "reduce_mean", "from_main", "BACKEND_ENV"]

T = TypeVar("T")

# overrides the backend init() picks: gloo on CUDA lets several processes share one GPU (NCCL refuses it)
BACKEND_ENV = "GANLAB_DIST_BACKEND"

_DEVICE: torch.device | None = None   # the device of this process in the group init() joined
_OWNED = False                        # whether init() created the group (then teardown() ends it)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"environment variable {name} must be an integer, got {value!r}") from None


def launched() -> bool:
    """Whether a launcher (``torchrun``) started this process as one of several (``WORLD_SIZE`` > 1)."""
    return _env_int("WORLD_SIZE", 1) > 1


def active() -> bool:
    """Whether this process belongs to a running process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank: the group's, else the launcher's ``RANK``, else 0 (a single process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return _env_int("RANK", 0) if launched() else 0


def world_size() -> int:
    """The number of processes that train together (1 without a process group)."""
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Whether this is rank 0, the process that alone shows progress and writes files."""
    return rank() == 0


def init(device: str | torch.device = "auto", *, backend: str | None = None,
         init_method: str | None = None) -> torch.device:
    """Join the process group of the processes a launcher started; returns this process's device.

    Without a launcher (``WORLD_SIZE`` unset or 1) nothing happens and ``device`` is resolved as usual.
    Otherwise ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` place this process, and the backend is NCCL for
    CUDA and gloo for the CPU (``backend``, or the environment variable ``GANLAB_DIST_BACKEND``, overrides
    it). On CUDA each process takes the GPU of its ``LOCAL_RANK``: ``device`` may say ``"auto"`` or
    ``"cuda"`` but not pick one GPU for all. ``init_method`` defaults to ``env://`` (``MASTER_ADDR`` and
    ``MASTER_PORT``, which torchrun sets); a ``file://`` URL serves processes started by other means.
    Calling it again returns the same device; :func:`teardown` leaves the group (also done at exit).
    """
    global _DEVICE, _OWNED
    if dist.is_available() and dist.is_initialized():
        return _DEVICE if _DEVICE is not None else get_device(device)
    if not launched():
        return get_device(device)
    if not dist.is_available():
        raise UsageError("device: this PyTorch build has no torch.distributed; run one process")
    spec = device
    device = get_device(device)
    world, local = _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0)
    if device.type == "cuda":
        if isinstance(spec, str) and ":" in spec or isinstance(spec, torch.device) and spec.index is not None:
            raise UsageError(f"device: {str(spec)!r} names one GPU, but under torchrun each process takes "
                             f"the GPU of its LOCAL_RANK; pass 'cuda' or 'auto'")
        count = torch.cuda.device_count()
        backend = backend or os.environ.get(BACKEND_ENV) or "nccl"
        if local >= count and backend == "nccl":
            raise UsageError(f"device: this node has {count} GPU(s) but torchrun started a process with "
                             f"LOCAL_RANK {local}; start at most {count} per node (--nproc_per_node), or set "
                             f"{BACKEND_ENV}=gloo to let processes share a GPU")
        device = torch.device("cuda", local % count)
        torch.cuda.set_device(device)
    elif device.type == "cpu":
        backend = backend or os.environ.get(BACKEND_ENV) or "gloo"
    else:
        raise UsageError(f"device: distributed training runs on CUDA or the CPU, not {device.type!r}")
    kwargs: dict[str, Any] = {}
    if init_method is not None and not init_method.startswith("env://"):
        kwargs = dict(rank=_env_int("RANK", 0), world_size=world)
    dist.init_process_group(backend, init_method=init_method, **kwargs)
    _DEVICE, _OWNED = device, True
    atexit.register(teardown)
    return device


def teardown() -> None:
    """Leave the process group that :func:`init` joined (nothing if it joined none)."""
    global _DEVICE, _OWNED
    if _OWNED and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _DEVICE, _OWNED = None, False


def local_device(device: str | torch.device = "auto") -> torch.device:
    """The device a training loop runs on: ``get_device(device)`` for one process; under torchrun the
    process's own device, joining the group first (:func:`init`) when nobody has yet.

    In a process group, ``"auto"`` means the group's device; another device type is a ``UsageError``.
    """
    if not (launched() or active()):
        return get_device(device)
    own = init(device)
    if not active():
        return own
    if not (device == "auto" or get_device(device).type == own.type):
        raise UsageError(f"device: {str(device)!r} differs from the device this process trains on in its "
                         f"process group ({own}); pass device='auto'")
    return own


def prepare(module: nn.Module, *, compile: bool = False, sync_batchnorm: bool = True) -> nn.Module:
    """The callable form of ``module`` that a loop trains with: wrapped in DDP when several processes
    train (on CUDA, with ``sync_batchnorm``, its batch norms first become ``SyncBatchNorm``, in place),
    then ``torch.compile``-d when ``compile``. ``module`` itself stays what the optimiser, the EMA and the
    checkpoint see. ``sync_batchnorm=False`` for a network that is differentiated twice (a gradient
    penalty): ``SyncBatchNorm`` has no double backward (pytorch/pytorch#61222).

    ``torch.compile`` goes outside DDP, as PyTorch documents it: the compiled graph is split at DDP's
    gradient buckets, so the all-reduce still overlaps the backward pass.
    """
    run = module
    if active():
        device = next((p.device for p in module.parameters()), torch.device("cpu"))
        if device.type == "cuda" and sync_batchnorm:
            converted = nn.SyncBatchNorm.convert_sync_batchnorm(module)
            if converted is not module:  # a bare batch-norm layer: nothing to train across processes anyway
                raise TypeError("prepare: module must contain its batch norm, not be one")
        # DDP compares a gradient's strides with its bucket's exactly, autograd ignores those of a size-1
        # dimension: a channels-last weight with one channel (the first conv of a grey-image D) gets
        # gradients strided one way or the other (eager or compiled); DDP then copies them into its bucket
        # (a few small tensors per step) with a warning that says itself it is not an error: silenced
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        if any(p.requires_grad for p in module.parameters()):
            run = nn.parallel.DistributedDataParallel(
                module, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(run) if compile else run


def ddp_module(module: nn.Module) -> nn.parallel.DistributedDataParallel | None:
    """The DDP wrapper in ``module`` (itself, or the one inside ``torch.compile``); ``None`` if none."""
    inner = getattr(module, "_orig_mod", module)
    return inner if isinstance(inner, nn.parallel.DistributedDataParallel) else None


def no_sync(module: nn.Module):
    """Inside the block, DDP does not all-reduce ``module``'s gradients (a no-op for a plain module)."""
    ddp = ddp_module(module)
    return ddp.no_sync() if ddp is not None else nullcontext()


def reduce_mean(values: Sequence[torch.Tensor | float], *,
                flags: Sequence[bool] = ()) -> tuple[list[torch.Tensor], list[bool]]:
    """The mean of each value over the processes, and whether each flag is set on any process: one
    all-reduce in all. Without a process group: the values (as tensors) and the flags unchanged."""
    tensors = [torch.as_tensor(v).detach().float().reshape(()) for v in values]
    if not active():
        return tensors, list(flags)
    # the group's device (NCCL reduces on the GPU); a group made without init(): the values' own
    device = _DEVICE if _DEVICE is not None else (tensors[0].device if tensors else torch.device("cpu"))
    packed = torch.stack([t.to(device) for t in tensors] + [torch.tensor(float(f), device=device)
                                                            for f in flags]) if tensors or flags else None
    if packed is None:
        return [], []
    dist.all_reduce(packed)                           # a sum over the processes
    n = len(tensors)
    return list(packed[:n] / dist.get_world_size()), [bool(v > 0) for v in packed[n:].tolist()]


def from_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 alone, and its result (or the exception it raised) handed to every process.

    For what only rank 0 may do (look at and write the output folder, read a checkpoint that only its
    node may hold) when every process needs the outcome. The result travels pickled; a ``SystemExit``
    (the command line's one-line error, printed by rank 0) ends every process with the same status.
    """
    if not active():
        return fn()
    box: list[Any] = [None]
    if is_main():
        try:
            box[0] = ("ok", fn())
        except (Exception, SystemExit) as exc:  # noqa: BLE001 - handed to every process, then raised
            box[0] = ("raise", exc)
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "raise":
        raise value
    return value
