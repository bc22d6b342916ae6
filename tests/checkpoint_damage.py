"""Checkpoints damaged on purpose, shared by the tests that check they are refused."""
from __future__ import annotations

from pathlib import Path

import torch

from ganlab.checkpoint import load_checkpoint, save_checkpoint


def nan_weights(src: Path, dst: Path | None = None, key: str = "G") -> None:
    """Write the checkpoint at ``src`` to ``dst`` (default: ``src`` itself) with every floating-point
    tensor of its ``key`` entry (a network's state dict) NaN."""
    state = load_checkpoint(src)
    state[key] = {k: v * float("nan") if isinstance(v, torch.Tensor) and v.is_floating_point() else v
                  for k, v in state[key].items()}
    save_checkpoint(src if dst is None else dst, **{k: v for k, v in state.items() if k not in ("format", "version")})
