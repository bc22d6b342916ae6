"""The networks of the book, registered by name.

The GAN pairs are registered; the VAE (:class:`VAE`, ``book/03_gan_vs_vae.ipynb``) is not a GAN and is
built directly.

``build_gan(name, **kwargs)`` returns a ``(generator, discriminator)`` pair; ``list_models()`` lists the
names. Keyword arguments are split between the two networks by name (``z_dim`` goes to the generator
only; ``img_channels``, ``img_size`` and ``base_channels`` go to both).

Registered pairs: ``"dcgan"`` (images, :mod:`.dcgan`) and ``"toy"`` (MLPs for 2-D points, :mod:`.toy`).
Image-to-image pairs (a generator that maps an image to an image, and a conditional discriminator) have
their own registry, because they take no noise: ``build_translation(name, **kwargs)`` and
``list_translation_models()``, e.g. ``build_translation("pix2pix", in_channels=2, out_channels=1)``.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable

from torch import nn

from .classifier import MNISTClassifier
from .dcgan import DCGANDiscriminator, DCGANGenerator, stage_plan
from .pix2pix import PatchGANDiscriminator, UNetGenerator
from .toy import ToyDiscriminator, ToyGenerator
from .vae import VAE, VAEDecoder, VAEEncoder

__all__ = [
    "DCGANGenerator",
    "DCGANDiscriminator",
    "MNISTClassifier",
    "VAE",
    "VAEEncoder",
    "VAEDecoder",
    "stage_plan",
    "ToyGenerator",
    "ToyDiscriminator",
    "build_gan",
    "list_models",
    "register_gan",
    "GAN_REGISTRY",
    "UNetGenerator",
    "PatchGANDiscriminator",
    "build_translation",
    "list_translation_models",
    "register_translation",
    "TRANSLATION_REGISTRY",
]

GAN_REGISTRY: dict[str, tuple[Callable[..., nn.Module], Callable[..., nn.Module]]] = {}
# image-to-image pairs: G maps an image to an image (no z), D judges (output, input) pairs
TRANSLATION_REGISTRY: dict[str, tuple[Callable[..., nn.Module], Callable[..., nn.Module]]] = {}


def register_gan(name: str, generator: Callable[..., nn.Module], discriminator: Callable[..., nn.Module]) -> None:
    """Register a ``(generator class, discriminator class)`` pair under ``name``."""
    _register(GAN_REGISTRY, "a GAN", name, generator, discriminator)


def _register(registry, kind: str, name: str, generator, discriminator) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if name in registry:
        raise ValueError(f"name: {kind} called {name!r} is already registered")
    registry[name] = (generator, discriminator)


def list_models(*, accepts: str | None = None) -> list[str]:
    """Names accepted by :func:`build_gan`, sorted.

    ``accepts``: keep only the pairs whose generator takes this keyword, for example
    ``list_models(accepts="img_size")`` for the image GANs (not the 2-D ``"toy"`` pair).
    """
    if accepts is None:
        return sorted(GAN_REGISTRY)
    return sorted(name for name, (g_cls, _) in GAN_REGISTRY.items() if accepts in _accepted(g_cls))


def _accepted(cls: Callable[..., nn.Module]) -> set[str]:
    return {p.name for p in inspect.signature(cls).parameters.values() if p.kind == p.KEYWORD_ONLY}


def build_gan(name: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """Build the generator and discriminator registered as ``name``.

    Each keyword goes to every network whose constructor takes it; one that neither takes is an error.
    ``g_base_channels`` / ``d_base_channels`` set the two widths separately.
    """
    return _build(GAN_REGISTRY, "build_gan", name, kwargs)


def _build(registry, caller: str, name: str, kwargs: dict) -> tuple[nn.Module, nn.Module]:
    if name not in registry:
        raise ValueError(f"name must be one of {', '.join(map(repr, sorted(registry)))}; got {name!r}")
    g_cls, d_cls = registry[name]
    g_kw = {k: v for k, v in kwargs.items() if k in _accepted(g_cls)}
    d_kw = {k: v for k, v in kwargs.items() if k in _accepted(d_cls)}
    for prefix, target in (("g_", g_kw), ("d_", d_kw)):
        for k, v in kwargs.items():
            if k.startswith(prefix):
                target[k[len(prefix):]] = v
    unknown = [k for k in kwargs if k not in g_kw and k not in d_kw
               and not k.startswith(("g_", "d_"))]
    if unknown:
        raise TypeError(f"{caller}({name!r}) got unexpected keyword argument(s): {', '.join(unknown)}")
    return g_cls(**g_kw), d_cls(**d_kw)


def register_translation(name: str, generator: Callable[..., nn.Module],
                         discriminator: Callable[..., nn.Module]) -> None:
    """Register an image-to-image ``(generator class, discriminator class)`` pair under ``name``."""
    _register(TRANSLATION_REGISTRY, "a translation model", name, generator, discriminator)


def list_translation_models() -> list[str]:
    """Names accepted by :func:`build_translation`, sorted."""
    return sorted(TRANSLATION_REGISTRY)


def build_translation(name: str, **kwargs) -> tuple[nn.Module, nn.Module]:
    """Build the image-to-image pair registered as ``name``; keywords are split as in :func:`build_gan`.

    ``in_channels``, ``out_channels`` and ``base_channels`` go to both networks; ``g_`` / ``d_`` prefixes
    set one of them only (``g_depth=3``, ``d_n_layers=3``).
    """
    return _build(TRANSLATION_REGISTRY, "build_translation", name, kwargs)


register_gan("dcgan", DCGANGenerator, DCGANDiscriminator)
register_gan("toy", ToyGenerator, ToyDiscriminator)
register_translation("pix2pix", UNetGenerator, PatchGANDiscriminator)
