"""The GAN run's checkpoint: written by ``ganlab.fit``, read back to resume or to rebuild the networks.

A checkpoint holds every piece of state that changes during a run (weights, optimiser moments, gradient
scalers, batch-norm statistics, the EMA of G, history, step), the config, and the registered model
name with its constructor arguments (``model_args``, nanoGPT style), so :func:`load_generator` and
:func:`load_discriminator` rebuild the networks without pickled classes (``weights_only=True``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..checkpoint import load_checkpoint, save_checkpoint
from ..models import GAN_REGISTRY
from ..utils import get_device
from .config import RESUMABLE_CHANGES, TrainConfig

__all__ = ["GANState", "write_gan_checkpoint", "resume_gan", "load_generator", "load_discriminator"]


@dataclass
class GANState:
    """Everything of a GAN run that a checkpoint holds and a resume restores (trained in place)."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    G_ema: AveragedModel | None


def write_gan_checkpoint(path: Path, state: GANState, config: TrainConfig, step: int,
                         history: dict[str, list[float]]) -> Path:
    """Write ``state`` with the config, step, history and the registered model name to ``path``."""
    name = next((k for k, (gc, dc) in GAN_REGISTRY.items()
                 if type(state.G) is gc and type(state.D) is dc), None)
    return save_checkpoint(
        path, model=name, g_args=getattr(state.G, "model_args", None), d_args=getattr(state.D, "model_args", None),
        G=state.G, D=state.D, opt_g=state.opt_g, opt_d=state.opt_d, scaler_g=state.scaler_g,
        scaler_d=state.scaler_d, G_ema=state.G_ema, config=config.to_dict(), step=step, history=history)


def resume_gan(path: Path, state: GANState, config: TrainConfig,
               device: torch.device) -> tuple[int, dict[str, list[float]]]:
    """Load the checkpoint at ``path`` into ``state``; returns its ``(step, history)``.

    ``config`` must match the checkpoint's except for the fields in ``RESUMABLE_CHANGES`` (budgets,
    logging, device and the speed levers that leave the result unchanged).
    """
    saved_state = load_checkpoint(path, map_location=device)
    saved = TrainConfig.from_dict(saved_state["config"]).to_dict()
    differ = [k for k, v in config.to_dict().items() if k not in RESUMABLE_CHANGES and saved[k] != v]
    if differ:
        raise ValueError(f"resume: the config differs from the checkpoint's in {', '.join(differ)}")
    for key in ("G", "D", "opt_g", "opt_d", "scaler_g", "scaler_d"):
        getattr(state, key).load_state_dict(saved_state[key])
    if state.G_ema is not None:
        state.G_ema.load_state_dict(saved_state["G_ema"])
    return int(saved_state["step"]), {k: list(v) for k, v in saved_state["history"].items()}


def _saved_gan(checkpoint: str | Path) -> tuple[dict[str, Any], type, type]:
    """A checkpoint written by ``fit`` and its registered ``(generator class, discriminator class)``."""
    state = load_checkpoint(checkpoint, map_location="cpu")
    name = state.get("model")
    if name not in GAN_REGISTRY or not isinstance(state.get("g_args"), dict):
        raise ValueError(f"checkpoint: {checkpoint} does not name a registered model (model={name!r})")
    return state, *GAN_REGISTRY[name]


def load_generator(checkpoint: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator saved in a checkpoint written by ``fit`` (its EMA weights when present)."""
    state, g_cls, _ = _saved_gan(checkpoint)
    G = g_cls(**state["g_args"])
    if ema and state.get("G_ema") is not None:
        weights = {k[len("module."):]: v for k, v in state["G_ema"].items() if k.startswith("module.")}
    else:
        weights = state["G"]
    G.load_state_dict(weights)
    return G.to(get_device(device)).eval()


def load_discriminator(checkpoint: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the discriminator saved in a checkpoint written by ``fit``, in eval mode."""
    state, _, d_cls = _saved_gan(checkpoint)
    if not isinstance(state.get("d_args"), dict) or not isinstance(state.get("D"), dict):
        raise ValueError(f"checkpoint: {checkpoint} holds no discriminator")
    D = d_cls(**state["d_args"])
    D.load_state_dict(state["D"])
    return D.to(get_device(device)).eval()
