"""Checkpoints: written atomically, read back with ``torch.load(weights_only=True)``.

A checkpoint is a plain dictionary of tensors, numbers, strings, lists and dicts (no pickled classes or
code), so loading one never runs code. It records the model names and constructor arguments, the
training config, the step, the history and ``ganlab.__version__`` (STYLE.md, rule 9).

The bytes of a checkpoint depend on its contents only (it is serialised to memory first, under torch's
fixed archive name, not the temporary file's), so two runs that end in the same state write identical
files. A file that cannot be read (empty, truncated, not a zip archive, damaged, foreign, or one that
would need an unsafe unpickle) raises :class:`CheckpointError`, whose one-line message names the file.
"""
from __future__ import annotations

import io
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import torch

from ._version import __version__
from .errors import UsageError, one_line
from .utils import atomic_write

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT", "checkpoint_entry",
           "check_finite_state"]

FORMAT = "ganlab-checkpoint-v1"


class CheckpointError(UsageError):
    """A file that is not a readable ganlab checkpoint (truncated, corrupt, foreign or unsafe), or one that
    does not fit the run it is loaded into; a ``ValueError`` whose one-line message names the file."""


def save_checkpoint(path: str | os.PathLike, **state: Any) -> Path:
    """Write ``state`` (tensors, state dicts, numbers, strings, lists, dicts) to ``path`` atomically.

    ``nn.Module`` and optimizer values are replaced by their ``state_dict()``; a crash mid-write leaves any
    previous file at ``path`` untouched. Equal contents give byte-identical files. A full disk or a
    read-only folder raises an ``OSError`` whose ``filename`` is ``path``. Among processes that train
    together (``torchrun``, ``ganlab.train.distributed``) only rank 0 writes: the others hold the same
    state, and return ``path`` without touching the disk.
    """
    from .train.distributed import is_main  # here: ganlab.train imports this module

    if not is_main():
        return Path(path)
    payload: dict[str, Any] = {"format": FORMAT, "version": __version__}
    for key, value in state.items():
        payload[key] = value.state_dict() if hasattr(value, "state_dict") else value
    # to memory first: a file object gets torch's fixed archive name (a path would put the temporary file's
    # random name into the archive), and the bytes are then written by Python, whose OSError keeps its errno
    # (torch's own writer turns a full disk into "basic_ios::clear: iostream error")
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def load_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises ``FileNotFoundError`` for a missing file and :class:`CheckpointError` (a ``ValueError``) for an
    empty, truncated, corrupt or foreign file, or one that would need arbitrary code to load.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes), not a ganlab checkpoint: the run that wrote it "
                              f"did not finish; delete it or train again")
    # torch.save has written zip archives since torch 1.6, and save_checkpoint always does: anything else
    # (random bytes, text, a bare pickle) is refused before it reaches the unpickler
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint: not the zip archive that "
                              f"torch.save writes ({size} bytes: cut short, damaged or another kind of file)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} was refused: it holds objects that only a full (unsafe) unpickle could load, so it is "
            f"not a ganlab checkpoint ({one_line(exc)[:200]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, struct.error, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path} is truncated or not a torch checkpoint ({type(exc).__name__}: "
                              f"{one_line(exc)[:200]})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a ganlab checkpoint (no '{FORMAT}' format marker)")
    return payload


def checkpoint_entry(state: dict[str, Any], key: str, kind: type | tuple[type, ...],
                     path: str | os.PathLike) -> Any:
    """``state[key]``, checked to be a ``kind``; a :class:`CheckpointError` naming ``path`` when it is not."""
    if key not in state:
        raise CheckpointError(f"{path} has no {key!r} entry: it was not written by this kind of run")
    value = state[key]
    if not isinstance(value, kind):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise CheckpointError(f"{path}: its {key!r} entry must be a {names}, got {type(value).__name__}")
    return value


def check_finite_state(name: str, weights: dict[str, Any], path: str | os.PathLike) -> None:
    """A :class:`CheckpointError` naming ``path`` when a tensor of the state dict ``weights`` is NaN/inf."""
    bad = [k for k, v in weights.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        raise CheckpointError(f"{path}: {name} holds NaN or infinite values (in {', '.join(bad[:3])}"
                              f"{', ...' if len(bad) > 3 else ''}); it cannot be sampled from or resumed")
