"""ganlab: the tested PyTorch package behind the book "GAN Lab".

Models, losses, training loops, metrics and plots for generative adversarial networks, written to be
read next to the book's chapters (``book/``). The names notebooks use are re-exported here::

    import ganlab as gl
    G, D = gl.models.build_gan("dcgan", z_dim=64, img_size=28)
    result = gl.fit(G, D, gl.data.MNIST(train=True), gl.TrainConfig(steps=500))
    images = gl.sample(result.generator, 64, seed=0)

Image-to-image (chapter 5b): ``gl.degrade`` makes the degraded inputs, ``gl.translate.fit_pix2pix`` trains
a U-Net restorer with L1 plus an adversarial loss, ``gl.classical`` holds the classical baselines (scikit-image,
BM3D) and ``gl.restore`` applies a trained restorer to whole photographs.
"""
from ._version import __version__  # noqa: E402

from . import (augment, bench, classical, data, degrade, diagnostics, errors, losses, metrics,  # noqa: E402
               models, recipes, restore, train, translate, utils, viz)
from .diagnostics import Finding, diagnose  # noqa: E402
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint  # noqa: E402
from .errors import DataError, UsageError  # noqa: E402
from .train import (TrainConfig, TrainResult, d_step, fit, fit_vae, g_step, load_discriminator,  # noqa: E402
                    load_generator, refine_latents, sample)
from .utils import device_of, get_device, seed_everything  # noqa: E402

__all__ = [
    "__version__",
    "augment",
    "classical",
    "data",
    "diagnostics",
    "diagnose",
    "Finding",
    "degrade",
    "errors",
    "losses",
    "metrics",
    "models",
    "recipes",
    "restore",
    "train",
    "translate",
    "utils",
    "viz",
    "TrainConfig",
    "TrainResult",
    "fit",
    "fit_vae",
    "d_step",
    "g_step",
    "sample",
    "load_generator",
    "load_discriminator",
    "refine_latents",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "UsageError",
    "DataError",
    "get_device",
    "device_of",
    "seed_everything",
]
