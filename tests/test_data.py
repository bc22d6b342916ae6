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
