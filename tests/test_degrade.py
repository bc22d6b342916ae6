"""Degradations: closed forms, seeding, composition, masks, and argument checks."""
import math

import pytest
import torch

from ganlab import degrade as dg
from ganlab.data import PairedDataset


def images(n=6, c=1, size=8, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_gaussian_noise_has_the_asked_std_on_the_unit_scale_and_is_seeded():
    x = torch.zeros(200, 1, 16, 16)
    y = dg.GaussianNoise(sigma=0.1)(x, seed=3)
    # on [-1, 1] the std is twice sigma; on [0, 1] ((y + 1) / 2) it is sigma
    assert ((y + 1) / 2).std().item() == pytest.approx(0.1, rel=0.02)
    assert y.mean().abs().item() < 0.005
    assert torch.equal(y, dg.GaussianNoise(sigma=0.1)(x, seed=3))
    assert not torch.equal(y, dg.GaussianNoise(sigma=0.1)(x, seed=4))
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(dg.GaussianNoise(sigma=0.1)(x, generator=g1), dg.GaussianNoise(sigma=0.1)(x, generator=g2))
    assert torch.equal(x, torch.zeros_like(x))  # the input is not changed


def test_gaussian_noise_range_and_clip():
    x = torch.zeros(400, 1, 8, 8)
    y = dg.GaussianNoise(sigma=(0.05, 0.5))(x, seed=0)
    stds = ((y + 1) / 2).flatten(1).std(dim=1)
    assert 0.03 < stds.min() < 0.1 and 0.4 < stds.max() < 0.6  # one sigma per image, spread over the range
    clipped = dg.GaussianNoise(sigma=0.5, clip=True)(x, seed=0)
    assert clipped.min() >= -1 and clipped.max() <= 1


def test_box_mask_blanks_one_box_and_appends_the_mask():
    x = images(n=20, c=3, size=10)
    y = dg.BoxMask(size=(3, 4), fill=0.5)(x, seed=1)
    assert y.shape == (20, 4, 10, 10)
    image, mask = dg.split_mask(y)
    assert mask.dtype == torch.bool and mask.shape == (20, 1, 10, 10)
    assert (mask.flatten(1).sum(dim=1) == 12).all()  # every box lies fully inside the image
    for m in mask[:, 0]:
        rows, cols = m.any(dim=1).nonzero().flatten(), m.any(dim=0).nonzero().flatten()
        assert len(rows) == 3 and len(cols) == 4 and rows.diff().eq(1).all() and cols.diff().eq(1).all()
    assert (image[mask.expand_as(image)] == 0.5).all()
    assert torch.equal(image[~mask.expand_as(image)], x[~mask.expand_as(x)])  # the rest is untouched
    assert dg.BoxMask(size=3, mask_channel=False)(x, seed=1).shape == x.shape


def test_pixel_mask_fraction():
    y = dg.PixelMask(fraction=0.3)(torch.zeros(50, 1, 20, 20), seed=0)
    _, mask = dg.split_mask(y)
    assert mask.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert not dg.PixelMask(fraction=0.0)(torch.zeros(2, 1, 4, 4), seed=0)[:, 1].any()


def test_downsample_averages_blocks_and_repeats_them():
    x = torch.arange(16.0).reshape(1, 1, 4, 4) / 16
    small = dg.Downsample(factor=2, resize_back=False)(x)
    assert torch.allclose(small[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]) / 16)
    big = dg.Downsample(factor=2)(x)
    assert big.shape == x.shape and torch.equal(big[..., ::2, ::2], small) and torch.equal(big[..., 1::2, 1::2], small)


def test_greyscale_matches_skimage_rgb2gray():
    from skimage.color import rgb2gray

    x = images(n=3, c=3, size=6)
    grey = dg.Greyscale()(x)
    assert grey.shape == (3, 1, 6, 6)
    expected = torch.from_numpy(rgb2gray(((x + 1) / 2).permute(0, 2, 3, 1).double().numpy()))
    assert torch.allclose((grey[:, 0].double() + 1) / 2, expected, atol=1e-6)


def test_compose_draws_from_one_generator_in_order():
    x = images()
    composed = dg.Compose(dg.GaussianNoise(sigma=0.1), dg.PixelMask(fraction=0.5))
    g = torch.Generator().manual_seed(7)
    step_by_step = dg.PixelMask(fraction=0.5)(dg.GaussianNoise(sigma=0.1)(x, generator=g), generator=g)
    assert torch.equal(composed(x, seed=7), step_by_step)
    assert "GaussianNoise" in repr(composed) and "PixelMask" in repr(composed)


def test_paired_dataset_is_seeded_and_yields_pairs():
    x = images(n=10)
    pairs = PairedDataset(x, dg.GaussianNoise(sigma=0.2), seed=5)
    assert len(pairs) == 10
    noisy, clean = pairs[3]
    assert torch.equal(clean, x[3]) and not torch.equal(noisy, x[3])
    assert torch.equal(pairs.inputs, PairedDataset(x, dg.GaussianNoise(sigma=0.2), seed=5).inputs)
    assert "10 pairs" in repr(pairs)
    with pytest.raises(ValueError, match="clean"):
        PairedDataset(torch.zeros(3, 4), dg.GaussianNoise(sigma=0.2))
    with pytest.raises(TypeError, match="degradation"):
        PairedDataset(x, "noise")


@pytest.mark.parametrize("make, match", [
    (lambda: dg.GaussianNoise(sigma=0), "sigma"),
    (lambda: dg.GaussianNoise(sigma=(0.3, 0.1)), "sigma"),
    (lambda: dg.GaussianNoise(sigma="0.1"), "sigma"),
    (lambda: dg.BoxMask(size=0), "size"),
    (lambda: dg.BoxMask(size=(2, 3, 4)), "size"),
    (lambda: dg.BoxMask(size=3, fill=2.0), "fill"),
    (lambda: dg.PixelMask(fraction=1.0), "fraction"),
    (lambda: dg.Downsample(factor=0), "factor"),
    (lambda: dg.Compose(), "degradations"),
])
def test_constructor_errors_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_call_errors():
    x = images(size=6)
    with pytest.raises(ValueError, match="seed and generator"):
        dg.GaussianNoise(sigma=0.1)(x, seed=1, generator=torch.Generator())
    with pytest.raises(ValueError, match="seed"):
        dg.GaussianNoise(sigma=0.1)(x, seed=-1)
    with pytest.raises(ValueError, match="x must be a float tensor"):
        dg.GaussianNoise(sigma=0.1)(torch.zeros(6, 6))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        dg.Greyscale()([[0.0]])
    with pytest.raises(ValueError, match="size"):
        dg.BoxMask(size=7)(x, seed=0)
    with pytest.raises(ValueError, match="factor"):
        dg.Downsample(factor=4)(x)
    with pytest.raises(ValueError, match="3 colour channels"):
        dg.Greyscale()(x)
    with pytest.raises(TypeError, match="degradations"):
        dg.Compose(dg.Greyscale(), "noise")
    with pytest.raises(ValueError, match="mask as an extra channel"):
        dg.split_mask(x)


@pytest.mark.parametrize("make, match", [
    (lambda: dg.GaussianNoise(sigma=math.inf), "sigma must be a finite number"),
    (lambda: dg.GaussianNoise(sigma=(0.1, math.inf)), "sigma must be a finite number"),
    (lambda: dg.GaussianNoise(sigma=math.nan), "sigma must be a finite number"),
    (lambda: dg.BoxMask(size=3, fill=math.nan), "fill must be a finite number"),
])
def test_strengths_must_be_finite(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_non_finite_images_are_refused():
    x = images(size=6)
    x[0, 0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="x holds 1 NaN or infinite"):
        dg.GaussianNoise(sigma=0.1)(x, seed=0)
