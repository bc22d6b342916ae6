"""Restoration metrics against closed forms and scikit-image, the classical baselines, photo patches."""
import math

import numpy as np
import pytest
import torch

from ganlab import classical, degrade
from ganlab.data import COLOUR_PHOTOS, photo, photo_patches
from ganlab.metrics import class_accuracy, get_metric, laplacian_variance, psnr, restoration_scores, ssim


def unit_images(n=4, c=1, size=16, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_psnr_of_a_known_mse():
    target = torch.full((2, 1, 8, 8), 0.5, dtype=torch.float64)
    pred = target + 0.1  # on [0, 1]: MSE = 0.01, PSNR = 10 log10(1 / 0.01) = 20 dB
    assert psnr(pred, target, value_range=(0, 1)) == pytest.approx(20.0, abs=1e-9)
    # the same images on ganlab's [-1, 1] scale give the same number
    assert psnr(pred * 2 - 1, target * 2 - 1) == pytest.approx(20.0, abs=1e-9)
    assert math.isinf(psnr(target, target, value_range=(0, 1)))


def test_psnr_matches_skimage_per_image_and_reduces():
    from skimage.metrics import peak_signal_noise_ratio

    a, b = unit_images(seed=1), unit_images(seed=2)
    per_image = psnr(a, b, value_range=(0, 1), reduction="none")
    expected = [peak_signal_noise_ratio(b[i].numpy(), a[i].numpy(), data_range=1.0) for i in range(len(a))]
    assert per_image.tolist() == pytest.approx(expected, rel=1e-9)
    assert psnr(a, b, value_range=(0, 1)) == pytest.approx(float(np.mean(expected)), rel=1e-9)
    pooled_mse = float(((a - b) ** 2).mean())
    assert psnr(a, b, value_range=(0, 1), reduction="pooled") == pytest.approx(-10 * math.log10(pooled_mse))


def test_psnr_on_a_mask_counts_only_the_masked_pixels():
    target = torch.zeros(2, 3, 4, 4, dtype=torch.float64)
    pred = target.clone()
    mask = torch.zeros(2, 1, 4, 4, dtype=torch.bool)
    mask[:, :, :2] = True
    pred[:, :, :2] = 0.1      # error 0.1 inside the mask ...
    pred[:, :, 2:] = 0.9      # ... and a large error outside it, which must not count
    assert psnr(pred, target, mask=mask, value_range=(0, 1)) == pytest.approx(20.0)
    assert psnr(pred, target, mask=mask, value_range=(0, 1), reduction="pooled") == pytest.approx(20.0)
    with pytest.raises(ValueError, match="at least one pixel"):
        psnr(pred, target, mask=torch.zeros(2, 1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask must have shape"):
        psnr(pred, target, mask=torch.ones(2, 2, 4, 4, dtype=torch.bool))


def test_psnr_clamps_to_the_value_range():
    target = torch.zeros(1, 1, 4, 4)
    assert psnr(target + 5.0, target, value_range=(0, 1)) == pytest.approx(0.0)  # clamped to 1: MSE 1


def test_ssim_identity_and_skimage_agreement():
    from skimage.metrics import structural_similarity

    a = unit_images(n=2, size=32, seed=3)
    b = (a + 0.1 * unit_images(n=2, size=32, seed=4)).clamp(0, 1)
    assert ssim(a, a, value_range=(0, 1)) == pytest.approx(1.0, abs=1e-9)
    ours = ssim(a, b, value_range=(0, 1), reduction="none")
    theirs = [structural_similarity(a[i, 0].numpy(), b[i, 0].numpy(), data_range=1.0, gaussian_weights=True,
                                    sigma=1.5, use_sample_covariance=False) for i in range(2)]
    assert ours.tolist() == pytest.approx(theirs, abs=0.02)  # the two differ only at the borders
    assert ssim(a, 1 - a, value_range=(0, 1)) < 0.5


def test_laplacian_variance_closed_forms():
    i, j = torch.meshgrid(torch.arange(10), torch.arange(10), indexing="ij")
    checker = ((i + j) % 2).double()[None, None]  # every neighbour differs: the Laplacian is +-4
    assert laplacian_variance(checker, value_range=(0, 1)) == pytest.approx(16.0)
    assert laplacian_variance(torch.full((3, 1, 8, 8), 0.3), value_range=(0, 1)) == 0.0
    ramp = j.double()[None, None] / 9  # linear: the Laplacian is zero
    assert laplacian_variance(ramp, value_range=(0, 1)) == pytest.approx(0.0, abs=1e-12)
    colour = torch.cat([checker, checker, torch.zeros_like(checker)], dim=1)  # mean over the channels
    assert laplacian_variance(colour, value_range=(0, 1)) == pytest.approx(32 / 3)
    blurred = torch.nn.functional.avg_pool2d(checker, 3, stride=1, padding=1)
    assert laplacian_variance(blurred, value_range=(0, 1)) < 16.0
    with pytest.raises(ValueError, match="1 or 3 channels"):
        laplacian_variance(torch.zeros(1, 2, 5, 5))


def test_restoration_scores_and_registry():
    a, b = unit_images(seed=5) * 2 - 1, unit_images(seed=6) * 2 - 1
    scores = restoration_scores(a, b)
    assert scores == {"psnr": pytest.approx(psnr(a, b)), "ssim": pytest.approx(ssim(a, b)),
                      "sharpness": pytest.approx(laplacian_variance(a))}
    assert get_metric("psnr") is psnr
    with pytest.raises(ValueError, match="reduction"):
        psnr(a, b, reduction="sum")
    with pytest.raises(ValueError, match="psnr_reduction"):
        restoration_scores(a, b, psnr_reduction="none")
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, b[:, :, :3])
    with pytest.raises(ValueError, match="value_range"):
        psnr(a, b, value_range=(1, 1))


def test_class_accuracy_with_a_constructed_classifier():
    class Thresholds(torch.nn.Module):
        # "class 1" when the mean pixel is above 0, else "class 0"
        def features(self, x):
            return x.mean(dim=(1, 2, 3))[:, None]

        def head(self, f):
            return torch.cat([-f, f], dim=1) * 100

    images = torch.cat([torch.full((3, 1, 4, 4), -0.5), torch.full((2, 1, 4, 4), 0.5)])
    clf = Thresholds()
    assert class_accuracy(images, torch.tensor([0, 0, 0, 1, 1]), classifier=clf) == 1.0
    assert class_accuracy(images, torch.tensor([0, 0, 1, 1, 0]), classifier=clf) == pytest.approx(0.6)
    with pytest.raises(ValueError, match="labels"):
        class_accuracy(images, torch.tensor([0, 1]), classifier=clf)


# --- the classical baselines -------------------------------------------------------------------------

def smooth_images(n=3, c=1, size=16):
    # smooth ramps plus a bump: images a classical method can restore well
    i, j = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = 0.6 * torch.exp(-(i ** 2 + j ** 2) * 2) - 0.3 + 0.2 * i
    return torch.stack([base + 0.1 * k for k in range(n)])[:, None].expand(n, c, size, size).contiguous()


@pytest.mark.parametrize("channels", [1, 3])
def test_denoisers_raise_psnr(channels):
    clean = smooth_images(c=channels)
    noisy = degrade.GaussianNoise(sigma=0.1)(clean, seed=0)
    for restored in (classical.nl_means(noisy, sigma=0.1), classical.total_variation(noisy, weight=0.1)):
        assert restored.shape == clean.shape and restored.min() >= -1 and restored.max() <= 1
        assert psnr(restored, clean) > psnr(noisy, clean) + 3


def test_biharmonic_keeps_known_pixels_and_fills_the_box():
    clean = smooth_images()
    masked = degrade.BoxMask(size=4)(clean, seed=0)
    image, mask = degrade.split_mask(masked)
    filled = classical.biharmonic(image, mask)
    assert torch.allclose(filled[~mask], clean[~mask], atol=1e-6)
    assert psnr(filled, clean, mask=mask) > psnr(image, clean, mask=mask) + 10
    with pytest.raises(ValueError, match="mask must have shape"):
        classical.biharmonic(image, mask[:, :, :3])


def test_bicubic_upscales_and_is_exact_on_a_linear_ramp():
    ramp = torch.linspace(-0.5, 0.5, 32).expand(1, 1, 32, 32).contiguous()
    small = degrade.Downsample(factor=2, resize_back=False)(ramp)
    up = classical.bicubic(small, factor=2)
    assert up.shape == (1, 1, 32, 32)
    assert torch.allclose(up[..., 8:-8], ramp[..., 8:-8], atol=1e-4)  # cubic interpolation keeps lines
    assert classical.bicubic(smooth_images(c=3)[:, :, ::4, ::4], factor=4).shape == (3, 3, 16, 16)


def test_grey_as_colour_and_argument_errors():
    grey = smooth_images()
    colour = classical.grey_as_colour(grey)
    assert colour.shape == (3, 3, 16, 16) and torch.equal(colour[:, 1:2], grey)
    with pytest.raises(ValueError, match="grey"):
        classical.grey_as_colour(colour)
    with pytest.raises(ValueError, match="sigma"):
        classical.nl_means(grey, sigma=0)
    with pytest.raises(ValueError, match="weight"):
        classical.total_variation(grey, weight=-1)
    with pytest.raises(ValueError, match="factor"):
        classical.bicubic(grey, factor=0)
    with pytest.raises(ValueError, match="images"):
        classical.nl_means(torch.zeros(2, 2, 4, 4), sigma=0.1)


# --- photographs ---------------------------------------------------------------------------------------

def test_photo_and_patches():
    image = photo("coffee")
    assert image.shape == (3, 400, 600) and image.min() >= -1 and image.max() <= 1
    patches = photo_patches(("coffee", "chelsea"), size=24, n=5, scale=0.5, seed=1)
    assert patches.shape == (5, 3, 24, 24) and patches.dtype == torch.float32
    assert torch.equal(patches, photo_patches(("coffee", "chelsea"), size=24, n=5, scale=0.5, seed=1))
    assert not torch.equal(patches, photo_patches(("coffee", "chelsea"), size=24, n=5, scale=0.5, seed=2))
    full = photo_patches("coffee", size=8, n=2, scale=1.0, seed=0)
    g = torch.Generator().manual_seed(0)
    t, l = torch.randint(400 - 8 + 1, (2,), generator=g), torch.randint(600 - 8 + 1, (2,), generator=g)
    assert torch.equal(full[0], image[:, t[0]:t[0] + 8, l[0]:l[0] + 8])  # crops of the photograph itself
    assert "motorcycle" in COLOUR_PHOTOS and photo("motorcycle").shape[0] == 3


def test_photo_argument_errors():
    with pytest.raises(ValueError, match="name"):
        photo("camera")  # grey: not a colour photograph
    with pytest.raises(ValueError, match="names"):
        photo_patches(())
    with pytest.raises(ValueError, match="scale"):
        photo_patches("coffee", scale=2.0)
    with pytest.raises(ValueError, match="size"):
        photo_patches("coffee", size=500, scale=0.5)
    with pytest.raises(ValueError, match="n must"):
        photo_patches("coffee", n=0)
