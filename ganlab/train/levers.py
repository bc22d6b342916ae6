"""The speed levers, in one place: how fast a step runs, never what it computes (beyond rounding).

Taught in ``book/06_optimization.ipynb`` (measured there, and by ``benchmarks/throughput.py``, as ratios).
Each lever is a field of :class:`SpeedLevers`, which every GAN training config inherits; ``None`` means
"choose for the device", and :func:`speed_settings` shows every choice resolved. Adding a lever means a
field here, its resolution in :func:`speed_settings`, and its use in the loop.

* ``precision``: autocast to bf16/fp16 on accelerators (Micikevicius et al. 2018,
  https://arxiv.org/abs/1710.03740), a no-op on the CPU; ``"fp16"`` gets a gradient scaler (one per
  optimiser). The default is ``"fp32"``; ``"auto"`` picks the fastest safe choice (:func:`resolve_precision`).
* ``channels_last``: the NHWC layout that cuDNN's tensor cores and oneDNN run fastest.
* ``fused_adam``: Adam's fused kernels (one pass over all parameters).
* ``compile``: ``torch.compile`` of G and D.
* ``skip_d_grads``: G's step leaves D's weight gradients uncomputed (they are thrown away).
* ``joint_d_batch``: D scores the real and the fake batch in one call (:func:`resolve_joint_d_batch`).
* ``tune_allocator``: on the CPU, the heap keeps freed activations (:func:`ganlab.utils.tune_cpu_allocator`).
"""
from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..utils import check_bool, check_choice, device_of, get_device
from .nets import unwrap

__all__ = ["PRECISIONS", "SpeedLevers", "LEVER_FIELDS", "RESUMABLE_LEVERS", "resolve_precision", "resolve_channels_last",
           "resolve_joint_d_batch", "speed_settings", "autocast_context", "make_scaler", "make_optimizers"]

PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class SpeedLevers:
    """The speed levers of a training config (see the module docstring); ``None``: chosen for the device."""

    precision: str = "fp32"             # "fp32", "bf16" (CUDA/MPS), "fp16" (CUDA, with a gradient scaler) or
                                        # "auto" (see resolve_precision); every choice is a no-op on the CPU
    channels_last: bool | None = None   # NHWC layout for image models and batches; None: on for 4-D images
    fused_adam: bool | None = None      # Adam's fused kernels; None: fused on CUDA and CPU, multi-tensor elsewhere
    compile: bool = False               # torch.compile G and D (minutes of start-up; penalties run eagerly)
    skip_d_grads: bool = True           # G's step leaves D's weight gradients uncomputed (they are unused)
    joint_d_batch: bool | None = None   # D's step scores the real and the fake batch in one call; None: when D
                                        # declares itself batch-independent (see resolve_joint_d_batch)
    tune_allocator: bool | None = None  # CPU: keep freed activations in the heap (utils.tune_cpu_allocator);
                                        # None: on for the CPU

    def check_levers(self) -> None:
        """Raise a ``ValueError`` naming the first lever with a bad value."""
        check_choice("precision", self.precision, PRECISIONS + ("auto",))
        for name in ("channels_last", "fused_adam", "tune_allocator", "joint_d_batch"):
            if not (getattr(self, name) is None or isinstance(getattr(self, name), bool)):
                raise ValueError(f"{name} must be True, False or None (automatic), got {getattr(self, name)!r}")
        for name in ("compile", "skip_d_grads"):
            check_bool(name, getattr(self, name))


LEVER_FIELDS = frozenset(f.name for f in dataclasses.fields(SpeedLevers))
# the levers that may change between a run and its resume without changing the result; one D call on the
# real and fake batch together changes a batch-dependent D's (batch norm) statistics, so it may not
RESUMABLE_LEVERS = LEVER_FIELDS - {"joint_d_batch"}


def resolve_precision(device: torch.device, precision: str = "auto") -> str:
    """The precision a loop uses: ``"auto"`` is the fastest safe choice for the device.

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
    return bool(getattr(unwrap(D), "batch_independent", False)) if D is not None else False


def speed_settings(config: Any, device: str | torch.device | None = None,
                   example: torch.Tensor | None = None, D: nn.Module | None = None) -> dict[str, Any]:
    """The speed levers :func:`ganlab.fit` uses for ``config`` on ``device``, every automatic choice resolved.

    ``config`` is a :class:`ganlab.TrainConfig` (any :class:`SpeedLevers` with a ``device``); ``example``
    is one batch of the data (default: a batch of images, for which channels-last applies); ``D`` the
    discriminator (default: none, for which the joint real-and-fake batch is off). Every entry can be
    forced through the config field of the same name.
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


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler for one optimiser: active for fp16 on CUDA only, a pass-through elsewhere."""
    enabled = precision == "fp16" and device.type == "cuda"
    return torch.amp.GradScaler(device.type if enabled else "cpu", enabled=enabled)


def make_optimizers(G: nn.Module, D: nn.Module, config: Any) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for each player with the config's learning rates (``lr_g``, ``lr_d``) and ``betas``.

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
