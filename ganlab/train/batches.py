"""The data order of every loop: batches as a pure function of ``(seed, index)``.

A run stopped and resumed at step k must see the same batches and the same noise as one that never
stopped, so nothing here keeps state that a checkpoint would need: batch ``index`` comes from the epoch's
permutation (seeded by ``seed`` and the epoch), and each step's noise from its own generator
(:func:`step_generator`).

Several processes (``torchrun``, see :mod:`.distributed`): with ``distributed=True`` each process takes
its own equal slice of every global batch (``batch_size`` stays the global batch, and must be a multiple
of the number of processes), so the processes together see exactly the batches one process would, in the
same order, and a run resumes with any number of processes. :meth:`Batches.noise` hands each its rows of
the global batch's noise. Seeds are integers in ``[0, 2**64)``; the generators' seeds are taken modulo
``2**64`` (the range ``torch.Generator.manual_seed`` accepts), which leaves every smaller value unchanged.

:func:`check_training_images` validates the data where it enters a loop: float (not 0..255 bytes), finite,
and, for images ``(N, C, H, W)``, in [-1, 1], the range of a ``tanh`` generator.
"""
from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from ..errors import UsageError
from ..utils import SEED_LIMIT, check_finite, check_pixels
from . import distributed as dist

__all__ = ["Batches", "step_generator", "check_training_images"]


def check_training_images(name: str, x: torch.Tensor, *, pixel_range: bool = True) -> torch.Tensor:
    """Raise ``UsageError`` naming ``name`` unless ``x`` is a float tensor of finite values and, when it
    holds images ``(N, C, H, W)`` and ``pixel_range`` is on, lies in [-1, 1] (to within 1e-3).

    2-D points ``(N, D)`` may lie anywhere (the toy mixtures have radius 2); ``pixel_range=False`` is for
    inputs that may leave the range, such as unclipped noisy images.
    """
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"{name} must be a tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        hint = " (0..255 pixels: map them to [-1, 1] with ganlab.data.to_signed)" \
            if x.dtype == torch.uint8 else ""
        raise UsageError(f"{name} must be a float tensor, got {x.dtype}{hint}")
    if pixel_range and x.dim() == 4:
        check_pixels(name, x, value_range=(-1.0, 1.0), slack=1e-3)
    else:
        check_finite(name, x)
    return x


class Batches:
    """Batches as a pure function of ``(seed, index)``: a fixed permutation per epoch, the last partial batch
    dropped.

    ``distributed=True`` (a loop that trains with DDP): in a process group, each call returns this
    process's slice of the global batch ``index`` (rows ``rank * b`` to ``(rank + 1) * b`` with ``b =
    batch_size / world_size``); without one, the whole batch.
    """

    def __init__(self, data: Any, batch_size: int, seed: int, *, distributed: bool = False) -> None:
        self.rank, self.world_size = (dist.rank(), dist.world_size()) if distributed else (0, 1)
        if batch_size % self.world_size:
            raise ValueError(f"batch_size ({batch_size}) must be a multiple of the number of processes "
                             f"({self.world_size}): each takes an equal part of every batch")
        part = batch_size // self.world_size
        self.local = slice(self.rank * part, (self.rank + 1) * part)  # this process's rows of a batch
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

    def check(self, name: str = "data", *, pixel_range: bool = True) -> None:
        """:func:`check_training_images` on the whole tensor in memory, or on the first batch of a dataset."""
        images = self.images if self.images is not None else self(0)[0]
        check_training_images(name, images, pixel_range=pixel_range)

    def __call__(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The images of batch ``index`` and their labels (``None`` when the data has none)."""
        epoch, i = divmod(index, self.per_epoch)
        if epoch != self._epoch:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % SEED_LIMIT)
            self._epoch, self._perm = epoch, torch.randperm(self.n, generator=g)
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size][self.local]
        if self.images is not None:
            return self.images[idx], (self.labels[idx] if self.labels is not None else None)
        items = [self.dataset[int(j)] for j in idx]
        if all(isinstance(it, (tuple, list)) and len(it) > 1 for it in items):
            return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])
        return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items]), None


    def noise(self, z_dim: int, device: torch.device, generator: torch.Generator) -> torch.Tensor:
        """This process's rows of the global batch's noise ``z ~ N(0, I)``, ``(batch_size, z_dim)`` drawn
        on the CPU from ``generator`` (so the same ``z`` as in one process), moved to ``device``.

        In a process group ``generator`` then moves on to a stream of this process's own (:meth:`own_stream`).
        """
        z = torch.randn(self.batch_size, z_dim, generator=generator)[self.local]   # (b, z_dim)
        self.own_stream(generator)
        return z.to(device)

    def own_stream(self, generator: torch.Generator) -> torch.Generator:
        """Move ``generator`` (in place) to a stream of this process's own; rank 0, and a single process,
        keep theirs. What is drawn next (augmentation, penalty points) then differs between processes."""
        if self.rank:
            generator.manual_seed((generator.initial_seed() + self.rank * 0x9E3779B97F4A7C15) % SEED_LIMIT)
        return generator


def step_generator(seed: int, index: int) -> torch.Generator:
    """A fresh CPU generator for draw ``index`` of a run seeded ``seed``.

    The noise of step k never depends on how the run got there (an uninterrupted run, or a resumed one).
    """
    return torch.Generator().manual_seed(((seed + 1) * 7_919_104_729 + index) % SEED_LIMIT)
