"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts (no pickled classes or
code), so loading one never runs code. It records the model names and constructor arguments, the
training config, the step, the history and ``ganlab.__version__`` (STYLE.md, rule 9).
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .utils import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT"]

FORMAT = "ganlab-checkpoint-v1"


class CheckpointError(ValueError):
    """A file that is not a readable ganlab checkpoint (truncated, corrupt, foreign or unsafe)."""


def save_checkpoint(path: str | os.PathLike, **state: Any) -> Path:
    """Write ``state`` (tensors, state dicts, numbers, strings, lists, dicts) to ``path`` atomically.

    ``nn.Module`` and optimizer values are replaced by their ``state_dict()``; a crash mid-write leaves any
    previous file at ``path`` untouched.
    """
    payload: dict[str, Any] = {"format": FORMAT, "version": __version__}
    for key, value in state.items():
        payload[key] = value.state_dict() if hasattr(value, "state_dict") else value
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (a ``ValueError``) for a
    truncated, corrupt or foreign file, or one that would need arbitrary code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} was refused: it holds objects that only a full (unsafe) unpickle could load, so it is "
            f"not a ganlab checkpoint ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({str(exc).splitlines()[0]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ganlab checkpoint (no '{FORMAT}' format marker)")
    return payload
