"""Fixtures shared by the unit tests: a tiny GAN, toy images, a short training config.

Each is a factory (call it with overrides), so a test states only what differs from the shared setting.
A module whose tests share other defaults derives its own factory in one line, e.g.
``cfg = functools.partial(train_config, steps=6)`` inside a fixture.
"""
import gzip

import numpy as np
import pytest
import torch

import ganlab as gl


@pytest.fixture
def tiny_gan():
    """``tiny_gan(seed=0, **builder_args) -> (G, D)``: a DCGAN pair for 12 x 12 grey images, seeded weights."""
    def make(seed: int = 0, **kwargs):
        torch.manual_seed(seed)
        return gl.models.build_gan("dcgan", **{"z_dim": 8, "img_size": 12, "base_channels": 4, **kwargs})
    return make


@pytest.fixture
def toy_images():
    """``toy_images(n=64, seed=0, channels=1, size=12)``: uniform noise images in [-1, 1], ``(n, C, H, W)``."""
    def make(n: int = 64, seed: int = 0, channels: int = 1, size: int = 12) -> torch.Tensor:
        return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return make


@pytest.fixture
def train_config():
    """``train_config(**fields)``: a 4-step CPU ``TrainConfig`` on batches of 8, quiet, 4-image sample grids."""
    def make(**kwargs) -> gl.TrainConfig:
        return gl.TrainConfig(**{"steps": 4, "batch_size": 8, "progress": False, "n_samples": 4, "device": "cpu",
                                 **kwargs})
    return make



def _idx_bytes(array: np.ndarray) -> bytes:
    # uint8 values in the IDX format of the MNIST files, uncompressed
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


@pytest.fixture(scope="session")
def fake_mnist_root(tmp_path_factory):
    """A data folder holding the t10k MNIST files of 64 random digits (51 train, 13 held out); read-only."""
    root = tmp_path_factory.mktemp("fake_mnist")
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (64, 28, 28))
    (raw / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(digits), mtime=0))
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(np.arange(64) % 10), mtime=0))
    return root
