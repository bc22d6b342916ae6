"""The GAN run's checkpoint: written by ``ganlab.fit``, read back to resume or to rebuild the networks.

A checkpoint holds every piece of state that changes during a run (weights, optimiser moments, gradient
scalers, batch-norm statistics, the EMA of G, history, step), the config, and the registered model
name with its constructor arguments (``model_args``, nanoGPT style), so :func:`load_generator` and
:func:`load_discriminator` rebuild the networks without pickled classes (``weights_only=True``).

The history is saved without its ``seconds`` column: the wall-clock is the one thing a seed does not
decide, and leaving it out makes two runs with the same seed write byte-identical checkpoints (on the CPU).
Everything read back is checked: a missing entry, networks of another architecture, a config that differs
or non-finite weights raise :class:`ganlab.checkpoint.CheckpointError` with one line that names the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..checkpoint import (CheckpointError, check_finite_state, checkpoint_entry, load_checkpoint,
                          save_checkpoint)
from ..errors import one_line
from ..models import GAN_REGISTRY
from ..utils import get_device
from . import distributed as dist
from .config import RESUMABLE_CHANGES, TrainConfig

__all__ = ["GANState", "write_gan_checkpoint", "resume_gan", "read_on_main", "load_generator",
           "load_discriminator", "arg_differences", "config_differences", "load_weights", "check_same_args",
           "averaged_weights"]


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
        scaler_d=state.scaler_d, G_ema=state.G_ema, config=config.to_dict(), step=step,
        history={k: v for k, v in history.items() if k != "seconds"})  # the wall-clock is not the seed's


def averaged_weights(ema_state: dict[str, Any]) -> dict[str, Any]:
    """The state dict of the network inside an ``AveragedModel``'s state dict (its ``module.`` entries,
    without the prefix; ``n_averaged`` dropped): what a plain copy of the network loads."""
    return {k[len("module."):]: v for k, v in ema_state.items() if k.startswith("module.")}


def load_weights(net: nn.Module, weights: Any, name: str, path: Path) -> None:
    """``net.load_state_dict(weights)``; a mismatch (another architecture) is one line naming ``path``, and so
    are NaN or infinite weights of a network (``check_finite_state``; optimisers and scalers are not checked)."""
    if not isinstance(weights, dict):
        raise CheckpointError(f"{path}: its {name!r} entry is not a state dict")
    try:
        net.load_state_dict(weights)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        first = one_line(exc)
        detail = first.split(":", 1)[-1].strip()[:160] if "Error(s) in loading" in first else first[:160]
        raise CheckpointError(f"{path}: {name} does not match the network it is loaded into (another "
                              f"architecture: {detail})") from None
    if isinstance(net, nn.Module):
        check_finite_state(name, weights, path)


def arg_differences(saved_args: dict[str, Any], args: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Builder arguments whose value in a checkpoint (``saved_args``) differs from ``args``:
    ``{name: (saved, given)}``, sorted by name (an argument missing on one side counts as ``None``)."""
    return {k: (saved_args.get(k), args.get(k)) for k in sorted(set(args) | set(saved_args))
            if saved_args.get(k) != args.get(k)}


def config_differences(saved: dict[str, Any], config: TrainConfig) -> dict[str, tuple[Any, Any]]:
    """Fields of ``config`` that differ from a checkpoint's config (``saved``, a ``to_dict()``) and may not
    change on resume (not in ``RESUMABLE_CHANGES``): ``{field: (saved, given)}``."""
    return {k: (saved[k], v) for k, v in config.to_dict().items()
            if k not in RESUMABLE_CHANGES and saved[k] != v}


def check_same_args(path: Path, saved: dict[str, Any], net: nn.Module, name: str) -> None:
    """The builder arguments of the checkpoint's networks against those of the networks given to resume
    (``saved["g_args"]`` for ``name="G"``): a difference is a :class:`CheckpointError` naming them."""
    args = getattr(net, "model_args", None)
    saved_args = saved.get(f"{name.lower()}_args")
    if not isinstance(args, dict) or not isinstance(saved_args, dict):
        return  # networks without model_args: load_state_dict decides
    differ = [f"{k}={old!r} (not {new!r})" for k, (old, new) in arg_differences(saved_args, args).items()]
    if differ:
        raise CheckpointError(f"{path} was trained with a {name} of other arguments: {', '.join(differ)}; "
                              f"build the networks as the checkpoint's to resume it")


def read_on_main(path: Path, device: torch.device, *, missing_ok: bool = False) -> dict[str, Any] | None:
    """The checkpoint at ``path`` (``None`` when it is missing and ``missing_ok``), read by rank 0 alone and
    handed to every process (so only rank 0's node needs the file); one process reads it onto ``device``.
    """
    def read() -> dict[str, Any] | None:
        if missing_ok and not path.exists():
            return None
        # to the others by pickle: on the CPU, else each would get tensors on rank 0's GPU
        return load_checkpoint(path, map_location="cpu" if dist.active() else device)

    return dist.from_main(read)


def resume_gan(path: Path, state: GANState, config: TrainConfig, device: torch.device, *,
               missing_ok: bool = False) -> tuple[int, dict[str, list[float]]]:
    """Load the checkpoint at ``path`` into ``state``; returns its ``(step, history)``.

    ``config`` must match the checkpoint's except for the fields in ``RESUMABLE_CHANGES`` (budgets,
    logging, device and the speed levers that leave the result unchanged), and the networks must be built
    with the checkpoint's arguments; otherwise, or for a damaged file, a :class:`CheckpointError` names it.
    ``missing_ok``: no file at ``path`` is a fresh start, ``(0, {})``. Under torchrun rank 0 reads the file
    and every process loads what it read; the number of processes may differ from the run that wrote it.
    """
    saved_state = read_on_main(path, device, missing_ok=missing_ok)
    if saved_state is None:
        return 0, {}
    try:
        saved = TrainConfig.from_dict(checkpoint_entry(saved_state, "config", dict, path)).to_dict()
    except CheckpointError:
        raise
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"{path}: its config is not a valid TrainConfig ({one_line(exc)})") from None
    differ = list(config_differences(saved, config))
    if differ:
        raise CheckpointError(f"resume: the config differs from the checkpoint's in {', '.join(differ)} "
                              f"({', '.join(f'{k}={saved[k]!r}' for k in differ)} in {path})")
    for name, net in (("G", state.G), ("D", state.D)):
        check_same_args(path, saved_state, net, name)
    step = checkpoint_entry(saved_state, "step", int, path)
    history = checkpoint_entry(saved_state, "history", dict, path)
    for key in ("G", "D", "opt_g", "opt_d", "scaler_g", "scaler_d"):
        load_weights(getattr(state, key), checkpoint_entry(saved_state, key, dict, path), key, path)
    if state.G_ema is not None:
        load_weights(state.G_ema, checkpoint_entry(saved_state, "G_ema", dict, path), "G_ema", path)
    if step < 0 or not all(isinstance(v, list) for v in history.values()):
        raise CheckpointError(f"{path}: its step ({step}) or history is malformed")
    return step, {k: list(v) for k, v in history.items()}


def _saved_gan(checkpoint: str | Path) -> tuple[dict[str, Any], type, type]:
    """A checkpoint written by ``fit`` and its registered ``(generator class, discriminator class)``."""
    state = load_checkpoint(checkpoint, map_location="cpu")
    name = state.get("model")
    if name not in GAN_REGISTRY or not isinstance(state.get("g_args"), dict):
        raise CheckpointError(f"checkpoint: {checkpoint} does not name a registered model (model={name!r})")
    return state, *GAN_REGISTRY[name]


def _build(cls: type, args: Any, name: str, path: str | Path) -> nn.Module:
    if not isinstance(args, dict):
        raise CheckpointError(f"{path}: its {name} entry is missing or not a dict of builder arguments")
    try:
        return cls(**args)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its {name} do not build a {cls.__name__} ({one_line(exc)})") from None


def load_generator(checkpoint: str | Path, *, ema: bool = True, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the generator saved in a checkpoint written by ``fit`` (its EMA weights when present).

    A damaged or foreign file, or one whose weights are not finite, raises :class:`CheckpointError`.
    """
    device = get_device(device)  # a bad device is the device's error, not the checkpoint's
    state, g_cls, _ = _saved_gan(checkpoint)
    G = _build(g_cls, state["g_args"], "g_args", checkpoint)
    if ema and state.get("G_ema") is not None:
        name = "G_ema"
        ema_state = checkpoint_entry(state, "G_ema", dict, checkpoint)
        weights = averaged_weights(ema_state)
    else:
        name, weights = "G", checkpoint_entry(state, "G", dict, checkpoint)
    load_weights(G, weights, name, Path(checkpoint))
    return G.to(device).eval()


def load_discriminator(checkpoint: str | Path, *, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the discriminator saved in a checkpoint written by ``fit``, in eval mode."""
    device = get_device(device)
    state, _, d_cls = _saved_gan(checkpoint)
    D = _build(d_cls, state.get("d_args"), "d_args", checkpoint)
    weights = checkpoint_entry(state, "D", dict, checkpoint)
    load_weights(D, weights, "D", Path(checkpoint))
    return D.to(device).eval()
