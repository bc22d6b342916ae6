"""The classical restorations the learned ones are measured against, from scikit-image, on tensor batches.

Taught in ``book/05b_image_restoration.ipynb``. Each function takes a batch ``(N, C, H, W)`` in
[-1, 1] (ganlab's range), runs the scikit-image method image by image on the [0, 1] scale, and returns
a batch in [-1, 1] on the CPU (inputs are not clamped, so unclipped noise reaches the methods as it is;
outputs are clipped to the pixel range):

* :func:`bm3d`: block-matching and 3-D filtering (Dabov et al. 2007), the ``bm3d`` package (its colour
  version, CBM3D, for colour images): the strongest classical denoiser of Gaussian noise;
* :func:`nl_means`: non-local means denoising (Buades et al. 2005), ``skimage.restoration.denoise_nl_means``;
* :func:`total_variation`: total-variation denoising (Chambolle 2004), ``denoise_tv_chambolle``;
* :func:`biharmonic`: inpainting by the biharmonic equation, ``skimage.restoration.inpaint_biharmonic``;
* :func:`bicubic`: upscaling by cubic interpolation, ``skimage.transform.resize(order=3)``;
* :func:`lanczos`: upscaling by Lanczos-3 interpolation (Pillow's ``Image.LANCZOS``, on floats);
* :func:`grey_as_colour`: the greyscale baseline of colourisation (the grey image in every channel).

None of them learns anything from data; the ones with a strength parameter should get it tuned on
training images before they are compared (the chapter does that), so that the comparison is fair.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .data import to_signed
from .utils import check_positive_float, check_positive_int

__all__ = ["bm3d", "nl_means", "total_variation", "biharmonic", "bicubic", "lanczos", "grey_as_colour"]


def _check(name: str, x) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3) or len(x) == 0:
        raise ValueError(f"{name} must be a tensor (N, 1 or 3, H, W) with N > 0, got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    return x


def _per_image(images: torch.Tensor, fn: Callable[[np.ndarray, int], np.ndarray]) -> torch.Tensor:
    # (N, C, H, W) in [-1, 1] -> fn on each (H, W) or (H, W, 3) in [0, 1] -> (N, C, H', W') in [-1, 1]
    # not clamped on the way in: unclipped noise must stay Gaussian (clamping it would bias dark areas)
    x = ((images.detach().double().cpu() + 1.0) / 2.0).numpy()
    out = []
    for i, img in enumerate(x):
        arr = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
        res = np.asarray(fn(arr, i), dtype=np.float64)
        out.append(res[None] if res.ndim == 2 else np.moveaxis(res, -1, 0))
    return to_signed(torch.from_numpy(np.clip(np.stack(out), 0, 1)).float())


def _channel_axis(images: torch.Tensor) -> int | None:
    return -1 if images.shape[1] == 3 else None


def bm3d(images: torch.Tensor, *, sigma: float) -> torch.Tensor:
    """BM3D (Dabov et al. 2007): groups of similar patches, filtered together in a 3-D transform domain.

    ``sigma`` is the noise standard deviation on the [0, 1] scale. Colour images go through CBM3D
    (``bm3d.bm3d_rgb``, which filters in an opponent colour space), grey ones through ``bm3d.bm3d``. About
    a minute per megapixel of colour on one CPU core.
    """
    try:
        import bm3d as bm3d_package
    except ImportError as exc:  # an optional dependency (the `images` extra), not installed
        raise ImportError("ganlab.classical.bm3d needs the bm3d package: pip install bm3d (or "
                          "pip install 'ganlab[images]')") from exc

    _check("images", images)
    sigma = check_positive_float("sigma", sigma)
    if images.shape[1] == 3:
        return _per_image(images, lambda img, i: bm3d_package.bm3d_rgb(img, sigma))
    return _per_image(images, lambda img, i: bm3d_package.bm3d(img, sigma))


def nl_means(images: torch.Tensor, *, sigma: float, h_factor: float = 0.8, patch_size: int = 5,
             patch_distance: int = 6) -> torch.Tensor:
    """Non-local means: each pixel becomes a weighted mean of pixels whose surrounding patches look alike.

    ``sigma`` is the noise standard deviation on the [0, 1] scale; the filter strength is
    ``h = h_factor * sigma`` (0.8 is scikit-image's suggestion when sigma is known).
    """
    from skimage.restoration import denoise_nl_means

    _check("images", images)
    sigma = check_positive_float("sigma", sigma)
    h_factor = check_positive_float("h_factor", h_factor)
    check_positive_int("patch_size", patch_size)
    check_positive_int("patch_distance", patch_distance)
    axis = _channel_axis(images)
    return _per_image(images, lambda img, i: denoise_nl_means(
        img, h=h_factor * sigma, sigma=sigma, patch_size=patch_size, patch_distance=patch_distance,
        fast_mode=True, channel_axis=axis))


def total_variation(images: torch.Tensor, *, weight: float) -> torch.Tensor:
    """Total-variation denoising (Chambolle's algorithm): ``weight`` trades smoothness for fidelity."""
    from skimage.restoration import denoise_tv_chambolle

    _check("images", images)
    weight = check_positive_float("weight", weight)
    axis = _channel_axis(images)
    return _per_image(images, lambda img, i: denoise_tv_chambolle(img, weight=weight, channel_axis=axis))


def biharmonic(images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Fill the pixels where ``mask`` ``(N, 1, H, W)`` is true by solving the biharmonic equation.

    The known pixels are kept as they are; the missing ones get the smoothest surface that meets them.
    """
    from skimage.restoration import inpaint_biharmonic

    _check("images", images)
    m = torch.as_tensor(mask).detach().cpu()
    if m.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(f"mask must have shape ({images.shape[0]}, 1, {images.shape[2]}, {images.shape[3]}), "
                         f"got {tuple(m.shape)}")
    m = m.bool().numpy()[:, 0]
    axis = _channel_axis(images)
    return _per_image(images, lambda img, i: inpaint_biharmonic(img, m[i], channel_axis=axis)
                      if m[i].any() else img)


def bicubic(images: torch.Tensor, *, factor: int) -> torch.Tensor:
    """Upscale small images ``(N, C, h, w)`` to ``(N, C, h * factor, w * factor)`` by cubic interpolation."""
    from skimage.transform import resize

    _check("images", images)
    check_positive_int("factor", factor)
    h, w = images.shape[-2:]
    axis = _channel_axis(images)
    size = (h * factor, w * factor) + ((3,) if axis is not None else ())
    return _per_image(images, lambda img, i: resize(img, size, order=3, mode="edge", anti_aliasing=False))


def lanczos(images: torch.Tensor, *, factor: int) -> torch.Tensor:
    """Upscale small images ``(N, C, h, w)`` by ``factor`` with Lanczos-3 interpolation (Pillow, on floats)."""
    from PIL import Image

    _check("images", images)
    check_positive_int("factor", factor)
    h, w = images.shape[-2:]

    def resize(img, i):
        channels = img[..., None] if img.ndim == 2 else img
        out = [np.asarray(Image.fromarray(channels[..., c].astype(np.float32), mode="F")
                          .resize((w * factor, h * factor), Image.LANCZOS)) for c in range(channels.shape[-1])]
        return np.stack(out, axis=-1) if img.ndim == 3 else out[0]

    return _per_image(images, resize)


def grey_as_colour(images: torch.Tensor) -> torch.Tensor:
    """The colourisation baseline: grey images ``(N, 1, H, W)`` repeated into three channels ``(N, 3, H, W)``."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images must be grey, shape (N, 1, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    return images.detach().float().cpu().repeat(1, 3, 1, 1)
