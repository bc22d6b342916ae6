"""Equal seeds, equal runs: ``--seed`` and the API's seed decide weights, data order, noise and augmentation.

Each test moves torch's global generator between the two runs it compares, so only the seed it passes can
make them equal. Seeds are integers in ``[0, 2**64)``, the range ``torch.manual_seed`` takes; the largest are
tested too (the per-step generators once overflowed from about 2.3e9 on).
"""
import pytest
import torch
from torch.utils.data import TensorDataset

import ganlab as gl
from ganlab.__main__ import main

SMALL = ["--base-channels", "4", "--extra-layers", "0", "--z-dim", "8", "--ema-half-life", "0", "--quiet",
         "--sample-every", "0", "--device", "cpu", "--batch-size", "8", "--checkpoint-every", "1"]
BIG_SEED = 2**64 - 1


def _state_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("seed", [3, BIG_SEED])
def test_two_cli_runs_with_the_same_seed_write_byte_identical_checkpoints(tmp_path, fake_mnist_root, capsys,
                                                                           seed):
    data = fake_mnist_root

    def train(name, seed):
        out = tmp_path / name
        assert main(["train", "dcgan", "--steps", "3", "--out", str(out), "--seed", str(seed), "--data-root",
                     str(data), *SMALL]) == 0
        return (out / "checkpoint.pt").read_bytes()

    a = train("a", seed)
    torch.randn(100)  # the global generator moved on: --seed alone must decide everything
    assert train("b", seed) == a
    assert train("c", seed - 1) != a
    capsys.readouterr()


@pytest.mark.parametrize("seed, augment", [(0, None), (BIG_SEED, "translation,cutout")])
def test_fit_with_the_same_seed_writes_byte_identical_checkpoints(tmp_path, toy_images, train_config, seed,
                                                                   augment):
    def run(name, seed):
        G, D = gl.models.build_gan("dcgan", z_dim=8, img_size=12, base_channels=4, seed=seed)
        torch.randn(100)  # build_gan(seed=...) restored the global generator; move it anyway
        config = train_config(seed=seed, augment=augment, ema_half_life=40.0, checkpoint_every=2)
        gl.fit(G, D, toy_images(), config, out_dir=tmp_path / name)
        return (tmp_path / name / "checkpoint.pt").read_bytes()

    a = run("a", seed)
    assert run("b", seed) == a
    assert run("c", seed - 1 if seed else 1) != a


def test_build_gan_seed_decides_the_initial_weights_and_leaves_the_global_generator_alone():
    before = torch.random.get_rng_state()
    G1, D1 = gl.models.build_gan("dcgan", z_dim=8, img_size=12, base_channels=4, seed=7)
    assert torch.equal(torch.random.get_rng_state(), before)
    torch.randn(10)
    G2, D2 = gl.recipes.MNIST.build(seed=7, z_dim=8, base_channels=4)
    G3, _ = gl.models.build_gan("dcgan", z_dim=8, img_size=12, base_channels=4, seed=8)
    assert _state_equal(G1.state_dict(), gl.models.build_gan("dcgan", z_dim=8, img_size=12, base_channels=4,
                                                             seed=7)[0].state_dict())
    assert not _state_equal(G1.state_dict(), G3.state_dict())
    assert G2.z_dim == 8
    with pytest.raises(ValueError, match="seed"):
        gl.models.build_gan("dcgan", seed=2**64)


@pytest.mark.parametrize("seed", [0, BIG_SEED])
def test_fit_vae_with_the_same_seed_gives_the_same_weights(toy_images, seed):
    data = toy_images(64, size=28)

    def run(seed):
        torch.manual_seed(0)
        vae = gl.models.VAE(z_dim=4, img_size=28, base_channels=4)
        torch.randn(100)  # batches and the reparameterisation noise must come from the config's seed
        gl.fit_vae(vae, data, gl.train.VAEConfig(steps=3, batch_size=8, seed=seed, device="cpu",
                                                 progress=False))
        return vae.state_dict()

    a = run(seed)
    assert _state_equal(run(seed), a)
    assert not _state_equal(run(seed - 1 if seed else 1), a)


@pytest.mark.parametrize("seed", [0, BIG_SEED])
def test_fit_pix2pix_with_the_same_seed_gives_the_same_weights(toy_images, seed):
    clean = toy_images(32, channels=1, size=16)
    pairs = TensorDataset(gl.degrade.GaussianNoise(sigma=0.1)(clean, seed=0), clean)

    def run(seed):
        torch.manual_seed(0)
        G, D = gl.models.build_pix2pix(base_channels=4)
        torch.randn(100)
        config = gl.translate.Pix2PixConfig(steps=3, batch_size=4, seed=seed, device="cpu", progress=False)
        gl.translate.fit_pix2pix(G, D, pairs, config)
        return {f"{name}.{k}": v for name, net in (("G", G), ("D", D)) for k, v in net.state_dict().items()}

    a = run(seed)
    assert _state_equal(run(seed), a)
    assert not _state_equal(run(seed - 1 if seed else 1), a)
