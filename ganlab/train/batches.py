"""The data order of every loop: batches as a pure function of ``(seed, index)``.

A run stopped and resumed at step k must see the same batches and the same noise as one that never
stopped, so nothing here keeps state that a checkpoint would need: batch ``index`` comes from the epoch's
permutation (seeded by ``seed`` and the epoch), and each step's noise from its own generator
(:func:`step_generator`). Seeds are integers in ``[0, 2**64)``; the generators' seeds are taken modulo
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
        idx = self._perm[i * self.batch_size:(i + 1) * self.batch_size]
        if self.images is not None:
            return self.images[idx], (self.labels[idx] if self.labels is not None else None)
        items = [self.dataset[int(j)] for j in idx]
        if all(isinstance(it, (tuple, list)) and len(it) > 1 for it in items):
            return torch.stack([it[0] for it in items]), torch.as_tensor([int(it[1]) for it in items])
        return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items]), None


def step_generator(seed: int, index: int) -> torch.Generator:
    """A fresh CPU generator for draw ``index`` of a run seeded ``seed``.

    The noise of step k never depends on how the run got there (an uninterrupted run, or a resumed one).
    """
    return torch.Generator().manual_seed(((seed + 1) * 7_919_104_729 + index) % SEED_LIMIT)
