"""Restoring whole photographs with a trained restorer: the four tasks, tiling, and image files.

Taught in ``book/05b_image_restoration.ipynb``; used by ``python -m ganlab train restore`` (which trains a
:class:`ganlab.models.RestorationUNet` on crops of photographs, :mod:`ganlab.recipes`) and
``python -m ganlab restore`` (which applies it to an image file of any size).

:data:`TASKS` holds, per task, what the network sees and the degradation it is trained to undo:

========== ======================================= ==============================================
task       input of the network                    degradation of the training crops
========== ======================================= ==============================================
denoise    the noisy colour image                  Gaussian noise, sigma 25/255, saved in 8 bits
sr4        the colour image, 4 x smaller           anti-aliased bicubic shrinking, saved in 8 bits
inpaint    the colour image, holes at 0, the mask  one to three boxes of 8 to 48 pixels a side
colorize   the luminance                           colour removed (``0.2125 R + 0.7154 G + 0.0721 B``)
========== ======================================= ==============================================

:func:`restore_image` applies a restorer to one image with the overlap-tile strategy of the U-Net paper
(Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597): the image is cut into tiles, each tile is
restored with a margin of context around it, and only its centre is kept, so that a large photograph
needs the memory of one tile and shows no seams. :func:`read_image` and :func:`write_image` are the
checked file side of ``ganlab restore``: a bad file is one line naming it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .degrade import BicubicDownsample, BoxMask, Degradation, GaussianNoise, Greyscale
from .data import to_signed, to_unit
from .errors import UsageError, one_line
from .utils import atomic_write, check_choice, check_nonnegative_int, check_positive_int, device_of

__all__ = ["Task", "TASKS", "network_input", "restore_image", "save_restorer", "read_image", "read_mask",
           "write_image", "MAX_PIXELS", "MIN_SIDE"]

MAX_PIXELS = 40_000_000   # the largest image (input or output) `ganlab restore` takes: 40 megapixels
MIN_SIDE = 8              # and the smallest side


@dataclass(frozen=True)
class Task:
    """A restoration task: what the network takes and makes, and the degradation it learns to undo."""

    name: str
    in_channels: int                    # 3 colour, 4 colour + mask, 1 luminance
    upscale: int                        # output side / input side
    degradation: Degradation         # applied to clean crops (B, 3, H, W) in [-1, 1]
    colour_input: bool                  # the input file must be a colour image (else any image)
    description: str


TASKS: dict[str, Task] = {
    "denoise": Task("denoise", 3, 1, GaussianNoise(sigma=25 / 255, quantize=True), True,
                    "remove Gaussian noise of sigma 25/255 from a colour photograph"),
    "sr4": Task("sr4", 3, 4, BicubicDownsample(factor=4, quantize=True), True,
                "enlarge a colour photograph 4 times (undo anti-aliased bicubic shrinking)"),
    "inpaint": Task("inpaint", 4, 1, BoxMask(size=8, max_size=48, count=3, fill=0.0), True,
                    "fill the pixels a mask marks as missing"),
    "colorize": Task("colorize", 1, 1, Greyscale(), False,
                     "add colour to the luminance of any image"),
}


def _task(task: str | Task) -> Task:
    if isinstance(task, Task):
        return task
    check_choice("task", task, tuple(TASKS))
    return TASKS[task]


def network_input(task: str | Task, image: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """What the task's network takes for ``image`` ``(B, 3 or 1, H, W)`` in [-1, 1] (and a ``mask``
    ``(B, 1, H, W)``, true where a pixel is missing, for inpainting): the image itself, the image with its
    missing pixels at 0 and the mask appended ``(B, 4, H, W)``, or the luminance ``(B, 1, H, W)``."""
    t = _task(task)
    if not isinstance(image, torch.Tensor) or image.dim() != 4 or image.shape[1] not in (1, 3):
        raise UsageError(f"image must be a tensor (B, 1 or 3, H, W), got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    if t.colour_input and image.shape[1] != 3:
        raise UsageError(f"image: the {t.name} task needs a colour image (3 channels), got 1")
    if t.name == "colorize":
        return image if image.shape[1] == 1 else Greyscale()(image)
    if t.name != "inpaint":
        return image
    if mask is None:
        raise UsageError("mask: the inpaint task needs a mask (true, or white, where a pixel is missing)")
    mask = torch.as_tensor(mask).to(image.device)
    if mask.shape != (image.shape[0], 1, *image.shape[2:]):
        raise UsageError(f"mask must have shape ({image.shape[0]}, 1, {image.shape[2]}, {image.shape[3]}), "
                         f"got {tuple(mask.shape)}")
    mask = mask.bool()
    return torch.cat([image.masked_fill(mask, 0.0), mask.to(image.dtype)], dim=1)  # as BoxMask makes it


def _multiple(G: nn.Module) -> int:
    return 2 ** int(getattr(G, "depth", 0))


@torch.no_grad()
def restore_image(G: nn.Module, task: str | Task, image: torch.Tensor, mask: torch.Tensor | None = None, *,
                  tile: int = 256, margin: int = 32, ensemble: bool = False) -> torch.Tensor:
    """Restore one image ``(3 or 1, H, W)`` in [-1, 1]; returns ``(3, upscale H, upscale W)`` on the CPU.

    The network input (:func:`network_input`) is cut into ``tile x tile`` tiles; each is restored with
    ``margin`` pixels of context on every side (mirrored at the image's borders) and only its centre is
    kept, so the result does not depend on where the tiles fall, as long as ``margin`` covers most of what
    the network looks at. For inpainting the known pixels are kept as they are and only the missing ones
    are taken from the network. ``tile`` and ``margin`` are rounded up to a multiple of ``2 ** G.depth``.

    ``ensemble`` restores the image in each of the eight flips and rotations of the square, undoes them and
    averages the eight results (the "self-ensemble" of Lim et al. 2017, https://arxiv.org/abs/1707.02921):
    eight times the work, for a restorer whose errors differ between orientations.
    """
    if ensemble:
        results = []
        for k in range(8):
            def turn(x, undo=False, k=k):
                if undo:
                    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
                    return x.flip(-1) if k >= 4 else x
                x = x.flip(-1) if k >= 4 else x
                return torch.rot90(x, k % 4, dims=(-2, -1))

            results.append(turn(restore_image(G, task, turn(image), None if mask is None else turn(mask),
                                              tile=tile, margin=margin), undo=True))
        return torch.stack(results).mean(dim=0)
    t = _task(task)
    check_positive_int("tile", tile)
    check_nonnegative_int("margin", margin)
    if not isinstance(image, torch.Tensor) or image.dim() != 3:
        raise UsageError(f"image must be one image (C, H, W), got "
                         f"{tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__}")
    k = _multiple(G)
    tile, margin = k * math.ceil(tile / k), k * math.ceil(margin / k)
    x = network_input(t, image[None].float(), None if mask is None else torch.as_tensor(mask)[None])
    _, c, h, w = x.shape
    s = t.upscale
    # pad to whole tiles, plus the margin on every side (mirrored; repeated where the image is too small)
    rows, cols = math.ceil(h / tile), math.ceil(w / tile)
    pads = (margin, cols * tile - w + margin, margin, rows * tile - h + margin)  # left, right, top, bottom
    mode = "reflect" if max(pads) < min(h, w) else "replicate"
    padded = F.pad(x, pads, mode=mode)
    out = torch.empty(3, rows * tile * s, cols * tile * s)
    device = device_of(G)
    was_training = G.training
    G.eval()
    try:
        for i in range(rows):
            for j in range(cols):
                piece = padded[:, :, i * tile:i * tile + tile + 2 * margin, j * tile:j * tile + tile + 2 * margin]
                y = G(piece.to(device)).float().cpu()[0]             # (3, s (tile + 2 margin), ...)
                out[:, i * tile * s:(i + 1) * tile * s, j * tile * s:(j + 1) * tile * s] = \
                    y[:, margin * s:(margin + tile) * s, margin * s:(margin + tile) * s]
    finally:
        G.train(was_training)
    out = out[:, :h * s, :w * s]
    if t.name == "inpaint":
        keep = ~torch.as_tensor(mask).bool().cpu()                   # (1, H, W)
        out = torch.where(keep, image.float().cpu(), out)
    return out


def save_restorer(run_dir: str | os.PathLike, G: nn.Module, task: str) -> Path:
    """Write ``G``, a restorer for ``task``, as ``run_dir/checkpoint.pt`` for ``python -m ganlab restore``.

    The checkpoint is the one :func:`ganlab.translate.fit_pix2pix` writes, without the optimisers (so it
    can be applied, not resumed): for a restorer trained in a notebook.
    """
    from .checkpoint import save_checkpoint
    from .train import CHECKPOINT_NAME
    from .train.pix2pix import PIX2PIX_GENERATORS

    t = _task(task)
    if type(G).__name__ not in PIX2PIX_GENERATORS or not isinstance(getattr(G, "model_args", None), dict):
        raise UsageError(f"G must be one of {', '.join(PIX2PIX_GENERATORS)}, got {type(G).__name__}")
    if G.model_args.get("in_channels") != t.in_channels:
        raise UsageError(f"G takes {G.model_args.get('in_channels')} input channels; the {t.name} task gives it "
                         f"{t.in_channels}")
    return save_checkpoint(Path(run_dir) / CHECKPOINT_NAME, kind="pix2pix", g_class=type(G).__name__,
                           g_args=G.model_args, G=G, meta={"task": t.name})


# ---- image files: read and checked, one line naming the file when they are not what the task needs

def _open(path: Path, flag: str):
    from PIL import Image, UnidentifiedImageError

    if not path.exists():
        raise UsageError(f"argument {flag}: {path} does not exist")
    if not path.is_file():
        raise UsageError(f"argument {flag}: {path} is not a file")
    try:
        with Image.open(path) as im:
            if im.width * im.height > MAX_PIXELS:
                raise UsageError(f"argument {flag}: {path} is {im.width} x {im.height} pixels, more than the "
                                 f"{MAX_PIXELS:,} this command takes")
            im.load()
            return im.copy()
    except UsageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise UsageError(f"argument {flag}: {path} is not an image file that Pillow can read "
                         f"({one_line(exc)[:120]})") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or damaged data
        raise UsageError(f"argument {flag}: {path} is damaged or truncated ({one_line(exc)[:120]})") from None


_EIGHT_BIT = {"L": 1, "RGB": 3, "RGBA": 4, "LA": 2, "P": 0, "1": 1}


def _to_array(im, path: Path, flag: str) -> np.ndarray:
    """An 8-bit image as a uint8 array ``(H, W)`` (grey) or ``(H, W, 3)`` (colour); alpha must be opaque."""
    if im.mode not in _EIGHT_BIT:
        depth = {"I;16": 16, "I;16B": 16, "I;16L": 16, "I": 32, "F": 32}.get(im.mode)
        what = f"{depth}-bit" if depth else f"mode {im.mode}"
        raise UsageError(f"argument {flag}: {path} is a {what} image ({im.mode}); save it as an 8-bit RGB or "
                         f"greyscale PNG")
    if im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA"):
        alpha = np.asarray(im.getchannel("A"))
        if alpha.min() < 255:
            raise UsageError(f"argument {flag}: {path} has transparent pixels ({im.mode}); save it without "
                             f"transparency (RGB or greyscale)")
        im = im.convert("RGB" if im.mode == "RGBA" else "L")
    if im.mode == "1":
        im = im.convert("L")
    return np.asarray(im, dtype=np.uint8)


def read_image(path: str | os.PathLike, *, flag: str = "--in", colour: bool = False) -> torch.Tensor:
    """An 8-bit image file as ``(3, H, W)`` (colour) or ``(1, H, W)`` (grey) in [-1, 1].

    Refused with a :class:`UsageError` that names ``flag`` and the file: a missing or unreadable file,
    16- or 32-bit pixels, other modes than greyscale, RGB and palette, transparent pixels, a side shorter
    than :data:`MIN_SIDE`, more than :data:`MAX_PIXELS` pixels, and a grey image when ``colour`` is asked.
    """
    path = Path(path)
    array = _to_array(_open(path, flag), path, flag)
    h, w = array.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UsageError(f"argument {flag}: {path} is {w} x {h} pixels; both sides must be at least {MIN_SIDE}")
    if colour and array.ndim == 2:
        raise UsageError(f"argument {flag}: {path} is a greyscale image; this run restores colour images "
                         f"(RGB)")
    x = torch.from_numpy(array.copy())
    x = x[None] if x.dim() == 2 else x.permute(2, 0, 1)
    return to_signed(x)                                          # (C, H, W) in [-1, 1]


def read_mask(path: str | os.PathLike, size: tuple[int, int], *, flag: str = "--mask") -> torch.Tensor:
    """A mask file as ``(1, H, W)`` bool, true where a pixel is missing (white, or any value >= 128).

    It must have ``size`` ``(H, W)`` (the image's), mark at least one pixel as known, and be an 8-bit (or
    1-bit) greyscale, RGB or palette image; colour masks count their brightest channel.
    """
    path = Path(path)
    array = _to_array(_open(path, flag), path, flag)
    if array.shape[:2] != tuple(size):
        raise UsageError(f"argument {flag}: {path} is {array.shape[1]} x {array.shape[0]} pixels, but the image "
                         f"is {size[1]} x {size[0]}; the mask must have the image's size")
    missing = (array.max(axis=2) if array.ndim == 3 else array) >= 128
    if missing.all():
        raise UsageError(f"argument {flag}: {path} marks every pixel as missing (white); nothing is left to "
                         f"fill the holes from")
    return torch.from_numpy(missing)[None]                      # (1, H, W)


def write_image(path: str | os.PathLike, image: torch.Tensor) -> Path:
    """Write ``image`` ``(3 or 1, H, W)`` in [-1, 1] as an 8-bit PNG, atomically."""
    from PIL import Image

    array = (to_unit(image.detach().float().cpu()) * 255).round().to(torch.uint8)
    array = array[0].numpy() if array.shape[0] == 1 else array.permute(1, 2, 0).numpy()
    im = Image.fromarray(np.ascontiguousarray(array))
    return atomic_write(path, lambda tmp: im.save(tmp, format="PNG"))

