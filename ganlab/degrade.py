"""Image degradations for the restoration tasks: noise, missing pixels, downsampling, greyscale.

Taught in ``book/05b_image_restoration.ipynb``, which trains networks to undo each of them
(pix2pix-style, Isola et al. 2017, https://arxiv.org/abs/1611.07004) and compares them with the
classical methods of :mod:`ganlab.classical` (the networks are trained by :func:`ganlab.translate.fit_pix2pix`).

Every degradation is a small callable object that maps a batch ``(B, C, H, W)`` in [-1, 1] (ganlab's
pixel range) to a degraded batch. The random ones draw all their randomness from a CPU
``torch.Generator`` (``seed=`` makes a fresh one), so a seed gives the same degradation on any
device; :func:`to_8bit` rounds a batch as saving it to an 8-bit file would. :class:`Compose` chains them. Strengths are given in the units a reader knows:

* :class:`GaussianNoise` ``sigma`` is the standard deviation on the [0, 1] scale (``25 / 255`` is the
  classic photo-denoising benchmark); on ganlab's [-1, 1] scale the noise is ``2 * sigma``.
* :class:`BoxMask` / :class:`PixelMask` blank pixels and, by default, append the mask as one more
  channel (1 where a pixel is missing, 0 where it is known), because a restorer must know *which*
  pixels to fill: a blanked pixel looks like any mid-grey pixel. Put masks last in a :class:`Compose`.
* :class:`Downsample` averages ``factor x factor`` blocks (the low-resolution image) and, by default,
  repeats each low-resolution pixel back to the original size, so every task maps an image to an image
  of the same size (the information is that of the small image; nothing is interpolated).
* :class:`BicubicDownsample` is the super-resolution benchmarks' degradation: anti-aliased bicubic
  shrinking, returning the small image (the photo restorers enlarge it themselves).
* :class:`Greyscale` keeps the luminance ``0.2125 R + 0.7154 G + 0.0721 B`` (the weights of
  ``skimage.color.rgb2gray``), ``(B, 3, H, W) -> (B, 1, H, W)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .errors import UsageError
from .utils import check_finite, check_positive_int, check_probability

__all__ = [
    "Degradation",
    "GaussianNoise",
    "BoxMask",
    "PixelMask",
    "Downsample",
    "BicubicDownsample",
    "Greyscale",
    "Compose",
    "split_mask",
    "LUMA_WEIGHTS",
    "to_8bit",
]

LUMA_WEIGHTS = (0.2125, 0.7154, 0.0721)  # ITU-R BT.709, as skimage.color.rgb2gray


def _check_images(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a torch.Tensor of images (B, C, H, W), got {type(x).__name__}")
    if x.dim() != 4 or not x.is_floating_point():
        raise UsageError(f"x must be a float tensor of shape (B, C, H, W), got {x.dtype} {tuple(x.shape)}")
    return check_finite("x", x)


def _number(name: str, value, *, low: float = 0.0, low_open: bool = False, high: float | None = None) -> float:
    # a finite number in the bounds: an infinite sigma or fill would silently make every pixel inf or NaN
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    ok = (value > low if low_open else value >= low) and (high is None or value <= high)
    if not ok:
        bounds = f"{'(' if low_open else '['}{low}, {high if high is not None else 'inf'}{']' if high is not None else ')'}"
        raise UsageError(f"{name} must be in {bounds}, got {value!r}")
    return float(value)


class Degradation:
    """Base class: ``deg(x, seed=None, generator=None)`` returns the degraded batch (``x`` is not changed).

    Subclasses implement ``_apply(x, generator)``. With neither ``seed`` nor ``generator`` the global
    torch random state is used (like ``torch.randn``); pass one of them for a reproducible result.
    """

    def __call__(self, x: torch.Tensor, *, seed: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images(x)
        if seed is not None and generator is not None:
            raise ValueError("seed and generator: pass one of them, not both")
        if seed is not None:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
            generator = torch.Generator().manual_seed(seed)
        elif generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
        return self._apply(x, generator)

    def _apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


def _rand(shape, generator, device) -> torch.Tensor:
    # drawn on the CPU, then moved: the same seed gives the same numbers on every device
    return torch.rand(shape, generator=generator).to(device)


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Clamp ``x`` to [-1, 1] and round it to the 256 levels of an 8-bit image file (in [-1, 1])."""
    return ((x.clamp(-1.0, 1.0) + 1.0) * 127.5).round() / 127.5 - 1.0


class GaussianNoise(Degradation):
    """Add white Gaussian noise of standard deviation ``sigma`` (on the [0, 1] scale) to every pixel.

    Args:
        sigma: a number > 0, or a pair ``(low, high)``: each image then gets its own sigma drawn
            uniformly from that range ("blind" denoising, for a restorer that must handle any strength).
        clip: clamp the result to [-1, 1], as saving the noisy image to a file would. Off by default:
            denoising benchmarks add the noise unclipped, so that it stays Gaussian with mean zero.
        quantize: also round to the 256 levels of an 8-bit file (implies ``clip``): the noisy image a
            restorer gets from a PNG, which is what ``python -m ganlab restore`` reads.
    """

    def __init__(self, *, sigma: float | tuple[float, float], clip: bool = False, quantize: bool = False) -> None:
        if isinstance(sigma, (tuple, list)):
            if len(sigma) != 2:
                raise ValueError(f"sigma must be a number or a pair (low, high), got {sigma!r}")
            low = _number("sigma", sigma[0], low_open=True)
            high = _number("sigma", sigma[1], low_open=True)
            if high < low:
                raise ValueError(f"sigma: the range must have low <= high, got {sigma!r}")
            self.sigma: float | tuple[float, float] = (low, high)
        else:
            self.sigma = _number("sigma", sigma, low_open=True)
        self.clip = bool(clip) or bool(quantize)
        self.quantize = bool(quantize)

    def _apply(self, x, generator):
        noise = torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        if isinstance(self.sigma, tuple):
            low, high = self.sigma
            sigma = low + (high - low) * _rand((len(x), 1, 1, 1), generator, x.device).to(x.dtype)
        else:
            sigma = self.sigma
        y = x + 2.0 * sigma * noise  # sigma is on the [0, 1] scale; [-1, 1] is twice as wide
        if self.quantize:
            return to_8bit(y)
        return y.clamp(-1.0, 1.0) if self.clip else y


class _Mask(Degradation):
    """Shared by the masks: blank the missing pixels with ``fill`` and optionally append the mask."""

    def __init__(self, *, fill: float, mask_channel: bool) -> None:
        self.fill = _number("fill", fill, low=-1.0, high=1.0)
        self.mask_channel = bool(mask_channel)

    def _missing(self, x, generator) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def _apply(self, x, generator):
        missing = self._missing(x, generator)          # (B, 1, H, W) bool, True where a pixel is missing
        y = x.masked_fill(missing, self.fill)          # the same pixels blank in every channel
        if self.mask_channel:
            y = torch.cat([y, missing.to(x.dtype)], dim=1)  # (B, C + 1, H, W)
        return y


class BoxMask(_Mask):
    """Blank ``count`` boxes per image, each at a random position that lies fully inside it.

    Args:
        size: side of the box in pixels (an int, or ``(height, width)``).
        max_size: with it, each box's height and width are drawn independently and uniformly from
            ``size .. max_size`` (ints); ``None``: every box is ``size``.
        count: boxes per image (they may overlap).
        fill: value written into the missing pixels (0 is mid-grey in [-1, 1]).
        mask_channel: append the mask as the last channel (1 = missing).
    """

    def __init__(self, *, size: int | tuple[int, int], max_size: int | None = None, count: int = 1,
                 fill: float = 0.0, mask_channel: bool = True) -> None:
        super().__init__(fill=fill, mask_channel=mask_channel)
        sides = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        if len(sides) != 2:
            raise ValueError(f"size must be an int or a pair (height, width), got {size!r}")
        self.size = (check_positive_int("size", sides[0]), check_positive_int("size", sides[1]))
        if max_size is not None:
            check_positive_int("max_size", max_size)
            if max_size < max(self.size):
                raise ValueError(f"max_size must be at least size, got {max_size!r} < {size!r}")
        self.max_size = max_size
        self.count = check_positive_int("count", count)

    def _missing(self, x, generator):
        b, _, h, w = x.shape
        top_size = self.max_size if self.max_size is not None else max(self.size)
        if self.size[0] > h or self.size[1] > w:
            raise ValueError(f"size: a {self.size[0]}x{self.size[1]} box does not fit in {h}x{w} images")
        rows, cols = torch.arange(h), torch.arange(w)
        missing = torch.zeros(b, h, w, dtype=torch.bool)
        for _ in range(self.count):
            if self.max_size is None:
                bh = torch.full((b,), self.size[0])
                bw = torch.full((b,), self.size[1])
            else:  # sides drawn from size .. max_size, cut to the image
                bh = (self.size[0] + _rand(b, generator, "cpu") * (min(top_size, h) - self.size[0] + 1)).long()
                bw = (self.size[1] + _rand(b, generator, "cpu") * (min(top_size, w) - self.size[1] + 1)).long()
            top = (_rand(b, generator, "cpu") * (h - bh + 1)).long()
            left = (_rand(b, generator, "cpu") * (w - bw + 1)).long()
            inside_r = (rows[None] >= top[:, None]) & (rows[None] < (top + bh)[:, None])    # (B, H)
            inside_c = (cols[None] >= left[:, None]) & (cols[None] < (left + bw)[:, None])  # (B, W)
            missing |= inside_r[:, :, None] & inside_c[:, None, :]
        return missing[:, None].to(x.device)                                                 # (B, 1, H, W)


class PixelMask(_Mask):
    """Blank each pixel independently with probability ``fraction`` (the same pixels in every channel).

    Args:
        fraction: probability that a pixel is missing, in [0, 1).
        fill: value written into the missing pixels.
        mask_channel: append the mask as the last channel (1 = missing).
    """

    def __init__(self, *, fraction: float, fill: float = 0.0, mask_channel: bool = True) -> None:
        super().__init__(fill=fill, mask_channel=mask_channel)
        self.fraction = check_probability("fraction", fraction)

    def _missing(self, x, generator):
        b, _, h, w = x.shape
        return _rand((b, 1, h, w), generator, x.device) < self.fraction


def _divisible_sides(x: torch.Tensor, factor: int) -> tuple[int, int]:
    """The image sides ``(H, W)`` of ``x``, both divisible by ``factor`` (else a ValueError naming it)."""
    h, w = x.shape[-2:]
    if h % factor or w % factor:
        raise ValueError(f"factor: the image sides ({h}x{w}) must be divisible by {factor}")
    return h, w


class Downsample(Degradation):
    """Average ``factor x factor`` blocks: a ``factor``-times smaller image (deterministic).

    Args:
        factor: the reduction of each side; the image sides must be divisible by it.
        resize_back: repeat every small pixel ``factor x factor`` times (nearest neighbour), so the
            output has the input's size; ``False`` returns the small image.
    """

    def __init__(self, *, factor: int, resize_back: bool = True) -> None:
        self.factor = check_positive_int("factor", factor)
        self.resize_back = bool(resize_back)

    def _apply(self, x, generator):
        h, w = _divisible_sides(x, self.factor)
        small = F.avg_pool2d(x, self.factor)                       # (B, C, H / f, W / f)
        return F.interpolate(small, scale_factor=self.factor, mode="nearest") if self.resize_back else small


class BicubicDownsample(Degradation):
    """Shrink by ``factor`` with anti-aliased bicubic interpolation: ``(B, C, H, W) -> (B, C, H / f, W / f)``.

    The standard degradation of super-resolution benchmarks (MATLAB's ``imresize``, which low-pass filters
    before it samples; here ``torch.nn.functional.interpolate(..., mode="bicubic", antialias=True)``, which
    follows Pillow's). The result is clamped to [-1, 1] (bicubic weights overshoot at edges).

    Args:
        factor: the reduction of each side; the image sides must be divisible by it.
        quantize: round to the 256 levels of an 8-bit file, as the small image a user hands over is.
    """

    def __init__(self, *, factor: int, quantize: bool = False) -> None:
        self.factor = check_positive_int("factor", factor)
        self.quantize = bool(quantize)

    def _apply(self, x, generator):
        h, w = _divisible_sides(x, self.factor)
        small = F.interpolate(x, size=(h // self.factor, w // self.factor), mode="bicubic", antialias=True,
                              align_corners=False)                   # (B, C, H / f, W / f)
        return to_8bit(small) if self.quantize else small.clamp(-1.0, 1.0)


class Greyscale(Degradation):
    """Colour to grey: ``(B, 3, H, W) -> (B, 1, H, W)``, the luminance with skimage's ``rgb2gray`` weights.

    The weights sum to 1, so the same weighted sum is right on the [-1, 1] and the [0, 1] scales.
    """

    def _apply(self, x, generator):
        if x.shape[1] != 3:
            raise ValueError(f"x must have 3 colour channels, got {x.shape[1]}")
        weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)
        return (x * weights[None, :, None, None]).sum(dim=1, keepdim=True)


class Compose(Degradation):
    """Apply ``degradations`` in order, all drawing from the same generator."""

    def __init__(self, *degradations: Degradation) -> None:
        if not degradations:
            raise ValueError("degradations: give at least one")
        for i, d in enumerate(degradations):
            if not isinstance(d, Degradation):
                raise TypeError(f"degradations[{i}] must be a Degradation, got {type(d).__name__}")
        self.degradations = tuple(degradations)

    def _apply(self, x, generator):
        for d in self.degradations:
            x = d._apply(x, generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({', '.join(map(repr, self.degradations))})"


def split_mask(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Split a masked batch ``(B, C + 1, H, W)`` into the image ``(B, C, H, W)`` and the mask ``(B, 1, H, W)`` (bool)."""
    _check_images(x)
    if x.shape[1] < 2:
        raise ValueError(f"x must have the mask as an extra channel, got {x.shape[1]} channel(s)")
    return x[:, :-1], x[:, -1:] > 0.5
