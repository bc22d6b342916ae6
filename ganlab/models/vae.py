"""A convolutional variational autoencoder (Kingma & Welling 2014, https://arxiv.org/abs/1312.6114).

Taught in ``book/03_gan_vs_vae.ipynb``, which trains it against a DCGAN on the same data and budget.

The *encoder* maps an image ``x`` to the mean ``mu`` and log-variance ``logvar`` of a diagonal Gaussian
``q(z | x) = N(mu, diag(exp(logvar)))``; the *decoder* maps a latent ``z`` to the parameters of
``p(x | z)``. Training maximises the evidence lower bound (ELBO, see :func:`ganlab.losses.vae_loss`)
with the reparameterisation ``z = mu + exp(logvar / 2) * eps``, ``eps ~ N(0, I)``, which makes the
sample a differentiable function of the encoder's outputs.

To make the comparison with the GAN about the *objective* and not the network, the two halves reuse
the DCGAN layouts of :mod:`ganlab.models.dcgan`: the encoder is the DCGAN discriminator's convolutional
stack with a linear head of ``2 * z_dim`` numbers instead of one logit, and the decoder is the DCGAN
generator with its final ``tanh`` replaced by a Bernoulli likelihood:

* ``VAEDecoder.logits(z)`` gives one logit ``l`` per pixel; the pixel's intensity in [0, 1] is modelled
  as a Bernoulli probability ``sigmoid(l)`` (as Kingma & Welling did for MNIST);
* ``VAEDecoder(z)`` returns that mean image in ganlab's range [-1, 1]:
  ``2 sigmoid(l) - 1 = tanh(l / 2)``. It has a ``z_dim`` attribute, so ``ganlab.sample(vae.decoder, n,
  seed=0)`` draws ``z ~ N(0, I)`` and decodes it, exactly as it samples a GAN generator.
"""
from __future__ import annotations

import torch
from torch import nn

from ..utils import check_image_channels, check_nonnegative_int, check_positive_int
from .dcgan import DCGANDiscriminator, DCGANGenerator

__all__ = ["VAE", "VAEEncoder", "VAEDecoder"]


def _args(*, residual: bool, **args) -> dict:
    # `residual` is recorded only when set, as the DCGAN networks do
    return {**args, "residual": residual} if residual is not False else args  # anything else is checked


class VAEEncoder(nn.Module):
    """Map images ``(B, img_channels, img_size, img_size)`` in [-1, 1] to ``(mu, logvar)``, each ``(B, z_dim)``.

    The convolutional stack is the DCGAN discriminator's (stride-2 convolutions, batch norm, LeakyReLU);
    a linear layer maps its ``(B, width, base, base)`` output to ``2 * z_dim`` numbers.
    """

    def __init__(self, *, z_dim: int = 16, img_channels: int = 1, img_size: int = 28,
                 base_channels: int = 32, extra_layers: int = 0, residual: bool = False) -> None:
        super().__init__()
        check_positive_int("z_dim", z_dim)
        check_image_channels("img_channels", img_channels)
        self.z_dim, self.img_channels, self.img_size, self.base_channels = z_dim, img_channels, img_size, base_channels
        self.extra_layers, self.residual = extra_layers, residual
        self.model_args = _args(z_dim=z_dim, img_channels=img_channels, img_size=img_size,
                                base_channels=base_channels, extra_layers=extra_layers, residual=residual)
        # borrow the discriminator's feature stack (and its initialisation); drop its one-logit head
        d = DCGANDiscriminator(img_channels=img_channels, img_size=img_size, base_channels=base_channels,
                               extra_layers=extra_layers, residual=residual)
        self.features = d.features                                     # (B, width, base, base)
        width, base = d.head.in_channels, d.head.kernel_size[0]
        self.head = nn.Linear(width * base * base, 2 * z_dim)          # (B, width * base * base) -> (B, 2 z_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        expected = (self.img_channels, self.img_size, self.img_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        h = self.head(self.features(x).flatten(1))                     # (B, 2 z_dim)
        mu, logvar = h.chunk(2, dim=1)                                 # two (B, z_dim) halves
        return mu, logvar


class VAEDecoder(nn.Module):
    """Map latents ``z`` ``(B, z_dim)`` to images ``(B, img_channels, img_size, img_size)`` in [-1, 1].

    The layers are the DCGAN generator's without its last ``tanh``: :meth:`logits` returns the Bernoulli
    logits of the pixels, and ``forward`` the mean image ``tanh(logits / 2)`` (= ``2 sigmoid - 1``).
    """

    def __init__(self, *, z_dim: int = 16, img_channels: int = 1, img_size: int = 28,
                 base_channels: int = 32, extra_layers: int = 0, residual: bool = False) -> None:
        super().__init__()
        check_image_channels("img_channels", img_channels)
        g = DCGANGenerator(z_dim=z_dim, img_channels=img_channels, img_size=img_size, base_channels=base_channels,
                           extra_layers=extra_layers, residual=residual)
        self.z_dim, self.img_channels, self.img_size, self.base_channels = z_dim, img_channels, img_size, base_channels
        self.extra_layers, self.residual = extra_layers, residual
        self.model_args = _args(z_dim=z_dim, img_channels=img_channels, img_size=img_size,
                                base_channels=base_channels, extra_layers=extra_layers, residual=residual)
        self.net = g.net[:-1]  # the generator's layers up to, not including, its tanh

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """Per-pixel Bernoulli logits ``(B, img_channels, img_size, img_size)``."""
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])                           # (B, z_dim) -> (B, z_dim, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(0.5 * self.logits(z))                        # 2 sigmoid(l) - 1, in [-1, 1]


class VAE(nn.Module):
    """A convolutional VAE: ``forward(x)`` returns ``(logits, mu, logvar)`` for :func:`ganlab.losses.vae_loss`.

    Args:
        z_dim: length of the latent vector (the prior is ``N(0, I)`` in ``z_dim`` dimensions).
        img_channels: 1 (grey) or 3 (colour).
        img_size: image side, ``base * 2**k`` with base 4..7 (28, 32, 64, ...), as for the DCGAN.
        base_channels: width of the encoder's first and the decoder's last stage (DCGAN convention).
        extra_layers: 3 x 3 stride-1 convolution blocks at the smallest resolution of both halves, as the
            DCGAN's ``extra_layers`` (0: the plain DCGAN layouts).
        residual: make those extra layers residual blocks, as the DCGAN's ``residual``.

    ``encoder`` and ``decoder`` are the two halves; ``decoder`` has a ``z_dim`` attribute, so
    ``ganlab.sample(vae.decoder, n, seed=...)`` samples from the prior. :meth:`reconstruct` encodes and
    decodes with the posterior mean.
    """

    def __init__(self, *, z_dim: int = 16, img_channels: int = 1, img_size: int = 28,
                 base_channels: int = 32, extra_layers: int = 0, residual: bool = False) -> None:
        super().__init__()
        check_nonnegative_int("extra_layers", extra_layers)
        args = _args(z_dim=z_dim, img_channels=img_channels, img_size=img_size, base_channels=base_channels,
                     extra_layers=extra_layers, residual=residual)
        self.encoder = VAEEncoder(**args)
        self.decoder = VAEDecoder(**args)
        self.z_dim, self.img_channels, self.img_size, self.base_channels = z_dim, img_channels, img_size, base_channels
        self.extra_layers, self.residual = extra_layers, residual
        self.model_args = args

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """``z = mu + exp(logvar / 2) * eps`` with ``eps ~ N(0, I)`` (drawn on the CPU from ``generator``)."""
        eps = torch.randn(mu.shape, generator=generator).to(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def forward(self, x: torch.Tensor, *, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(logits, mu, logvar)``: decoder logits for one posterior sample per image, and ``q(z | x)``."""
        mu, logvar = self.encoder(x)                                   # (B, z_dim) each
        z = self.reparameterize(mu, logvar, generator=generator)      # (B, z_dim)
        return self.decoder.logits(z), mu, logvar

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The posterior means ``mu`` ``(B, z_dim)`` (in eval mode, without gradients): each image's code."""
        was_training = self.training
        self.eval()
        try:
            return self.encoder(x)[0]
        finally:
            self.train(was_training)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Decode the posterior mean of each image (in eval mode): images in [-1, 1] of ``x``'s shape."""
        was_training = self.training
        self.eval()
        try:
            return self.decoder(self.encoder(x)[0])
        finally:
            self.train(was_training)
