"""The networks of the book, and one typed builder per registered model pair.

Each registered pair has a builder with keyword-only, typed arguments (torchvision's ``resnet50(*, ...)``
style), so every option a chapter or the command line passes is in a signature: :func:`build_dcgan`,
:func:`build_toy` and, for image-to-image models (which take no noise), :func:`build_pix2pix`; the photo
restorer :class:`RestorationUNet` is built by ``ganlab.recipes.RESTORE``. A shared
argument (``img_size``) goes to both networks; a ``g_`` / ``d_`` prefix marks an option of one network
(``d_spectral_norm``), or overrides a shared one for it (``d_base_channels``).

``build_gan(name, **kwargs)`` dispatches to the builder registered as ``name`` (``"dcgan"``, ``"toy"``)
and names any argument the builder does not take; ``list_models()`` lists the names.
``GAN_REGISTRY`` maps each name to its ``(generator class, discriminator class)``, which is how a
checkpoint records and rebuilds its networks. The VAE (:class:`VAE`, ``book/03_gan_vs_vae.ipynb``) is not
a GAN and is built directly.
"""
from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import nn

from ..utils import check_seed
from .classifier import MNISTClassifier
from .cyclegan import ResnetBlock, ResnetGenerator
from .dcgan import ConditionalBatchNorm2d, DCGANDiscriminator, DCGANGenerator, stage_plan
from .pix2pix import PatchGANDiscriminator, RestorationUNet, UNetGenerator
from .toy import ToyDiscriminator, ToyGenerator
from .vae import VAE, VAEDecoder, VAEEncoder

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "ConditionalBatchNorm2d",
    "MNISTClassifier",
    "VAE",
    "VAEEncoder",
    "VAEDecoder",
    "stage_plan",
    "ToyGenerator",
    "ToyDiscriminator",
    "UNetGenerator",
    "PatchGANDiscriminator",
    "ResnetGenerator",
    "ResnetBlock",
    "CycleGANNets",
    "build_cyclegan",
    "RestorationUNet",
    "build_dcgan",
    "build_toy",
    "build_pix2pix",
    "build_gan",
    "list_models",
    "register_gan",
    "GAN_REGISTRY",
]

Pair = tuple[nn.Module, nn.Module]


def build_dcgan(*, z_dim: int = 100, img_channels: int = 1, img_size: int = 28, base_channels: int = 64,
                g_base_channels: int | None = None, d_base_channels: int | None = None,
                num_classes: int | None = None, extra_layers: int = 0, residual: bool = False,
                d_spectral_norm: bool = False, d_minibatch_std: bool = False,
                g_conditioning: str = "concat", d_conditioning: str = "projection",
                latent_components: int = 0, spectral_norm: bool | None = None) -> Pair:
    """A :class:`DCGANGenerator` and a :class:`DCGANDiscriminator` for the same images (G built first).

    Args:
        z_dim: noise length (G).
        img_channels, img_size: the images (both).
        base_channels: feature maps of the widest-resolution stage (both), unless ``g_base_channels`` /
            ``d_base_channels`` set one network's.
        num_classes: class-conditional pair (both); ``None``: unconditional.
        extra_layers, residual: 3 x 3 blocks at the smallest resolution, residual or not (both).
        d_spectral_norm: spectral norm on D's layers instead of batch norm (Miyato et al. 2018).
        d_minibatch_std: D sees the features' spread over the batch (Karras et al. 2018).
        g_conditioning: how a label enters G: ``"concat"`` (an embedding next to z) or ``"batchnorm"``
            (conditional batch norm, a gain and bias per class in every layer).
        d_conditioning: how a label enters D: ``"projection"`` or ``"input"``.
        latent_components: G maps z to a mixture of this many Gaussians with learned centres first
            (:class:`~ganlab.models.dcgan.LatentMixture`); 0: z as it is.
        spectral_norm: deprecated spelling of ``d_spectral_norm``.
    """
    if spectral_norm is not None:
        warnings.warn("build_dcgan(spectral_norm=...) is deprecated: it is D's option, d_spectral_norm=...",
                      DeprecationWarning, stacklevel=3)
        d_spectral_norm = spectral_norm
    shared = dict(img_channels=img_channels, img_size=img_size, num_classes=num_classes,
                  extra_layers=extra_layers, residual=residual)
    g_width = base_channels if g_base_channels is None else g_base_channels
    G = DCGANGenerator(z_dim=z_dim, base_channels=g_width, conditioning=g_conditioning,
                       latent_components=latent_components, **shared)
    D = DCGANDiscriminator(base_channels=base_channels if d_base_channels is None else d_base_channels, spectral_norm=d_spectral_norm,
                           minibatch_std=d_minibatch_std, conditioning=d_conditioning, **shared)
    return G, D


def build_toy(*, z_dim: int = 2, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3,
              pack: int = 1, d_minibatch_std: bool = False) -> Pair:
    """A :class:`ToyGenerator` and a :class:`ToyDiscriminator`, MLPs for 2-D points (G built first).

    Args:
        z_dim: noise length (G); data_dim: point dimension (both).
        hidden_dim, num_layers: width and depth of both MLPs.
        pack: D judges ``pack`` points at once (PacGAN, Lin et al. 2018).
        d_minibatch_std: D sees the points' spread over the batch.
    """
    G = ToyGenerator(z_dim=z_dim, data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers)
    D = ToyDiscriminator(data_dim=data_dim, hidden_dim=hidden_dim, num_layers=num_layers, pack=pack,
                         minibatch_std=d_minibatch_std)
    return G, D


def build_pix2pix(*, in_channels: int = 1, out_channels: int = 1, base_channels: int = 32,
                  g_base_channels: int | None = None, d_base_channels: int | None = None,
                  g_depth: int = 2, g_residual: bool = False, d_n_layers: int = 2) -> Pair:
    """A :class:`UNetGenerator` (image to image) and a :class:`PatchGANDiscriminator` of (output, input)
    pairs (G built first).

    Args:
        in_channels, out_channels: channels of the input and of the output image (both).
        base_channels: the first stage's feature maps (both), unless ``g_`` / ``d_base_channels`` set one.
        g_depth: U-Net down-sampling stages; g_residual: G predicts a correction added to its input.
        d_n_layers: PatchGAN stride-2 layers (the patch each logit sees grows with them).
    """
    G = UNetGenerator(in_channels=in_channels, out_channels=out_channels,
                      base_channels=base_channels if g_base_channels is None else g_base_channels, depth=g_depth, residual=g_residual)
    D = PatchGANDiscriminator(in_channels=in_channels, out_channels=out_channels,
                              base_channels=base_channels if d_base_channels is None else d_base_channels, n_layers=d_n_layers)
    return G, D


class CycleGANNets(NamedTuple):
    """CycleGAN's four networks: the generators A -> B and B -> A, and the judges of domains A and B."""

    G_AB: nn.Module
    G_BA: nn.Module
    D_A: nn.Module
    D_B: nn.Module


def build_cyclegan(*, channels: int = 3, base_channels: int = 16, g_base_channels: int | None = None,
                   d_base_channels: int | None = None, g_n_downsampling: int = 2, g_n_blocks: int = 3,
                   d_n_layers: int = 2, seed: int | None = None) -> CycleGANNets:
    """Two :class:`ResnetGenerator` and two unconditional, instance-normalised :class:`PatchGANDiscriminator`
    for CycleGAN (built in the order G_AB, G_BA, D_A, D_B).

    Args:
        channels: image channels of both domains (a grey domain is repeated into three).
        base_channels: the first layer's feature maps (all four), unless ``g_`` / ``d_base_channels`` set them.
        g_n_downsampling, g_n_blocks: the generators' stride-2 levels and residual blocks.
        d_n_layers: the discriminators' stride-2 layers.
        seed: as for :func:`build_gan`: the initial weights are a function of it alone.
    """
    def build() -> CycleGANNets:
        g = dict(channels=channels, base_channels=base_channels if g_base_channels is None else g_base_channels,
                 n_downsampling=g_n_downsampling, n_blocks=g_n_blocks)
        d = dict(in_channels=0, out_channels=channels, norm="instance", n_layers=d_n_layers,
                 base_channels=base_channels if d_base_channels is None else d_base_channels)
        G_AB, G_BA = ResnetGenerator(**g), ResnetGenerator(**g)
        return CycleGANNets(G_AB, G_BA, PatchGANDiscriminator(**d), PatchGANDiscriminator(**d))

    if seed is None:
        return build()
    check_seed("seed", seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


# name -> (generator class, discriminator class): what a checkpoint records, and rebuilds from
GAN_REGISTRY: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {}
_BUILDERS: dict[str, Callable[..., Pair]] = {}


def register_gan(name: str, generator: type[nn.Module], discriminator: type[nn.Module],
                 builder: Callable[..., Pair]) -> None:
    """Register a pair under ``name``: its two classes and its typed builder (keyword-only arguments)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in GAN_REGISTRY:
        raise ValueError(f"name: a GAN called {name!r} is already registered")
    GAN_REGISTRY[name] = (generator, discriminator)
    _BUILDERS[name] = builder


def _arguments(builder: Callable[..., Pair]) -> list[str]:
    return [p.name for p in inspect.signature(builder).parameters.values() if p.kind == p.KEYWORD_ONLY]


def list_models(*, accepts: str | None = None) -> list[str]:
    """Names accepted by :func:`build_gan`, sorted.

    ``accepts``: keep only the pairs whose builder takes this keyword, for example
    ``list_models(accepts="img_size")`` for the image GANs (not the 2-D ``"toy"`` pair).
    """
    return sorted(name for name, builder in _BUILDERS.items() if accepts is None or accepts in _arguments(builder))


def _dispatch(caller: str, builders: dict[str, Callable[..., Pair]], name: str, kwargs: dict) -> Pair:
    if name not in builders:
        raise ValueError(f"name must be one of {', '.join(map(repr, sorted(builders)))}; got {name!r}")
    accepted = _arguments(builders[name])
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise TypeError(f"{caller}({name!r}) got unexpected keyword argument(s) {', '.join(map(repr, unknown))}; "
                        f"it takes {', '.join(accepted)}")
    return builders[name](**kwargs)


def build_gan(name: str, *, seed: int | None = None, **kwargs) -> Pair:
    """Build the generator and discriminator registered as ``name`` with its builder (see the module
    docstring): ``build_gan("dcgan", **kw)`` is ``build_dcgan(**kw)``, ``build_gan("toy", **kw)`` is
    ``build_toy(**kw)``. An argument the builder does not take is a ``TypeError`` naming it.

    ``seed`` (an integer in ``[0, 2**64)``) makes the initial weights a function of it alone: they are drawn
    from torch's global generator seeded with it, whose state is restored afterwards. ``None`` draws them
    from the global generator as it stands (seed it with ``torch.manual_seed`` for the same effect).
    """
    if seed is None:
        return _dispatch("build_gan", _BUILDERS, name, kwargs)
    check_seed("seed", seed)
    with torch.random.fork_rng(devices=[]):  # the CPU generator only: every initialiser draws from it
        torch.manual_seed(seed)
        return _dispatch("build_gan", _BUILDERS, name, kwargs)


register_gan("dcgan", DCGANGenerator, DCGANDiscriminator, build_dcgan)
register_gan("toy", ToyGenerator, ToyDiscriminator, build_toy)
