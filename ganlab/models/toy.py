"""Small MLPs for GANs on 2-D points: the players of the game drawn in ``book/02_adversarial_game.ipynb``.

On 2-D data (a ring or a grid of Gaussians, :mod:`ganlab.data`) everything about the game can be seen:
the discriminator's output is a surface over the plane and the generator's samples are dots on it, as
in GAN Lab (Kahng et al. 2019, https://arxiv.org/abs/1809.01587). These MLPs are the usual networks of
that benchmark (Metz et al. 2017, https://arxiv.org/abs/1611.02163; Srivastava et al. 2017,
https://arxiv.org/abs/1705.07761): a few fully connected ReLU layers of a few hundred units.

Packing (PacGAN, Lin et al. 2018, https://arxiv.org/abs/1712.04086) lives in the discriminator:
with ``pack=m`` it reads ``m`` consecutive points of a batch as one input of ``m * data_dim`` numbers
and returns one logit per pack, so a batch of ``B`` points gives ``B / m`` logits. A pack of generated
points from a collapsed generator looks unlike a pack of real ones (too alike), which D can detect
and G is then pushed away from. Losses need no change: they average over whatever logits D returns.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..utils import check_positive_int

__all__ = ["ToyGenerator", "ToyDiscriminator"]


def _mlp(in_dim: int, hidden_dim: int, num_layers: int, out_dim: int, activation: Callable[[], nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(num_layers):
        layers += [nn.Linear(width, hidden_dim), activation()]
        width = hidden_dim
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


class ToyGenerator(nn.Module):
    """Map noise ``(B, z_dim)`` to points ``(B, data_dim)``: an MLP with ``num_layers`` ReLU hidden layers.

    The output layer is linear (no ``tanh``): toy data live on the whole plane, not in [-1, 1].

    Args:
        z_dim: length of the noise vector (2 lets the noise be drawn as a plane too, as GAN Lab does).
        data_dim: dimension of the points (2 for the book's toys).
        hidden_dim: units per hidden layer.
        num_layers: hidden layers.
    """

    def __init__(self, *, z_dim: int = 2, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3) -> None:
        super().__init__()
        for name, value in (("z_dim", z_dim), ("data_dim", data_dim), ("hidden_dim", hidden_dim),
                            ("num_layers", num_layers)):
            check_positive_int(name, value)
        self.z_dim, self.data_dim, self.hidden_dim, self.num_layers = z_dim, data_dim, hidden_dim, num_layers
        self.model_args = dict(z_dim=z_dim, data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers)
        self.net = _mlp(z_dim, hidden_dim, num_layers, data_dim, nn.ReLU)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z)  # (B, z_dim) -> (B, data_dim)


class ToyDiscriminator(nn.Module):
    """Map points ``(B, data_dim)`` to logits ``(B // pack,)``: an MLP with ``num_layers`` hidden layers.

    LeakyReLU (slope 0.2) keeps a gradient on both sides of every unit, so the surface G climbs is
    never flat where a unit is off.

    Args:
        data_dim: dimension of the points.
        hidden_dim: units per hidden layer.
        num_layers: hidden layers.
        pack: points judged together (PacGAN); 1 is the ordinary discriminator. The batch size must be
            a multiple of ``pack``.
        minibatch_std: append the standard deviation of the last hidden features across the batch as one
            more feature before the output layer (Karras et al. 2018, https://arxiv.org/abs/1710.10196,
            a simple form of minibatch discrimination): a batch without variety looks fake to D.
    """

    def __init__(self, *, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3, pack: int = 1,
                 minibatch_std: bool = False) -> None:
        super().__init__()
        for name, value in (("data_dim", data_dim), ("hidden_dim", hidden_dim), ("num_layers", num_layers),
                            ("pack", pack)):
            check_positive_int(name, value)
        self.data_dim, self.hidden_dim, self.num_layers, self.pack = data_dim, hidden_dim, num_layers, pack
        self.minibatch_std = bool(minibatch_std)
        self.model_args = dict(data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers, pack=pack,
                               minibatch_std=self.minibatch_std)
        self.net = _mlp(pack * data_dim, hidden_dim, num_layers, 1, lambda: nn.LeakyReLU(0.2))
        if self.minibatch_std:  # the output layer reads one more feature
            self.net[-1] = nn.Linear(hidden_dim + 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.data_dim:
            raise ValueError(f"x must have shape (B, {self.data_dim}), got {tuple(x.shape)}")
        if x.shape[0] % self.pack:
            raise ValueError(f"x: the batch size ({x.shape[0]}) must be a multiple of pack={self.pack}")
        packed = x.reshape(x.shape[0] // self.pack, self.pack * self.data_dim)  # (B / pack, pack * data_dim)
        if not self.minibatch_std:
            return self.net(packed).squeeze(1)  # (B / pack,) logits
        h = self.net[:-1](packed)  # (B / pack, hidden_dim)
        # one number per batch: the mean over features of their standard deviation across the batch
        std = h.std(dim=0, unbiased=False).mean() if len(h) > 1 else h.new_zeros(())
        return self.net[-1](torch.cat([h, std.expand(len(h), 1)], dim=1)).squeeze(1)
