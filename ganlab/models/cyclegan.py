"""CycleGAN's networks (Zhu et al. 2017, https://arxiv.org/abs/1703.10593), sized for 28 x 28 digits.

Taught in ``book/05c_unpaired_translation.ipynb`` and trained by :func:`ganlab.train.fit_cyclegan`.

* :class:`ResnetGenerator` is the generator of CycleGAN's reference code (junyanz/pytorch-CycleGAN-and-pix2pix,
  ``ResnetGenerator``), after Johnson et al. 2016 (https://arxiv.org/abs/1603.08155): a 7 x 7 convolution,
  ``n_downsampling`` stride-2 convolutions, ``n_blocks`` residual blocks at the smallest size, as many
  stride-2 transposed convolutions back up and a 7 x 7 convolution to the output, with instance
  normalisation (Ulyanov et al. 2016, https://arxiv.org/abs/1607.08022) and reflection padding. The
  paper uses 64 maps, 2 down-samplings and 6 or 9 blocks on 128- or 256-pixel photographs; a digit needs
  far fewer. Unlike a U-Net it has no skip connection from input to output: every pixel it draws passes
  through the bottleneck, where the residual blocks see the whole 7 x 7 map of a 28 x 28 image.
* The discriminators are :class:`ganlab.models.PatchGANDiscriminator` with no condition
  (``in_channels=0``) and instance normalisation, as CycleGAN's.

Instance normalisation keeps no running statistics, so the networks compute the same in train and eval
mode, one image at a time.
"""
from __future__ import annotations

import torch
from torch import nn

from ..utils import check_image_channels, check_nonnegative_int, check_positive_int
from .dcgan import dcgan_init_

__all__ = ["ResnetGenerator", "ResnetBlock"]


def _norm(channels: int) -> nn.Module:
    return nn.InstanceNorm2d(channels)  # no affine parameters, no running statistics (the reference's)


class ResnetBlock(nn.Module):
    """``x + F(x)`` with ``F`` two reflection-padded 3 x 3 convolutions with instance norm (ReLU between)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels), nn.ReLU(inplace=True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), _norm(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """Map images ``(B, channels, H, W)`` to images of the same shape in [-1, 1].

    Args:
        channels: image channels on both sides (3; a grey domain is its grey value in all three, so that
            the identity loss can feed either domain to either generator).
        base_channels: feature maps at full resolution; each down-sampling doubles them.
        n_downsampling: stride-2 levels; ``H`` and ``W`` must be divisible by ``2 ** n_downsampling``.
        n_blocks: residual blocks at the smallest resolution.
    """

    def __init__(self, *, channels: int = 3, base_channels: int = 16, n_downsampling: int = 2,
                 n_blocks: int = 3) -> None:
        super().__init__()
        check_image_channels("channels", channels)
        check_positive_int("base_channels", base_channels)
        check_nonnegative_int("n_downsampling", n_downsampling)
        check_nonnegative_int("n_blocks", n_blocks)
        self.channels, self.base_channels = channels, base_channels
        self.n_downsampling, self.n_blocks = n_downsampling, n_blocks
        self.model_args = dict(channels=channels, base_channels=base_channels, n_downsampling=n_downsampling,
                               n_blocks=n_blocks)
        w = base_channels
        layers: list[nn.Module] = [  # (B, C, H, W) -> (B, w, H, W)
            nn.ReflectionPad2d(3), nn.Conv2d(channels, w, 7), _norm(w), nn.ReLU(inplace=True)]
        for i in range(n_downsampling):  # (B, w 2^i, s, s) -> (B, w 2^(i+1), s / 2, s / 2)
            c = w * 2 ** i
            layers += [nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), _norm(2 * c), nn.ReLU(inplace=True)]
        bottleneck = w * 2 ** n_downsampling
        layers += [ResnetBlock(bottleneck) for _ in range(n_blocks)]  # (B, bottleneck, H / 2^n, W / 2^n)
        for i in reversed(range(n_downsampling)):  # (B, w 2^(i+1), s, s) -> (B, w 2^i, 2s, 2s)
            c = w * 2 ** i
            layers += [nn.ConvTranspose2d(2 * c, c, 3, stride=2, padding=1, output_padding=1), _norm(c),
                       nn.ReLU(inplace=True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(w, channels, 7), nn.Tanh()]  # (B, C, H, W) in [-1, 1]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)  # N(0, 0.02), the reference code's init_type="normal"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = 2 ** self.n_downsampling
        if x.dim() != 4 or x.shape[1] != self.channels or x.shape[2] % k or x.shape[3] % k:
            raise ValueError(f"x must have shape (B, {self.channels}, H, W) with H and W divisible by {k}, "
                             f"got {tuple(x.shape)}")
        return self.net(x)
