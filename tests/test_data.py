"""MNIST (offline split, errors) and the 2-D toy mixtures."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from ganlab import data
from ganlab.data import MNIST, grid_centers, grid_of_gaussians, ring_centers, ring_of_gaussians

HAVE_MNIST = (data.data_root() / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAVE_MNIST, reason="no MNIST files under GANLAB_DATA")


def _write_idx(path: Path, array: np.ndarray, *, truncate: int = 0) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    with gzip.open(path, "wb") as fh:
        fh.write(payload[: len(payload) - truncate])


def _fake_mnist(root: Path, n: int = 50, *, full: bool = False) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    splits = ["t10k", "train"] if full else ["t10k"]
    for split in splits:
        _write_idx(raw / f"{split}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(raw / f"{split}-labels-idx1-ubyte.gz", np.arange(n) % 10)


def test_data_root_order(tmp_path, monkeypatch):
    monkeypatch.setenv("GANLAB_DATA", str(tmp_path / "env"))
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data.data_root() == tmp_path / "env"
    monkeypatch.delenv("GANLAB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert data.data_root() == tmp_path / "cache" / "ganlab"


def test_missing_mnist_names_the_folder_and_files(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        MNIST(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in message
    assert "t10k-images-idx3-ubyte" in message and "GANLAB_DATA" in message


def test_offline_split_is_disjoint_deterministic_and_complete(tmp_path):
    _fake_mnist(tmp_path, n=50)
    train, held = MNIST(tmp_path, train=True), MNIST(tmp_path, train=False, heldout_fraction=0.2)
    assert (len(train), len(held)) == (40, 10) and train.source == "test-split"
    rows = {tuple(x.flatten().tolist()) for x in torch.cat([train.images, held.images])}
    assert len(rows) == 50  # every image lands in exactly one part
    again = MNIST(tmp_path, train=True)
    assert torch.equal(again.images, train.images) and torch.equal(again.targets, train.targets)
    other = MNIST(tmp_path, train=True, split_seed=1)
    assert not torch.equal(other.targets, train.targets)


def test_full_files_give_the_standard_split(tmp_path):
    _fake_mnist(tmp_path, n=30, full=True)
    assert MNIST(tmp_path, train=True).source == "full"
    assert len(MNIST(tmp_path, train=False)) == 30


def test_range_padding_and_items(tmp_path):
    _fake_mnist(tmp_path, n=20)
    ds = MNIST(tmp_path, img_size=32, transform=lambda x: -x)
    assert ds.images.shape == (16, 1, 32, 32)
    assert ds.images.min() >= -1 and ds.images.max() <= 1
    assert (ds.images[:, :, :2] == -1).all()  # padding is background
    x, y = ds[0]
    assert torch.equal(x, -ds.images[0]) and isinstance(y, int)


def test_truncated_file_is_reported(tmp_path):
    _fake_mnist(tmp_path, n=10)
    _write_idx(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz", np.zeros((10, 28, 28)), truncate=5)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        MNIST(tmp_path)


@pytest.mark.parametrize("kwargs, name", [({"img_size": 64}, "img_size"), ({"heldout_fraction": 1.0}, "heldout_fraction"),
                                          ({"limit": 0}, "limit"), ({"split_seed": -1}, "split_seed")])
def test_argument_errors(tmp_path, kwargs, name):
    with pytest.raises(ValueError, match=name):
        MNIST(tmp_path, **kwargs)


@needs_mnist
def test_real_mnist_offline_split():
    train, held = MNIST(train=True), MNIST(train=False)
    if train.source == "test-split":
        assert (len(train), len(held)) == (8000, 2000)
    assert train.images.shape[1:] == (1, 28, 28)
    counts = torch.bincount(train.targets, minlength=10)
    assert counts.min() > 0.07 * len(train)  # every digit is well represented


def test_toy_mixtures():
    ring = ring_of_gaussians(1000, modes=8, radius=2.0, std=0.02, seed=1)
    assert ring.shape == (1000, 2)
    assert torch.allclose(ring.norm(dim=1), torch.full((1000,), 2.0), atol=0.1)
    assert torch.equal(ring, ring_of_gaussians(1000, modes=8, radius=2.0, std=0.02, seed=1))
    centers = ring_centers(8)
    nearest = torch.cdist(ring, centers).argmin(1)
    assert torch.bincount(nearest, minlength=8).min() > 80  # all modes used, roughly equally
    grid = grid_of_gaussians(500, size=5, spacing=2.0)
    assert grid.shape == (500, 2) and grid_centers(5).shape == (25, 2)
    assert torch.allclose(grid_centers(3), torch.tensor([[-2.0, -2], [-2, 0], [-2, 2], [0, -2], [0, 0], [0, 2],
                                                          [2, -2], [2, 0], [2, 2]]))
    with pytest.raises(ValueError, match="modes"):
        ring_centers(0)
    with pytest.raises(ValueError, match="std"):
        ring_of_gaussians(10, std=-1.0)


def test_download_is_not_attempted_when_the_test_files_are_there(tmp_path, monkeypatch):
    _fake_mnist(tmp_path, n=20)
    monkeypatch.setattr(MNIST, "_download", lambda self: pytest.fail("must not download"))
    assert MNIST(tmp_path, download=True).source == "test-split"


def _damage(raw: Path, kind: str) -> str:
    """Damage the fake MNIST files under ``raw`` one way; returns the name of the file the error must name."""
    images, labels = raw / "t10k-images-idx3-ubyte.gz", raw / "t10k-labels-idx1-ubyte.gz"
    if kind == "truncated gz":       # a download cut short
        images.write_bytes(images.read_bytes()[: images.stat().st_size // 2])
        return images.name
    if kind == "bad CRC":            # one bit flipped in the stored checksum
        b = bytearray(labels.read_bytes())
        b[-6] ^= 0x01
        labels.write_bytes(bytes(b))
        return labels.name
    if kind == "not gzip":           # an HTML error page saved under the file's name
        images.write_bytes(b"<html>404</html>")
        return images.name
    if kind == "wrong magic":        # the labels file where the images should be
        images.write_bytes(labels.read_bytes())
        return images.name
    if kind == "more labels":
        _write_idx(labels, np.arange(21) % 10)
        return labels.name
    if kind == "fewer labels":
        _write_idx(labels, np.arange(19) % 10)
        return labels.name
    if kind == "label 200":
        _write_idx(labels, np.full(20, 200))
        return labels.name
    raise AssertionError(kind)


@pytest.mark.parametrize("kind, message", [
    ("truncated gz", "truncated"), ("bad CRC", "CRC"), ("not gzip", "gzip"), ("wrong magic", "magic number"),
    ("more labels", "21 labels"), ("fewer labels", "19 labels"), ("label 200", "label of 200")])
def test_damaged_files_raise_one_line_naming_the_file(tmp_path, kind, message):
    _fake_mnist(tmp_path, n=20)
    name = _damage(tmp_path / "MNIST" / "raw", kind)
    with pytest.raises(data.DataError) as info:
        MNIST(tmp_path)
    text = str(info.value)
    assert name in text and message in text and "\n" not in text, text
    assert isinstance(info.value, ValueError)


# --- MNIST-M -------------------------------------------------------------------------------------------

@pytest.fixture
def flat_photos(monkeypatch):
    """Each bundled photograph replaced by a 40 x 40 one of its own, whose pixel (y, x) is
    (10 k + 1, y, x) for the k-th name: a crop's corner pixel names its photograph and its position."""
    def fake(name):
        k = data.COLOUR_PHOTOS.index(name)
        y, x = np.mgrid[0:40, 0:40]
        return np.stack([np.full((40, 40), 10 * k + 1), y, x], axis=-1).astype(np.uint8)
    monkeypatch.setattr(data, "_photo_bytes", fake)


def test_mnistm_blends_each_digit_over_a_crop_as_ganin(flat_photos):
    digits = torch.full((3, 1, 28, 28), -1.0)
    digits[:, :, 5:20, 10:14] = 0.2                      # a stroke (any ink counts), on pure background
    out = data.blend_mnistm(digits, ("coffee",), seed=0)  # (3, 3, 28, 28) in [-1, 1]
    assert out.shape == (3, 3, 28, 28) and out.dtype == torch.float32
    values = torch.round((out + 1) * 127.5).to(torch.int64)
    stroke = digits[:, 0] > -1
    patch = torch.where(stroke[:, None], 255 - values, values)  # undo |patch - 255 stroke|
    for p in patch:  # a contiguous 28 x 28 crop of the coffee photograph
        top, left = int(p[1, 0, 0]), int(p[2, 0, 0])
        assert (p[0] == 10 * data.COLOUR_PHOTOS.index("coffee") + 1).all()
        assert torch.equal(p[1], torch.arange(top, top + 28)[:, None].expand(28, 28))
        assert torch.equal(p[2], torch.arange(left, left + 28)[None, :].expand(28, 28))
    with pytest.raises(ValueError, match="photos"):
        data.blend_mnistm(digits, ())
    with pytest.raises(ValueError, match="photos must be among .* got 'lena'"):
        data.blend_mnistm(digits, ("coffee", "lena"))
    with pytest.raises(ValueError, match="digits"):
        data.blend_mnistm(digits.expand(-1, 3, -1, -1), ("coffee",))


def test_mnistm_shapes_range_labels_determinism_and_disjoint_photos(fake_mnist_root, flat_photos):
    assert not set(data.MNISTM_TRAIN_PHOTOS) & set(data.MNISTM_HELDOUT_PHOTOS)
    assert set(data.MNISTM_TRAIN_PHOTOS) | set(data.MNISTM_HELDOUT_PHOTOS) <= set(data.COLOUR_PHOTOS)
    for train, names in ((True, data.MNISTM_TRAIN_PHOTOS), (False, data.MNISTM_HELDOUT_PHOTOS)):
        for size in (28, 32):
            m = data.MNISTM(fake_mnist_root, train=train, img_size=size)
            digits = MNIST(fake_mnist_root, train=train)
            assert m.images.shape == (len(digits), 3, size, size) and m.images.dtype == torch.float32
            assert m.images.min() >= -1 and m.images.max() <= 1
            assert torch.equal(m.targets, digits.targets) and m.photos == names
            x, y = m[0]
            assert x.shape == (3, size, size) and y == int(digits.targets[0])
        # every image's corner pixel names one of this part's photographs (at 32 x 32 the corner is the
        # digit's padding, pure background, so the photograph's own pixel)
        corner = torch.round((m.images[:, 0, 0, 0] + 1) * 127.5).long()
        used = {data.COLOUR_PHOTOS[(int(v) - 1) // 10] for v in corner}
        assert used == set(names)  # every photograph of this part, and no other
    again = data.MNISTM(fake_mnist_root, train=True)
    first = data.MNISTM(fake_mnist_root, train=True)
    assert torch.equal(again.images, first.images)  # seeded
    assert not torch.equal(data.MNISTM(fake_mnist_root, train=True, seed=1).images, first.images)


def test_to_channels_repeats_grey_and_takes_the_luminance_of_colour():
    grey = torch.rand(2, 1, 4, 4)
    assert torch.equal(data.to_channels(grey, 3), grey.expand(-1, 3, -1, -1))
    assert torch.allclose(data.to_channels(data.to_channels(grey, 3), 1), grey)  # the weights sum to 1
    colour = torch.rand(2, 3, 4, 4)
    assert data.to_channels(colour, 3) is colour
    assert torch.allclose(data.to_channels(colour, 1)[:, 0],
                          0.2125 * colour[:, 0] + 0.7154 * colour[:, 1] + 0.0721 * colour[:, 2])
    with pytest.raises(ValueError, match="channels"):
        data.to_channels(colour, 2)
    with pytest.raises(ValueError, match="x must be"):
        data.to_channels(torch.rand(2, 2, 4, 4), 3)
