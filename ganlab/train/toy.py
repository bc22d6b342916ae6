"""The 2-D GAN game, held in memory and played step by step (``book/02_adversarial_game.ipynb``).

:class:`ToyGame` is the state behind ``ganlab.viz.game_explorer`` (GAN Lab in a notebook, Kahng et al.
2018, https://arxiv.org/abs/1809.01587): G maps 2-D noise to points, D scores points, and each call of
:meth:`ToyGame.play` makes the same alternating updates as ``ganlab.fit`` (:func:`d_step` ``n_critic``
times, then :func:`g_step`), on the shared run skeleton, with settings that may change between calls.
"""
from __future__ import annotations

import numpy as np
import torch

from ..losses import get_loss
from ..models import build_gan
from ..utils import check_nonnegative_int, check_positive_float, check_positive_int, check_seed
from .config import check_weight
from .loop import Run
from .sampling import sample
from .steps import d_step, g_step

__all__ = ["ToyGame"]


def _points(data) -> torch.Tensor:
    arr = (data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)).astype(np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"data must have shape (N, 2), got {arr.shape}")
    return torch.as_tensor(arr, dtype=torch.float32)


class ToyGame:
    """A 2-D GAN game held in memory and played step by step.

    One call of :meth:`play` makes ``n`` generator steps, each after ``n_critic`` discriminator steps,
    with :func:`ganlab.train.d_step` and :func:`ganlab.train.g_step`: the same alternating updates as
    :func:`ganlab.fit`, but with settings (loss, learning rates, ``n_critic``) that may change between
    calls, as in GAN Lab. Real batches are drawn with replacement, and every draw (batches, noise, the
    gradient penalty's mixing) comes from one generator seeded with ``seed``.

    Args:
        data: ``(N, 2)`` real points (for example :func:`ganlab.data.ring_of_gaussians`).
        loss: a name from :func:`ganlab.losses.list_losses`.
        lr_d, lr_g: Adam learning rates; ``betas`` Adam's betas.
        n_critic: discriminator steps per generator step.
        gp_weight: WGAN-GP penalty weight (0: none).
        batch_size: points per step, for both players.
        z_dim, hidden_dim, num_layers, pack: the toy networks' sizes (see :mod:`ganlab.models.toy`).
        seed: seeds the weights, the batches, the noise and the fixed noise ``z`` (``n_show`` points) that
            a picture of the game shows.
    """

    def __init__(self, data, *, loss: str = "non_saturating", lr_d: float = 1e-3, lr_g: float = 1e-3,
                 n_critic: int = 1, gp_weight: float = 0.0, batch_size: int = 256, z_dim: int = 2,
                 hidden_dim: int = 128, num_layers: int = 3, pack: int = 1,
                 betas: tuple[float, float] = (0.5, 0.999), seed: int = 0, n_show: int = 500) -> None:
        self.data = _points(data)
        check_positive_int("batch_size", batch_size)
        check_positive_int("n_show", n_show)
        check_seed("seed", seed)
        if batch_size > len(self.data):
            raise ValueError(f"batch_size ({batch_size}) is larger than the data ({len(self.data)} points)")
        self.batch_size, self.seed, self.betas = batch_size, seed, betas
        self.model_args = dict(z_dim=z_dim, hidden_dim=hidden_dim, num_layers=num_layers, pack=pack)
        self.z = torch.randn(n_show, z_dim, generator=torch.Generator().manual_seed((seed + 1) % 2**64))
        self.lr_d, self.lr_g = 1e-3, 1e-3
        self.reset()
        self.set(loss=loss, lr_d=lr_d, lr_g=lr_g, n_critic=n_critic, gp_weight=gp_weight)

    def reset(self) -> None:
        """Start again from fresh random weights (the same ones for the same seed); settings are kept."""
        torch.manual_seed(self.seed)
        self.G, self.D = build_gan("toy", **self.model_args)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=self.lr_g, betas=self.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=self.lr_d, betas=self.betas)
        self.rng = torch.Generator().manual_seed(self.seed)
        self.step = 0
        self.history: dict[str, list[float]] = {}

    def set(self, *, loss: str | None = None, lr_d: float | None = None, lr_g: float | None = None,
            n_critic: int | None = None, gp_weight: float | None = None) -> None:
        """Change settings from the next step on (weights and optimiser moments are kept)."""
        if loss is not None:
            self.d_loss_fn, self.g_loss_fn = get_loss(loss)
            self.loss = loss
        for name, value, opt in (("lr_d", lr_d, self.opt_d), ("lr_g", lr_g, self.opt_g)):
            if value is not None:
                setattr(self, name, check_positive_float(name, value))
                for group in opt.param_groups:
                    group["lr"] = float(value)
        if n_critic is not None:
            self.n_critic = check_positive_int("n_critic", n_critic)
        if gp_weight is not None:
            self.gp_weight = float(check_weight("gp_weight", gp_weight))

    def play(self, n: int = 1) -> dict[str, float]:
        """Make ``n`` generator steps (each after ``n_critic`` discriminator steps); return the last losses.

        The history gets one row per call: the step reached and the last step's losses.
        """
        check_positive_int("n", n)
        with Run(steps=self.step + n, step=self.step, history=self.history, timed=False) as run:
            while run.running():
                for _ in range(self.n_critic):
                    idx = torch.randint(len(self.data), (self.batch_size,), generator=self.rng)
                    d_stats = d_step(self.G, self.D, self.data[idx], self.opt_d, self.d_loss_fn,
                                     gp_weight=self.gp_weight, generator=self.rng)
                g_stats = g_step(self.G, self.D, self.batch_size, self.opt_g, self.g_loss_fn, generator=self.rng)
                row = run.end_step({**d_stats, **g_stats})
        self.step = run.step
        return row

    def samples(self, n: int = 2500, *, seed: int | None = None) -> torch.Tensor:
        """``n`` generated points ``(n, 2)`` on the CPU (reproducible for a given ``seed``)."""
        return sample(self.G, n, seed=(self.seed + 2) % 2**64 if seed is None else seed)
