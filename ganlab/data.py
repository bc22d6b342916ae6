"""Datasets for the book: MNIST (online through torchvision, offline from ``GANLAB_DATA``) and 2-D toys.

Every image dataset here yields float tensors in [-1, 1]; the conversion lives in one place,
:func:`to_signed`. The chapter "Implementation" (``book/04_implementation.ipynb``) uses
:class:`MNIST`; "The adversarial game" uses the 2-D mixtures; "Image restoration"
(``book/05b_image_restoration.ipynb``) and ``python -m ganlab train restore`` use :class:`PhotoPatches`
(an endless, seeded stream of crops of scikit-image's bundled colour photographs, no download, degraded on
the fly), :func:`photo_patches` (a fixed set of crops) and :class:`PairedDataset` (degraded and clean images
side by side). The photographs of :data:`RESTORE_TRAIN_PHOTOS` are trained on; those of
:data:`RESTORE_TEST_PHOTOS` and :data:`OTHER_PHOTOS` (shipped by matplotlib and scikit-learn, so that
nothing is tuned to scikit-image's set) never are. "Unpaired translation"
(``book/05c_unpaired_translation.ipynb``) uses :class:`MNISTM`, MNIST digits blended over crops of
scikit-image's photographs as Ganin et al. built MNIST-M.

Where the data comes from (see ``data_root``):

1. the ``root`` argument, else
2. the ``GANLAB_DATA`` environment variable, else
3. a user cache folder (``$XDG_CACHE_HOME/ganlab`` or ``~/.cache/ganlab``).

MNIST files are read from ``<root>/MNIST/raw/`` (torchvision's layout). When the 60,000 training
images are there, ``train=True`` gives them and ``train=False`` the 10,000 test images. When only the
10,000 test images are there (the offline build machines), they are split deterministically: the first
``1 - heldout_fraction`` of a fixed permutation is the training part, the rest is held out.
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from .errors import DataError, one_line
from .utils import (check_nonnegative_int, check_positive_float, check_positive_int, check_probability,
                    check_seed)

__all__ = [
    "DataError",
    "data_root",
    "to_signed",
    "to_unit",
    "to_channels",
    "MNIST",
    "MNIST_FILES",
    "ring_of_gaussians",
    "grid_of_gaussians",
    "ring_centers",
    "grid_centers",
    "COLOUR_PHOTOS",
    "OTHER_PHOTOS",
    "RESTORE_TRAIN_PHOTOS",
    "RESTORE_TEST_PHOTOS",
    "photo",
    "photo_patches",
    "PhotoPatches",
    "PairedDataset",
    "MNISTM",
    "MNISTM_TRAIN_PHOTOS",
    "MNISTM_HELDOUT_PHOTOS",
    "blend_mnistm",
]

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data folder: ``root`` if given, else ``$GANLAB_DATA``, else the user cache folder."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("GANLAB_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "ganlab"


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Map uint8 pixels (0..255) or floats in [0, 1] to floats in [-1, 1]: the one pixel range of ganlab."""
    if x.dtype == torch.uint8:
        return x.float().div_(127.5).sub_(1.0)
    return x.float() * 2.0 - 1.0


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Map images in [-1, 1] back to [0, 1] (clamped)."""
    return ((x + 1.0) / 2.0).clamp(0.0, 1.0)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images ``(N, C, H, W)`` with ``channels`` channels: grey repeated into three, colour to its luminance
    (scikit-image's ``rgb2gray`` weights, which sum to 1, so any pixel scale is kept); unchanged otherwise."""
    from .degrade import LUMA_WEIGHTS

    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"x must be grey or colour images (N, 1 or 3, H, W), got "
                         f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device)
    return (x * weights[None, :, None, None]).sum(dim=1, keepdim=True)


def _find(raw: Path, name: str) -> Path | None:
    for candidate in (raw / name, raw / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


_IDX_UBYTE = 0x08            # the IDX type code of unsigned bytes, the third byte of the magic number
_REDOWNLOAD = "delete it and download MNIST again (download=True, or --download)"


def _read_idx(path: Path, ndim: int | None = None) -> np.ndarray:
    """Read an IDX file (optionally gzipped), the format of the MNIST files: ``ndim`` dimensions of bytes.

    Every kind of damage is a :class:`ganlab.errors.DataError` that names the file: a gzip stream cut
    short, a failed CRC, a file that is not gzip at all, a wrong magic number (0x0000080N for N
    dimensions of unsigned bytes) or a size that disagrees with the header.
    """
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                data = fh.read()
        else:
            data = path.read_bytes()
    except EOFError:
        raise DataError(f"{path} is truncated: its gzip stream ends early; {_REDOWNLOAD}") from None
    except gzip.BadGzipFile as exc:  # not gzip at all, or a failed CRC / length check
        raise DataError(f"{path} is damaged: not a valid gzip file ({one_line(exc)}); "
                        f"{_REDOWNLOAD}") from None
    except zlib.error as exc:
        raise DataError(f"{path} is damaged: its compressed data is corrupt ({one_line(exc)}); "
                        f"{_REDOWNLOAD}") from None
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if (magic is None or data[0] != 0 or data[1] != 0 or data[2] != _IDX_UBYTE
            or (ndim is not None and data[3] != ndim)):
        expected = f"0x{0x800 + ndim:08x}" if ndim is not None else "0x0000080N"
        found = f"0x{magic:08x}" if magic is not None else f"only {len(data)} bytes"
        raise DataError(f"{path} is not an IDX file of unsigned bytes with {ndim or 'N'} dimension(s): its "
                        f"magic number is {found}, expected {expected}; {_REDOWNLOAD}")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DataError(f"{path} is truncated: {len(data)} bytes, shorter than its {offset}-byte header; "
                        f"{_REDOWNLOAD}")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = offset + int(np.prod(dims))
    if len(data) != expected:
        raise DataError(f"{path} is truncated or corrupt: {len(data)} bytes, expected {expected} for "
                        f"{' x '.join(map(str, dims))} values; {_REDOWNLOAD}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _read_mnist(img_path: Path, lbl_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The images ``(N, 28, 28)`` and labels ``(N,)`` of an MNIST split, checked against each other."""
    images, labels = _read_idx(img_path, ndim=3), _read_idx(lbl_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{img_path} holds {images.shape[1]} x {images.shape[2]} images, expected "
                        f"MNIST's 28 x 28")
    if len(images) != len(labels):
        raise DataError(f"{lbl_path} holds {len(labels)} labels but {img_path} holds {len(images)} images: "
                        f"the two files must come from the same split; delete both and download MNIST again")
    if len(labels) and int(labels.max()) > 9:
        raise DataError(f"{lbl_path} holds a label of {int(labels.max())} (first at index "
                        f"{int(np.argmax(labels > 9))}); MNIST labels are digits 0..9; {_REDOWNLOAD}")
    return images, labels


class MNIST(Dataset):
    """MNIST digits as float tensors in [-1, 1] of shape ``(1, img_size, img_size)``, with labels.

    Args:
        root: data folder (see :func:`data_root`); files are looked up in ``<root>/MNIST/raw/``.
        train: the training part (``True``) or the held-out part (``False``).
        img_size: 28 (native) or 32 (padded with background by 2 pixels on each side, for
            power-of-two architectures).
        download: fetch all four files with torchvision when not even the test files are there (needs
            the network); a folder holding only the test files is used as it is (the offline split).
        transform: optional callable applied to each image tensor.
        heldout_fraction: share of the 10,000 test images held out when only they are present.
        split_seed: seed of the permutation that makes that split.
        limit: keep only the first ``limit`` images (``None`` keeps all).

    Raises ``FileNotFoundError`` when the files are not there, and :class:`ganlab.errors.DataError` (a
    ``ValueError`` naming the file) when one is damaged: a truncated or corrupt gzip stream, a wrong magic
    number, a size that disagrees with its header, image and label files of different lengths, or a label
    outside 0..9.

    Attributes:
        images: ``(N, 1, img_size, img_size)`` float tensor in [-1, 1], the whole split in memory.
        targets: ``(N,)`` int64 labels.
        source: ``"full"`` (60,000 + 10,000 files) or ``"test-split"`` (the 10,000 test images, split).
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        train: bool = True,
        *,
        img_size: int = 28,
        download: bool = False,
        transform=None,
        heldout_fraction: float = 0.2,
        split_seed: int = 0,
        limit: int | None = None,
    ) -> None:
        if img_size not in (28, 32):
            raise ValueError(f"img_size must be 28 or 32 for MNIST, got {img_size!r}")
        check_probability("heldout_fraction", heldout_fraction)
        if heldout_fraction == 0:
            raise ValueError("heldout_fraction must be in (0, 1), got 0")
        check_seed("split_seed", split_seed)
        if limit is not None:
            check_positive_int("limit", limit)
        self.root = data_root(root)
        self.raw_folder = self.root / "MNIST" / "raw"
        self.train = bool(train)
        self.img_size = img_size
        self.transform = transform

        images, labels, self.source = self._load(download, heldout_fraction, split_seed)
        x = to_signed(torch.from_numpy(images.copy())).unsqueeze(1)  # (N, 1, 28, 28)
        if img_size == 32:
            x = torch.nn.functional.pad(x, (2, 2, 2, 2), value=-1.0)  # (N, 1, 32, 32), background is -1
        if limit is not None:
            x, labels = x[:limit], labels[:limit]
        self.images = x.contiguous()
        self.targets = torch.from_numpy(labels.astype(np.int64))

    def _files(self, split: str) -> tuple[Path, Path] | None:
        found = tuple(_find(self.raw_folder, name) for name in MNIST_FILES[split])
        return found if all(found) else None  # type: ignore[return-value]

    def _load(self, download: bool, heldout_fraction: float, split_seed: int):
        train_files, test_files = self._files("train"), self._files("test")
        if test_files is None and download:  # only when nothing usable is there: never on offline machines
            self._download()
            train_files, test_files = self._files("train"), self._files("test")
        if train_files is not None and test_files is not None:
            images, labels = _read_mnist(*(train_files if self.train else test_files))
            return images, labels, "full"
        if test_files is not None:
            images, labels = _read_mnist(*test_files)
            perm = np.random.default_rng(split_seed).permutation(len(images))
            n_train = len(images) - int(round(heldout_fraction * len(images)))
            idx = np.sort(perm[:n_train] if self.train else perm[n_train:])
            return images[idx], labels[idx], "test-split"
        wanted = ", ".join(f"{n}[.gz]" for pair in MNIST_FILES.values() for n in pair)
        raise FileNotFoundError(
            f"MNIST not found in {self.raw_folder}: expected {wanted} "
            f"(at least the two t10k files). Set GANLAB_DATA to a folder holding MNIST/raw/, "
            f"pass root=..., or use download=True where the network is reachable."
        )

    def _download(self) -> None:
        from torchvision.datasets import MNIST as TorchvisionMNIST

        self.root.mkdir(parents=True, exist_ok=True)
        try:
            for train in (True, False):
                TorchvisionMNIST(str(self.root), train=train, download=True)  # writes <root>/MNIST/raw/
        except (OSError, RuntimeError) as exc:  # no network, a mirror down, a full disk
            raise DataError(f"downloading MNIST into {self.raw_folder} failed ({one_line(exc)[:160]}); "
                            f"copy the four files there by hand, or set GANLAB_DATA to a folder holding "
                            f"MNIST/raw/") from None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        x = self.images[index]
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.targets[index])

    def __repr__(self) -> str:
        part = "train" if self.train else "held-out"
        return (f"MNIST({part}, {len(self)} images of {tuple(self.images.shape[1:])}, "
                f"source={self.source!r})")


# --- 2-D toy distributions -------------------------------------------------------------------------

def ring_centers(modes: int = 8, radius: float = 2.0) -> torch.Tensor:
    """The ``(modes, 2)`` centres of a ring of Gaussians, evenly spaced on a circle."""
    check_positive_int("modes", modes)
    check_positive_float("radius", radius)
    angles = torch.arange(modes, dtype=torch.float64) * (2 * math.pi / modes)
    return (radius * torch.stack([angles.cos(), angles.sin()], dim=1)).float()


def grid_centers(size: int = 5, spacing: float = 2.0) -> torch.Tensor:
    """The ``(size * size, 2)`` centres of a square grid of Gaussians, centred on the origin."""
    check_positive_int("size", size)
    check_positive_float("spacing", spacing)
    axis = (torch.arange(size, dtype=torch.float32) - (size - 1) / 2) * spacing
    gx, gy = torch.meshgrid(axis, axis, indexing="ij")
    return torch.stack([gx.reshape(-1), gy.reshape(-1)], dim=1)


def _mixture(centers: torch.Tensor, n: int, std: float, seed: int) -> torch.Tensor:
    check_positive_int("n", n)
    check_positive_float("std", std)
    check_seed("seed", seed)
    g = torch.Generator().manual_seed(seed)
    which = torch.randint(len(centers), (n,), generator=g)
    return centers[which] + std * torch.randn(n, 2, generator=g)


def ring_of_gaussians(n: int = 10_000, *, modes: int = 8, radius: float = 2.0, std: float = 0.02,
                      seed: int = 0) -> torch.Tensor:
    """``n`` points ``(n, 2)`` from an equal-weight ring of ``modes`` Gaussians (the usual 2-D GAN test)."""
    return _mixture(ring_centers(modes, radius), n, std, seed)


def grid_of_gaussians(n: int = 10_000, *, size: int = 5, spacing: float = 2.0, std: float = 0.05,
                      seed: int = 0) -> torch.Tensor:
    """``n`` points ``(n, 2)`` from an equal-weight ``size x size`` grid of Gaussians."""
    return _mixture(grid_centers(size, spacing), n, std, seed)


# --- photographs and paired datasets for image-to-image tasks ----------------------------------------

# colour photographs that ship inside scikit-image (no download): name -> loader in skimage.data
# ("motorcycle" and "motorcycle_right" are the two views of skimage.data.stereo_motorcycle)
COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "motorcycle", "immunohistochemistry",
                 "hubble_deep_field", "retina", "motorcycle_right")
# colour photographs that ship with other packages: matplotlib's sample data and scikit-learn's sample images
OTHER_PHOTOS = ("grace_hopper", "china", "flower")
# the restoration tasks train on these natural photographs (and their halved and three-quarter sizes) ...
RESTORE_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle", "motorcycle_right", "immunohistochemistry")
# ... and hold out this one entirely, with OTHER_PHOTOS
RESTORE_TEST_PHOTOS = ("chelsea",)


def _photo_array(name: str) -> np.ndarray:
    # (H, W, 3) uint8
    if name in OTHER_PHOTOS:
        if name == "grace_hopper":
            import matplotlib.cbook
            import matplotlib.image

            return matplotlib.image.imread(matplotlib.cbook.get_sample_data("grace_hopper.jpg"))
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    from skimage import data as skdata

    if name.startswith("motorcycle"):
        return skdata.stereo_motorcycle()[0 if name == "motorcycle" else 1]
    return getattr(skdata, name)()


def _photo_bytes(name: str) -> np.ndarray:
    """One of scikit-image's bundled colour photographs as ``(H, W, 3)`` uint8 (0..255)."""
    if name not in COLOUR_PHOTOS:
        raise ValueError(f"name must be one of {', '.join(map(repr, COLOUR_PHOTOS))}; got {name!r}")
    return np.ascontiguousarray(_photo_array(name)[..., :3], dtype=np.uint8)


def photo(name: str) -> torch.Tensor:
    """A bundled colour photograph as a ``(3, H, W)`` float tensor in [-1, 1]: one of scikit-image's
    (:data:`COLOUR_PHOTOS`), or of matplotlib's and scikit-learn's (:data:`OTHER_PHOTOS`)."""
    if name not in COLOUR_PHOTOS + OTHER_PHOTOS:
        raise ValueError(f"name must be one of {', '.join(map(repr, COLOUR_PHOTOS + OTHER_PHOTOS))}; "
                         f"got {name!r}")
    image = np.array(_photo_array(name)[..., :3], dtype=np.uint8)  # a writable copy, without any alpha
    return to_signed(torch.from_numpy(image).permute(2, 0, 1))     # (3, H, W)


@functools.lru_cache(maxsize=64)
def _photo_at(name: str, scale: float) -> torch.Tensor:
    """:func:`photo` resized by ``scale`` with anti-aliasing (scikit-image), kept for the next caller."""
    from skimage.transform import rescale

    image = photo(name)
    if scale == 1:
        return image
    small = rescale(to_unit(image).permute(1, 2, 0).numpy(), scale, channel_axis=-1, anti_aliasing=True)
    return to_signed(torch.from_numpy(np.ascontiguousarray(small)).permute(2, 0, 1)).float()


def photo_patches(names: str | tuple[str, ...] | list[str] = ("astronaut", "coffee", "rocket"), *,
                  size: int = 32, n: int = 1_000, scale: float = 0.5, seed: int = 0) -> torch.Tensor:
    """``n`` random ``size x size`` crops ``(n, 3, size, size)`` in [-1, 1] of bundled colour photographs.

    Args:
        names: photographs from :data:`COLOUR_PHOTOS`; each gives ``n // len(names)`` crops (the first
            ones one more until ``n`` is reached). Keep training and test photographs disjoint.
        size: side of a crop in pixels.
        n: number of crops.
        scale: the photographs are first resized by this factor (with anti-aliasing), so that a small
            crop holds an object's part rather than a flat piece of it (0.5 halves a 512-pixel photo).
        seed: seeds the crop positions.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    if not names:
        raise ValueError("names: give at least one photograph")
    check_positive_int("size", size)
    check_positive_int("n", n)
    scale = check_positive_float("scale", scale)
    if scale > 1:
        raise ValueError(f"scale must be in (0, 1], got {scale!r}")
    check_seed("seed", seed)
    g = torch.Generator().manual_seed(seed)
    crops = []
    for i, name in enumerate(names):
        image = _photo_at(name, float(scale))
        h, w = image.shape[1:]
        if h < size or w < size:
            raise ValueError(f"size: {size}-pixel crops do not fit in {name!r} at scale {scale} ({h}x{w})")
        count = n // len(names) + (1 if i < n % len(names) else 0)
        tops = torch.randint(h - size + 1, (count,), generator=g).tolist()
        lefts = torch.randint(w - size + 1, (count,), generator=g).tolist()
        crops += [image[:, t:t + size, l:l + size] for t, l in zip(tops, lefts)]
    return torch.stack(crops).float().contiguous()


class PhotoPatches:
    """An endless, seeded stream of random crops of photographs, for training restorers on the fly.

    ``batch(index, batch_size, seed=0)`` returns ``batch_size`` crops ``(B, 3, size, size)`` in [-1, 1], or,
    with a ``degradation``, the pair ``(degradation(crops), crops)``; it is a pure function of its
    arguments, so a run resumed at step k sees the batches of one that never stopped, and every batch is
    new (fresh crops, fresh noise), which a fixed set of pairs is not.

    Each photograph is used at every size of ``scales`` (resized with anti-aliasing, which also smooths
    the noise and compression of the originals); a crop comes from a photograph and size with probability
    proportional to its area, and is flipped and rotated by one of the eight symmetries of the square.
    A ``recolour`` share of the crops also get their colour channels in a random order and, for half of
    them, inverted (``x -> -x``): six photographs hold few hues, and a restorer trained on them alone does
    worse on colours it has not seen (measured on the teal background of scikit-learn's ``flower.jpg``),
    while one trained on recoloured crops alone loses the colour statistics of real photographs (measured
    on the cat of ``chelsea``). This is only right for degradations that treat the three channels alike
    and mid-grey as the centre (noise, clipped or not, bicubic shrinking, masks), not for colourisation,
    whose input weights the channels.

    Args:
        names: photographs (see :func:`photo`); keep the test photographs out.
        size: side of a crop in pixels.
        scales: resize factors in (0, 1] of the photographs that crops are cut from.
        degradation: a :class:`ganlab.degrade.Degradation`, or any callable ``f(x, generator=...)``;
            ``None`` yields the clean crops alone.
        recolour: the share of crops, in [0, 1], whose channels are permuted and, half the time,
            inverted (see above).
    """

    def __init__(self, names: str | tuple[str, ...] | list[str] = RESTORE_TRAIN_PHOTOS, *, size: int = 64,
                 scales: tuple[float, ...] = (1.0, 0.75, 0.5), degradation=None, recolour: float = 0.0) -> None:
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names:
            raise ValueError("names: give at least one photograph")
        check_positive_int("size", size)
        scales = tuple(scales) if isinstance(scales, (tuple, list)) else (scales,)
        if not scales:
            raise ValueError("scales: give at least one")
        for s in scales:
            if not 0 < check_positive_float("scales", s) <= 1:
                raise ValueError(f"scales must be in (0, 1], got {s!r}")
        if degradation is not None and not callable(degradation):
            raise TypeError(f"degradation must be callable, got {type(degradation).__name__}")
        self.names, self.size, self.scales, self.degradation = names, size, scales, degradation
        self.recolour = check_probability("recolour", recolour, open_right=False)
        self.images = []
        for name in names:
            for s in scales:
                image = _photo_at(name, float(s))
                if min(image.shape[1:]) < size:
                    raise ValueError(f"size: {size}-pixel crops do not fit in {name!r} at scale {s} "
                                     f"({image.shape[1]}x{image.shape[2]})")
                self.images.append(image.contiguous())
        area = torch.tensor([float(im.shape[1] * im.shape[2]) for im in self.images], dtype=torch.float64)
        self.weights = area / area.sum()

    def batch(self, index: int, batch_size: int, *, seed: int = 0):
        """Batch ``index`` of the stream seeded ``seed``: crops ``(B, 3, size, size)``, or (inputs, crops)."""
        from .train.batches import step_generator

        check_nonnegative_int("index", index)
        check_positive_int("batch_size", batch_size)
        check_seed("seed", seed)
        g = step_generator(seed, index)
        which = torch.multinomial(self.weights, batch_size, replacement=True, generator=g).tolist()
        corner = torch.rand(batch_size, 2, generator=g, dtype=torch.float64)
        symmetry = torch.randint(8, (batch_size,), generator=g).tolist()
        crops = []
        for i, (u, v), k in zip(which, corner.tolist(), symmetry):
            image = self.images[i]
            top = int(u * (image.shape[1] - self.size + 1))
            left = int(v * (image.shape[2] - self.size + 1))
            crop = image[:, top:top + self.size, left:left + self.size]
            crop = crop.flip(-1) if k >= 4 else crop
            crops.append(torch.rot90(crop, k % 4, dims=(1, 2)))
        clean = torch.stack(crops).contiguous()                     # (B, 3, size, size)
        if self.recolour > 0:
            u = torch.rand(batch_size, 2, generator=g)
            order = torch.argsort(torch.rand(batch_size, 3, generator=g), dim=1)      # a permutation per crop
            order = torch.where(u[:, :1] < self.recolour, order, torch.arange(3))     # for a `recolour` share
            sign = torch.where((u[:, 0] < self.recolour) & (u[:, 1] < 0.5), -1.0, 1.0)  # half of those inverted
            clean = torch.gather(clean, 1, order[:, :, None, None].expand_as(clean)) * sign[:, None, None, None]
        if self.degradation is None:
            return clean
        return self.degradation(clean, generator=g), clean

    def __repr__(self) -> str:
        return (f"PhotoPatches({', '.join(self.names)}; {self.size} x {self.size} crops at scales "
                f"{self.scales}, degradation={self.degradation!r}, recolour={self.recolour})")


class PairedDataset(TensorDataset):
    """``(degraded, clean)`` pairs for image-to-image training: ``degradation`` applied once, seeded.

    Args:
        clean: the target images ``(N, C, H, W)`` in [-1, 1].
        degradation: a :class:`ganlab.degrade.Degradation` (or any callable ``f(x, seed=...)``).
        seed: seeds the degradation, so the same arguments always give the same pairs.

    Attributes:
        inputs: the degraded images (what a restorer sees); ``targets``: the clean images.
    """

    def __init__(self, clean: torch.Tensor, degradation, *, seed: int = 0) -> None:
        if not isinstance(clean, torch.Tensor) or clean.dim() != 4:
            raise ValueError(f"clean must be a tensor of images (N, C, H, W), got "
                             f"{tuple(clean.shape) if isinstance(clean, torch.Tensor) else type(clean).__name__}")
        if not callable(degradation):
            raise TypeError(f"degradation must be callable, got {type(degradation).__name__}")
        check_seed("seed", seed)
        inputs = degradation(clean, seed=seed)
        if inputs.shape[0] != clean.shape[0]:
            raise ValueError("degradation must keep the number of images")
        super().__init__(inputs, clean)
        self.inputs, self.targets, self.degradation, self.seed = inputs, clean, degradation, seed

    def __repr__(self) -> str:
        return (f"PairedDataset({len(self)} pairs: {tuple(self.inputs.shape[1:])} -> "
                f"{tuple(self.targets.shape[1:])}, {self.degradation!r})")


# --- MNIST-M: digits blended over colour photographs ---------------------------------------------------

# the photographs behind MNIST-M's training digits and behind its held-out digits: disjoint, so that a
# held-out digit sits on a photograph no network saw in training. Ganin et al. cropped natural scenes
# (BSDS500), so these are the bundled natural photographs, split as chapter 5b splits them; the microscopy,
# retina and deep-field images are left out
MNISTM_TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "motorcycle")
MNISTM_HELDOUT_PHOTOS = ("chelsea",)


def blend_mnistm(digits: torch.Tensor, photos: str | tuple[str, ...] | list[str], *,
                 seed: int = 0) -> torch.Tensor:
    """MNIST-M images ``(N, 3, S, S)`` in [-1, 1] from grey digits ``(N, 1, S, S)`` in [-1, 1].

    Ganin et al. 2016 (https://arxiv.org/abs/1505.07818), section 5.2: each digit is binarised (a pixel is
    stroke where it is not pure background) and *difference-blended* over a random ``S x S`` crop of a
    random colour photograph, channel by channel on the 0..255 scale::

        out = |patch - 255 * stroke|     # the background keeps the photo, the stroke inverts its colours

    Ganin et al. cropped BSDS500 photographs; here ``photos`` names scikit-image's bundled ones
    (:data:`COLOUR_PHOTOS`), at their own resolution. ``seed`` seeds the photograph and the crop of
    every digit, so the same arguments always give the same images.
    """
    names = (photos,) if isinstance(photos, str) else tuple(photos)
    if not names:
        raise ValueError("photos: give at least one photograph")
    unknown = [n for n in names if n not in COLOUR_PHOTOS]
    if unknown:
        raise ValueError(f"photos must be among {', '.join(COLOUR_PHOTOS)}; got {', '.join(map(repr, unknown))}")
    if not isinstance(digits, torch.Tensor) or digits.dim() != 4 or digits.shape[1] != 1 \
            or digits.shape[2] != digits.shape[3]:
        raise ValueError(f"digits must be grey square images (N, 1, S, S), got "
                         f"{tuple(digits.shape) if isinstance(digits, torch.Tensor) else type(digits).__name__}")
    check_seed("seed", seed)
    size = digits.shape[-1]
    images = [_photo_bytes(name) for name in names]
    rng = np.random.default_rng(seed)
    which = rng.integers(len(images), size=len(digits))
    stroke = (digits[:, 0] > -1.0).numpy()                           # (N, S, S): any ink at all, as Ganin's code
    out = np.empty((len(digits), size, size, 3), dtype=np.uint8)
    for i, k in enumerate(which):
        h, w = images[k].shape[:2]
        top, left = int(rng.integers(h - size + 1)), int(rng.integers(w - size + 1))
        patch = images[k][top:top + size, left:left + size]              # (S, S, 3) uint8
        out[i] = np.where(stroke[i, :, :, None], 255 - patch, patch)     # |patch - 255 * stroke|
    return to_signed(torch.from_numpy(out).permute(0, 3, 1, 2)).contiguous()  # (N, 3, S, S)


class MNISTM(Dataset):
    """MNIST-M: :class:`MNIST` digits blended over crops of colour photographs (:func:`blend_mnistm`).

    Colour images ``(3, img_size, img_size)`` in [-1, 1] with the digits' labels. The training part blends
    :class:`MNIST`'s training digits over crops of :data:`MNISTM_TRAIN_PHOTOS`, the held-out part its
    held-out digits over crops of :data:`MNISTM_HELDOUT_PHOTOS` (disjoint photographs). Offline that is
    the 8,000 / 2,000 split of the 10,000 MNIST test digits, online the full 60,000 / 10,000: nothing
    needs to be downloaded but MNIST itself.

    Args:
        root, train, download, heldout_fraction, split_seed, limit: as for :class:`MNIST`.
        img_size: 28 (Ganin et al.'s size) or 32 (the digit padded by 2 pixels, then blended over a
            32 x 32 crop).
        seed: seeds the photograph and crop behind each digit (the held-out part uses ``seed + 1``).
        photos: the photographs to crop (default: the part's list above).

    Attributes:
        images: ``(N, 3, img_size, img_size)`` float tensor in [-1, 1]; ``targets``: ``(N,)`` int64 labels;
        photos: the photographs used; ``source``: as :class:`MNIST`'s.
    """

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True, *, img_size: int = 28,
                 download: bool = False, seed: int = 0, photos: tuple[str, ...] | None = None,
                 heldout_fraction: float = 0.2, split_seed: int = 0, limit: int | None = None) -> None:
        check_seed("seed", seed)
        digits = MNIST(root, train, img_size=img_size, download=download, heldout_fraction=heldout_fraction,
                       split_seed=split_seed, limit=limit)
        self.train, self.img_size, self.source = bool(train), img_size, digits.source
        self.photos = tuple(photos) if photos is not None else \
            (MNISTM_TRAIN_PHOTOS if train else MNISTM_HELDOUT_PHOTOS)
        self.images = blend_mnistm(digits.images, self.photos, seed=seed + (0 if train else 1))
        self.targets = digits.targets

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], int(self.targets[index])

    def __repr__(self) -> str:
        part = "train" if self.train else "held-out"
        return (f"MNISTM({part}, {len(self)} images of {tuple(self.images.shape[1:])}, "
                f"photos={', '.join(self.photos)}, source={self.source!r})")
