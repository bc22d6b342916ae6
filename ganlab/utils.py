"""Small shared helpers: device resolution, seeding, atomic file writes, argument checks.

Device rule (see STYLE.md, rule 7): resolve the device once with :func:`get_device`, then derive it
from parameters everywhere else with :func:`device_of`. Nothing in ganlab calls ``.cuda()``.
"""
from __future__ import annotations

import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .errors import UsageError

__all__ = [
    "get_device",
    "device_of",
    "seed_everything",
    "tune_cpu_allocator",
    "atomic_write",
    "check_positive_int",
    "check_nonnegative_int",
    "check_positive_float",
    "check_probability",
    "check_betas",
    "check_choice",
    "check_seed",
    "SEED_LIMIT",
    "remove_stale_temp_files",
    "check_finite",
    "check_pixels",
]

# seeds are unsigned 64-bit integers, the range torch.manual_seed accepts
SEED_LIMIT = 2**64


def get_device(device: str | torch.device = "auto") -> torch.device:
    """Return a :class:`torch.device`; ``"auto"`` picks CUDA, then MPS, then the CPU.

    Uses ``torch.accelerator`` where this torch has it, with a fallback for older releases.
    """
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"device must be a str or torch.device, got {type(device).__name__}")
    if device != "auto":
        try:
            dev = torch.device(device)
        except RuntimeError:
            raise UsageError(f"device: unknown device {device!r} (expected auto, cpu, cuda, "
                             f"cuda:N or mps)") from None
        if dev.type not in ("cpu", "cuda", "mps"):
            raise UsageError(f"device: unsupported device {device!r} (expected auto, cpu, cuda, cuda:N or "
                             f"mps)")
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise UsageError(f"device: {device!r} was asked for but CUDA is not available here")
        if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UsageError(f"device: {device!r} was asked for but this machine has "
                             f"{torch.cuda.device_count()} CUDA device(s)")
        if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise UsageError(f"device: {device!r} was asked for but MPS is not available here")
        return dev
    accel = getattr(torch, "accelerator", None)
    if accel is not None and accel.is_available():
        cur = accel.current_accelerator()
        if cur is not None and cur.type in ("cuda", "mps"):
            return torch.device(cur.type)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def device_of(module: nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with neither."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_ALLOCATOR_TUNED = False


def tune_cpu_allocator(keep_bytes: int = 1 << 30) -> bool:
    """Keep freed memory in the process's heap instead of handing it back to the OS (glibc on Linux).

    A training step frees its activations and allocates the same sizes again on the next step. glibc
    returns large freed blocks to the kernel (``munmap``, heap trimming), so every step faults the pages
    back in and the kernel zeroes them: thousands of page faults per step for a DCGAN at batch 64.
    Raising ``M_MMAP_THRESHOLD`` and ``M_TRIM_THRESHOLD`` to ``keep_bytes`` lets the heap reuse them
    (the same effect as ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` in the environment, or as
    linking jemalloc/tcmalloc). The cost: the process keeps up to that much freed memory. Process-wide and
    not undone; returns whether it was applied (False off glibc).
    """
    global _ALLOCATOR_TUNED
    check_positive_int("keep_bytes", keep_bytes)
    if _ALLOCATOR_TUNED:
        return True
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another C library
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    value = min(int(keep_bytes), 2**31 - 1)
    _ALLOCATOR_TUNED = bool(mallopt(_M_MMAP_THRESHOLD, value)) and bool(mallopt(_M_TRIM_THRESHOLD, value))
    return _ALLOCATOR_TUNED


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch, and return a CPU ``torch.Generator`` seeded with ``seed``.

    ``seed`` is an integer in ``[0, 2**64)``; NumPy's legacy seed takes ``seed % 2**32``.
    """
    check_seed("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def atomic_write(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp_path)`` and then rename the file onto ``path``.

    The rename is atomic on POSIX and Windows, so a crash mid-write never leaves a half-written file
    where a good one used to be. A process killed mid-write leaves its temporary file
    (``.<name>.<random>.tmp`` beside ``path``); :func:`remove_stale_temp_files` clears those. An
    ``OSError`` (a full disk, a read-only folder) is raised again with ``path`` as its ``filename``, so
    that the message says which file could not be written.
    """
    path = Path(path)
    tmp_path = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:  # flush to disk before the rename makes it visible
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        if exc.errno is None:
            raise
        raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path)) from exc
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()
    return path


def remove_stale_temp_files(folder: str | os.PathLike, names: tuple[str, ...]) -> list[Path]:
    """Delete the temporary files that :func:`atomic_write` left in ``folder`` when it was killed mid-write.

    ``names`` are the final names (glob patterns, e.g. ``"checkpoint.pt"``, ``"samples_*.png"``) whose
    temporary files (``.<name>.<random>.tmp``) to remove; returns the paths removed. Meant for the start of
    a run, when no other process writes into the folder.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for name in names:
        for tmp in folder.glob(f".{name}.*.tmp"):
            try:
                tmp.unlink()
            except FileNotFoundError:
                continue
            removed.append(tmp)
    return removed


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def check_positive_int(name: str, value: Any) -> int:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int > 0."""
    if not _is_int(value) or value <= 0:
        raise UsageError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_nonnegative_int(name: str, value: Any) -> int:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an int >= 0."""
    if not _is_int(value) or value < 0:
        raise UsageError(f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def check_seed(name: str, value: Any) -> int:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer in ``[0, 2**64)``, a torch seed."""
    if not _is_int(value) or not 0 <= value < SEED_LIMIT:
        raise UsageError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return int(value)


def check_positive_float(name: str, value: Any) -> float:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise UsageError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_probability(name: str, value: Any, *, open_right: bool = True) -> float:
    """Raise ``ValueError`` naming ``name`` unless ``0 <= value < 1`` (or ``<= 1``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
        raise UsageError(f"{name} must be a number in [0, 1), got {value!r}")
    upper_ok = value < 1 if open_right else value <= 1
    if not (0 <= value and upper_ok):
        raise UsageError(f"{name} must be in [0, {'1)' if open_right else '1]'}, got {value!r}")
    return float(value)


def check_betas(name: str, value: Any) -> tuple[float, float]:
    """Adam's ``(beta1, beta2)``: raise ``ValueError`` naming ``name`` unless two numbers in [0, 1)."""
    try:
        betas = tuple(value)
    except TypeError:
        betas = ()
    if len(betas) != 2 or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and 0 <= b < 1
                                  for b in betas):
        raise UsageError(f"{name} must be two numbers in [0, 1), got {value!r}")
    return float(betas[0]), float(betas[1])


def check_bool(name: str, value: Any) -> bool:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {value!r}")
    return value


def check_image_channels(name: str, value: Any) -> int:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is 1 (grey) or 3 (colour)."""
    if value not in (1, 3):
        raise UsageError(f"{name} must be 1 or 3, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: tuple[str, ...] | list[str]) -> str:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_finite(name: str, x: torch.Tensor) -> torch.Tensor:
    """Raise ``UsageError`` naming ``name`` unless every value of the tensor ``x`` is finite."""
    if x.is_floating_point() or x.is_complex():
        finite = torch.isfinite(x)
        if not bool(finite.all()):
            bad = int((~finite).sum())
            raise UsageError(f"{name} holds {bad} NaN or infinite value(s) out of {x.numel()}")
    return x


def check_pixels(name: str, x: Any, *, value_range: tuple[float, float] = (-1.0, 1.0),
                 slack: float = 1e-3) -> torch.Tensor:
    """``x`` as a tensor, after checking that it holds finite numbers near ``value_range``.

    Values may lie outside the range by ``slack`` times its width: the training loops use a small slack
    (their data must lie in [-1, 1], the range of a ``tanh`` generator), the metrics a large one (noisy
    inputs are scored unclipped) that still catches images on another scale, such as 0..255 pixels under
    the default ``(-1, 1)``. Raises ``UsageError`` naming ``name``.
    """
    if not isinstance(x, torch.Tensor):
        try:
            x = torch.as_tensor(np.asarray(x))
        except (TypeError, ValueError, RuntimeError):
            raise UsageError(f"{name} must be a tensor or array of pixel values, got "
                             f"{type(x).__name__}") from None
    if x.dtype == torch.bool or x.is_complex():
        raise UsageError(f"{name} must hold real pixel values, got dtype {x.dtype}")
    lo, hi = (float(v) for v in value_range)
    check_finite(name, x)
    if x.numel():
        width = hi - lo
        xmin, xmax = float(x.min()), float(x.max())
        if xmin < lo - slack * width or xmax > hi + slack * width:
            hint = (" (0..255 pixels: map them with ganlab.data.to_signed, or pass value_range=(0, 255) to a "
                    "metric)" if xmax > 2 and hi <= 1 else "")
            raise UsageError(f"{name} must be images in [{lo:g}, {hi:g}], got values in [{xmin:.4g}, "
                             f"{xmax:.4g}]{hint}")
    return x
