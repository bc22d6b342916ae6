"""DCGAN generator and discriminator (Radford, Metz & Chintala, 2016, https://arxiv.org/abs/1511.06434).

Taught in ``book/04_implementation.ipynb``, which builds both networks layer by layer.

Both networks are a stack of stride-2 (transposed) convolutions that double (halve) the image side,
with batch normalisation and ReLU / LeakyReLU in between, as in the paper. The side starts at a small
"base" size between 4 and 7, so any image side of the form ``base * 2**k`` works: 32 and 64
(base 4, the paper's power-of-two sizes) and MNIST's native 28 (base 7) alike. ganlab trains MNIST
at its native 28x28 (no padding): 23% fewer pixels than 32x32, so more steps in the same time.

The discriminator returns raw logits, shape ``(B,)``: losses apply the sigmoid in a numerically
stable form (see :mod:`ganlab.losses`).

Residual extra layers (``residual=True``): each of the ``extra_layers`` at the smallest resolution becomes
a residual block of two 3 x 3 convolutions, ``act(x + F(x))`` (He et al. 2016,
https://arxiv.org/abs/1512.03385), the block the SNGAN and BigGAN networks are built from. The identity
path lets a deeper stack train as quickly as a shallow one; the command line's MNIST recipe uses three
such blocks in each network (see ``ganlab/__main__.py`` for the measurements behind it).

Class conditioning (``num_classes``): the generator takes the label in one of two ways (``conditioning``):
``"concat"`` (the default), a learned embedding of the label concatenated to ``z`` (Mirza & Osindero 2014,
https://arxiv.org/abs/1411.1784), or ``"batchnorm"``, conditional batch normalisation (de Vries et al. 2017,
https://arxiv.org/abs/1707.00683; the generators of SNGAN and BigGAN): every batch norm of G gets a gain
and a bias per class (:class:`ConditionalBatchNorm2d`), so the label modulates every layer while ``z`` alone
enters the first. With the concatenation the label is one more input next to ``z`` and G can let it
decide everything: its digits of one class varied about a tenth as much as real ones (chapter 5a).

The discriminator takes the label in one of two ways (``conditioning``): ``"projection"`` (the default), a
projection discriminator (Miyato & Koyama 2018, https://arxiv.org/abs/1802.05637) whose logit gains the
inner product of a learned label embedding with its pooled features; or ``"input"``, the label as one-hot
maps stacked onto the image's channels (Mirza & Osindero's way), so that the first layer can learn
class-specific filters. The book's chapter 5a (``book/05a_generation_on_demand.ipynb``) measures both on
MNIST; ``ganlab.recipes.MNIST_COND`` (``python -m ganlab train cdcgan``) pairs conditional batch norm in G
with the projection.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..utils import (check_bool, check_choice, check_image_channels, check_nonnegative_int,
                     check_positive_float, check_positive_int)

__all__ = ["DCGANGenerator", "DCGANDiscriminator", "ResidualBlock", "ConditionalBatchNorm2d", "LatentMixture",
           "stage_plan", "dcgan_init_"]


def stage_plan(img_size: int) -> tuple[int, int]:
    """Return ``(base, n_stages)`` with ``img_size == base * 2**n_stages`` and ``4 <= base <= 7``.

    Raises ``ValueError`` for sizes that have no such form (for example 36 = 9 * 4, or 3).
    """
    check_positive_int("img_size", img_size)
    base, n = img_size, 0
    while base > 7 and base % 2 == 0:
        base //= 2
        n += 1
    if not 4 <= base <= 7 or n == 0:
        raise ValueError(
            f"img_size must be base * 2**k with base in 4..7 and k >= 1 (e.g. 28, 32, 64); got {img_size}"
        )
    return base, n


def dcgan_init_(module: nn.Module) -> None:
    """The paper's initialisation: conv weights ~ N(0, 0.02); batch-norm scales ~ N(1, 0.02), shifts 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            # under spectral norm `weight` is computed from `original`: initialise that one
            parametrized = nn.utils.parametrize.is_parametrized(m, "weight")
            nn.init.normal_(m.parametrizations.weight.original if parametrized else m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)) and m.affine:  # conditional ones have their own
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm with a gain and a bias per class (de Vries et al. 2017, https://arxiv.org/abs/1707.00683).

    ``out = γ[y] ⊙ (x - μ) / sqrt(σ² + ε) + β[y]``: ``μ, σ²`` are the batch's per-channel statistics
    (the running ones in eval mode), shared by all classes as in a plain ``BatchNorm2d`` without affine
    parameters; ``γ[y], β[y]`` are rows ``y`` of two ``(num_classes, num_features)`` tables. ``γ`` starts at
    1 and ``β`` at 0, so a new layer is plain batch norm and the classes part from there (as in SNGAN and
    BigGAN, whose generators are built on it).
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        check_positive_int("num_features", num_features)
        check_positive_int("num_classes", num_classes)
        self.num_features, self.num_classes = num_features, num_classes
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)   # γ, one row per class
        self.bias = nn.Embedding(num_classes, num_features)   # β
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        # (B, C, H, W) normalised, then scaled and shifted by the rows of the labels, (B, C) -> (B, C, 1, 1)
        return self.bn(x) * self.gain(y)[:, :, None, None] + self.bias(y)[:, :, None, None]


class LatentMixture(nn.Module):
    """Turn Gaussian noise into a mixture of ``components`` Gaussians with learned centres, as DeLiGAN does
    (Gurumurthy et al. 2017, https://arxiv.org/abs/1706.02071, which learns each component's spread too):
    ``z -> mu[k] + z``, where the component ``k`` is read off z's first coordinate, ``k = floor(K Phi(z_0))``
    (``Phi`` the normal CDF, so every component is equally likely), and the ``(K, z_dim)`` table ``mu`` is
    trained with G.

    A continuous generator fed one connected Gaussian draws a connected set of images, so some of its samples
    must lie between two digits, and that bounds the share of good samples (Khayatkhoei et al. 2018,
    https://arxiv.org/abs/1806.00880; Tanielian et al. 2020, https://arxiv.org/abs/2006.04596). The gaps
    between the components let G jump from one digit to another. The map is a function of ``z`` alone, so G
    still takes plain ``z ~ N(0, I)`` and every sampler, refinement and EMA of the package works unchanged.
    """

    def __init__(self, z_dim: int, components: int, scale: float = 1.25) -> None:
        super().__init__()
        check_positive_int("z_dim", z_dim)
        check_positive_int("components", components)
        check_positive_float("scale", scale)
        self.components = components
        # centres ~ N(0, scale^2 I), about sqrt(2 z_dim) scale apart: a little further than two draws of z
        # are from each other, so that the components overlap little (with scale 1, 0.5-2.3 points fewer
        # samples were confident on MNIST than with 1.25: see ganlab.recipes.MNIST)
        self.centers = nn.Parameter(torch.randn(components, z_dim) * scale)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        k = (torch.special.ndtr(z[:, 0].float()) * self.components).long().clamp_(0, self.components - 1)
        return self.centers[k].to(z.dtype) + z   # (B, z_dim)


def _run(layers: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``layers(x)``, with the labels ``y`` given to every :class:`ConditionalBatchNorm2d` (in blocks too)."""
    for layer in layers:
        x = layer(x, y) if isinstance(layer, (ConditionalBatchNorm2d, ResidualBlock)) else layer(x)
    return x


class ResidualBlock(nn.Module):
    """``act(x + body(x))``: a shape-preserving residual block (He et al. 2016).

    ``body`` must map ``(B, C, H, W)`` to the same shape (here two 3 x 3 convolutions with a
    normalisation and activation between them); ``act`` is applied after the sum. Labels ``y``, when
    given, go to the conditional batch norms of ``body`` (a ``Sequential``).
    """

    def __init__(self, body: nn.Module, act: nn.Module) -> None:
        super().__init__()
        self.body, self.act = body, act

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.act(x + (self.body(x) if y is None else _run(self.body, x, y)))


def _extra_layers(count: int, width: int, *, residual: bool, conv, norm, act) -> list[nn.Module]:
    """``count`` shape-preserving 3 x 3 layers at ``width`` channels: conv-norm-act, or residual blocks.

    ``conv(width)`` makes a 3 x 3 stride-1 convolution, ``norm(width)`` a normalisation (or identity),
    ``act()`` an activation.
    """
    layers: list[nn.Module] = []
    for _ in range(count):
        if residual:
            body = nn.Sequential(conv(width), norm(width), act(), conv(width), norm(width))
            layers.append(ResidualBlock(body, act()))
        else:
            layers += [conv(width), norm(width), act()]
    return layers


class DCGANGenerator(nn.Module):
    """Map noise ``z`` of shape ``(B, z_dim)`` to images ``(B, img_channels, img_size, img_size)`` in [-1, 1].

    Args:
        z_dim: length of the noise vector.
        img_channels: 1 (grey) or 3 (colour).
        img_size: image side, ``base * 2**k`` with base 4..7 (28, 32, 64, ...).
        base_channels: feature maps of the last hidden stage; each earlier stage has twice as many.
        num_classes: labels to condition on (``None``: unconditional); ``forward(z, y)`` then needs ``y``.
        extra_layers: 3 x 3 stride-1 convolution blocks added at the smallest resolution (7 x 7 for
            MNIST), where the image's overall layout is decided. The DCGAN paper has none; the WGAN
            reference code's ``n_extra_layers`` is the same idea at the full resolution.
        residual: make each extra layer a residual block of two convolutions (:class:`ResidualBlock`).
        conditioning: how a label enters (with ``num_classes``): ``"concat"`` (its embedding next to ``z``)
            or ``"batchnorm"`` (conditional batch norm in every layer); see the module docstring.
        latent_components: 0 (the default) feeds ``z`` to the first layer as it is; ``K > 0`` first maps it
            to a mixture of ``K`` Gaussians with learned centres (:class:`LatentMixture`).
    """

    def __init__(self, *, z_dim: int = 100, img_channels: int = 1, img_size: int = 28,
                 base_channels: int = 64, num_classes: int | None = None, extra_layers: int = 0,
                 residual: bool = False, conditioning: str = "concat", latent_components: int = 0) -> None:
        super().__init__()
        check_positive_int("z_dim", z_dim)
        check_choice("conditioning", conditioning, ("concat", "batchnorm"))
        check_nonnegative_int("extra_layers", extra_layers)
        check_bool("residual", residual)
        check_nonnegative_int("latent_components", latent_components)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        check_image_channels("img_channels", img_channels)
        check_positive_int("base_channels", base_channels)
        base, n = stage_plan(img_size)
        self.residual = residual
        self.z_dim, self.img_channels, self.img_size = z_dim, img_channels, img_size
        self.base_channels, self.num_classes, self.extra_layers = base_channels, num_classes, extra_layers
        self.model_args = dict(z_dim=z_dim, img_channels=img_channels, img_size=img_size,
                               base_channels=base_channels, num_classes=num_classes, extra_layers=extra_layers)
        if residual:  # only when set, so the args of checkpoints written before the option still match
            self.model_args["residual"] = True
        if conditioning != "concat":  # likewise
            self.model_args["conditioning"] = conditioning
        if latent_components:  # likewise
            self.model_args["latent_components"] = latent_components
        self.conditioning = conditioning
        cbn = num_classes is not None and conditioning == "batchnorm"
        # "concat": the label's embedding is as long as z and is concatenated to it
        self.embed = nn.Embedding(num_classes, z_dim) if num_classes is not None and not cbn else None
        in_dim = 2 * z_dim if self.embed is not None else z_dim
        norm = (lambda w: ConditionalBatchNorm2d(w, num_classes)) if cbn else nn.BatchNorm2d

        width = base_channels * 2 ** (n - 1)  # widest at the smallest side, halving as the side doubles
        layers: list[nn.Module] = [
            # (B, in_dim, 1, 1) -> (B, width, base, base): a transposed conv with kernel = base is a
            # fully connected projection of z onto a base x base grid
            nn.ConvTranspose2d(in_dim, width, kernel_size=base, stride=1, padding=0, bias=False),
            norm(width),
            nn.ReLU(inplace=True),
        ]
        # (B, width, base, base) -> same: depth where the digit's overall shape is decided
        layers += _extra_layers(extra_layers, width, residual=residual,
                                conv=lambda w: nn.Conv2d(w, w, kernel_size=3, stride=1, padding=1, bias=False),
                                norm=norm, act=lambda: nn.ReLU(inplace=True))
        for _ in range(n - 1):
            # (B, width, s, s) -> (B, width / 2, 2s, 2s)
            layers += [
                nn.ConvTranspose2d(width, width // 2, kernel_size=4, stride=2, padding=1, bias=False),
                norm(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        # (B, base_channels, img_size / 2, ...) -> (B, img_channels, img_size, img_size)
        layers += [nn.ConvTranspose2d(width, img_channels, kernel_size=4, stride=2, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        dcgan_init_(self)
        # drawn after the layers, so that a seed gives the layers the same weights with or without it
        self.latent = LatentMixture(z_dim, latent_components) if latent_components else None

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if z.dim() != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (B, {self.z_dim}), got {tuple(z.shape)}")
        if self.latent is not None:
            z = self.latent(z)   # (B, z_dim), from the mixture
        if self.num_classes is None:
            if y is not None:
                raise ValueError("y: this generator is unconditional (num_classes=None); pass no labels")
            return self.net(z[:, :, None, None])  # (B, z_dim) -> (B, z_dim, 1, 1)
        y = _check_labels(y, len(z), self.num_classes)
        if self.embed is None:  # conditional batch norm: the labels go to every normalisation
            return _run(self.net, z[:, :, None, None], y)
        z = torch.cat([z, self.embed(y)], dim=1)  # (B, 2 z_dim)
        return self.net(z[:, :, None, None])     # (B, 2 z_dim, 1, 1)


class DCGANDiscriminator(nn.Module):
    """Map images ``(B, img_channels, img_size, img_size)`` in [-1, 1] to logits ``(B,)``.

    Args:
        img_channels: 1 or 3.
        img_size: image side, ``base * 2**k`` with base 4..7.
        base_channels: feature maps of the first stage; each later stage has twice as many.
        num_classes: labels to condition on (``None``: unconditional); ``forward(x, y)`` then needs ``y``.
        spectral_norm: divide every weight by its largest singular value (Miyato et al. 2018,
            https://arxiv.org/abs/1802.05957) instead of using batch norm, which makes D 1-Lipschitz
            per layer.
        minibatch_std: append the standard deviation of the features across the batch as one more
            feature map before the last layer (Karras et al. 2018, https://arxiv.org/abs/1710.10196),
            so that D can see a batch without variety and G is pushed away from collapse.
        extra_layers: 3 x 3 stride-1 convolution blocks added at the smallest resolution, before the
            head (as in the generator).
        conditioning: how a label enters (with ``num_classes``): ``"projection"`` or ``"input"``
            (see the module docstring).
        residual: make each extra layer a residual block of two convolutions (:class:`ResidualBlock`).
    """

    def __init__(self, *, img_channels: int = 1, img_size: int = 28, base_channels: int = 64,
                 num_classes: int | None = None, spectral_norm: bool = False,
                 minibatch_std: bool = False, extra_layers: int = 0,
                 conditioning: str = "projection", residual: bool = False) -> None:
        super().__init__()
        check_nonnegative_int("extra_layers", extra_layers)
        check_bool("residual", residual)
        check_image_channels("img_channels", img_channels)
        check_positive_int("base_channels", base_channels)
        if num_classes is not None:
            check_positive_int("num_classes", num_classes)
        check_choice("conditioning", conditioning, ("projection", "input"))
        base, n = stage_plan(img_size)
        self.img_channels, self.img_size, self.base_channels = img_channels, img_size, base_channels
        self.num_classes, self.spectral_norm = num_classes, bool(spectral_norm)
        self.minibatch_std, self.extra_layers = bool(minibatch_std), extra_layers
        self.conditioning, self.residual = conditioning, residual
        self.model_args = dict(img_channels=img_channels, img_size=img_size, base_channels=base_channels,
                               num_classes=num_classes, spectral_norm=bool(spectral_norm),
                               minibatch_std=bool(minibatch_std), extra_layers=extra_layers)
        if conditioning != "projection":  # only when not the default, so older checkpoints' args still match
            self.model_args["conditioning"] = conditioning
        if residual:
            self.model_args["residual"] = True
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        label_maps = num_classes if num_classes is not None and conditioning == "input" else 0

        width = base_channels
        # no batch norm on the input layer, as in the paper
        layers: list[nn.Module] = [
            # (B, img_channels [+ num_classes label maps], size, size) -> (B, width, size / 2, size / 2)
            sn(nn.Conv2d(img_channels + label_maps, width, kernel_size=4, stride=2, padding=1)),
            nn.LeakyReLU(0.2, inplace=True),
        ]
        for _ in range(n - 1):
            # (B, width, s, s) -> (B, 2 width, s / 2, s / 2)
            layers += [
                sn(nn.Conv2d(width, width * 2, kernel_size=4, stride=2, padding=1, bias=spectral_norm)),
                nn.Identity() if spectral_norm else nn.BatchNorm2d(width * 2),
                nn.LeakyReLU(0.2, inplace=True),
            ]
            width *= 2
        # (B, width, base, base) -> same
        layers += _extra_layers(
            extra_layers, width, residual=residual,
            conv=lambda w: sn(nn.Conv2d(w, w, kernel_size=3, stride=1, padding=1, bias=spectral_norm)),
            norm=lambda w: nn.Identity() if spectral_norm else nn.BatchNorm2d(w),
            act=lambda: nn.LeakyReLU(0.2, inplace=True))
        self.features = nn.Sequential(*layers)  # (B, width, base, base)
        # (B, width, base, base) -> (B, 1, 1, 1): one logit per image
        self.head = sn(nn.Conv2d(width + int(minibatch_std), 1, kernel_size=base, stride=1, padding=0))
        # projection discriminator: logit += <embed(y), sum of features over space>
        self.embed = nn.Embedding(num_classes, width) if num_classes is not None and not label_maps else None
        dcgan_init_(self)
        if self.embed is not None:
            nn.init.normal_(self.embed.weight, 0.0, 0.02)  # start close to the unconditional logit

    @property
    def batch_independent(self) -> bool:
        """True when each image's logit depends on that image alone: spectral norm (no batch norm) and no
        minibatch std. ``fit`` then scores the real and the fake batch in one call (``joint_d_batch``)."""
        return self.spectral_norm and not self.minibatch_std

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        expected = (self.img_channels, self.img_size, self.img_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        if self.num_classes is not None:
            y = _check_labels(y, len(x), self.num_classes)
        elif y is not None:
            raise ValueError("y: this discriminator is unconditional (num_classes=None); pass no labels")
        if self.num_classes is not None and self.embed is None:
            # "input" conditioning: one constant map per class, 1 for the image's label, stacked onto it
            maps = F.one_hot(y.long(), self.num_classes).to(x.dtype)[:, :, None, None]  # (B, num_classes, 1, 1)
            x = torch.cat([x, maps.expand(-1, -1, *x.shape[2:])], dim=1)  # (B, img_channels + num_classes, H, W)
        h = self.features(x)                   # (B, width, base, base)
        if self.minibatch_std:
            # one number per batch: the mean over features and positions of the std across the batch
            std = h.float().std(dim=0, unbiased=False).mean().to(h.dtype) if len(h) > 1 else h.new_zeros(())
            logits = self.head(torch.cat([h, std.expand(len(h), 1, *h.shape[2:])], dim=1)).flatten()
        else:
            logits = self.head(h).flatten()    # (B, 1, 1, 1) -> (B,)
        if self.embed is not None:
            e = self.embed(y)                  # (B, width)
            logits = logits + (e * h.sum(dim=(2, 3))).sum(dim=1)
        return logits


def _check_labels(y: torch.Tensor | None, n: int, num_classes: int) -> torch.Tensor:
    if y is None:
        raise ValueError(f"y: this network is class-conditional (num_classes={num_classes}); pass labels")
    if y.shape != (n,) or y.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"y must be an integer tensor of shape ({n},), got {tuple(y.shape)} {y.dtype}")
    return y
