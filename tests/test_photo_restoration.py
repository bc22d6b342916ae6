"""Restoring photographs: the restorer network, the photo stream, the new degradations, whole-image
restoration in tiles, the image files of `ganlab restore`, the colour and realism measures, BM3D and Lanczos."""
import copy
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import ganlab as gl
from ganlab import classical
from ganlab import degrade as dg
from ganlab.data import OTHER_PHOTOS, RESTORE_TEST_PHOTOS, RESTORE_TRAIN_PHOTOS, PhotoPatches, photo
from ganlab.errors import UsageError
from ganlab.metrics import chroma_error, colourfulness, frechet_distance
from ganlab.models import PatchGANDiscriminator, RestorationUNet
from ganlab.models.pix2pix import pyramid_fill
from ganlab.restore import TASKS, network_input, read_image, read_mask, restore_image, write_image


def images(n=2, c=3, size=16, seed=0):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def trained_a_little(G, seed=0):
    # a nonzero last layer, so that G is no longer the identity
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed)
        G.tail.weight.copy_(0.05 * torch.randn(G.tail.weight.shape, generator=g))
    return G.eval()


# ---- the network

@pytest.mark.parametrize("task", sorted(TASKS))
def test_the_untrained_restorer_returns_its_base_image(task):
    t = TASKS[task]
    G = RestorationUNet(in_channels=t.in_channels, out_channels=3, base_channels=4, depth=2, blocks=1,
                        upscale=t.upscale)
    x = images(c=t.in_channels)
    y = G(x)
    assert y.shape == (2, 3, 16 * t.upscale, 16 * t.upscale)
    if t.in_channels == 1:
        assert torch.equal(y, x.expand(-1, 3, -1, -1))   # grey in three channels
    elif t.in_channels == 4:                              # image and mask: the holes filled smoothly
        assert torch.equal(y, pyramid_fill(x[:, :3], x[:, 3:] > 0.5).clamp(-1, 1))
    elif t.upscale == 1:
        assert torch.equal(y, x[:, :3])
    else:
        base = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False).clamp(-1, 1)
        assert torch.allclose(y, base)


def test_pyramid_fill_keeps_known_pixels_and_fills_flat_and_smooth_images():
    flat = torch.full((2, 3, 20, 28), 0.3)
    hole = torch.zeros(2, 1, 20, 28, dtype=torch.bool)
    hole[0, :, 4:15, 6:20] = True
    hole[1, :, :, :27] = True                                      # one known column only
    image = flat.masked_fill(hole, -1.0)
    assert torch.allclose(pyramid_fill(image, hole), flat, atol=1e-6)
    ramp = torch.linspace(-1, 1, 28).expand(1, 3, 20, 28).clone()
    filled = pyramid_fill(ramp.masked_fill(hole[:1], 0.0), hole[:1])
    assert torch.equal(filled[~hole[:1].expand_as(filled)], ramp[~hole[:1].expand_as(ramp)])
    error = (filled - ramp).abs()[hole[:1].expand_as(ramp)]         # a slope is roughly continued
    assert error.mean() < 0.15 and error.max() < 0.3     # (a harmonic fill would be exact here)
    assert torch.equal(pyramid_fill(ramp, torch.ones(1, 1, 20, 28)), torch.zeros(1, 3, 20, 28))


def test_patchgan_with_spectral_norm_judges_each_image_alone():
    torch.manual_seed(0)
    D = PatchGANDiscriminator(in_channels=3, out_channels=3, base_channels=8, n_layers=2, norm="spectral")
    x, y = images(n=4, size=32), images(n=4, size=32, seed=1)
    D.train()      # each call moves the power iteration: every call gets a copy of the same D
    together = copy.deepcopy(D)(x, y)
    alone = torch.cat([copy.deepcopy(D)(x[i:i + 1], y[i:i + 1]) for i in range(4)])
    assert torch.allclose(together, alone, atol=1e-5) and D.batch_independent
    with pytest.raises(ValueError, match="norm"):
        PatchGANDiscriminator(norm="layer")


def test_colourisation_keeps_the_luminance_exactly():
    G = trained_a_little(RestorationUNet(in_channels=1, out_channels=3, base_channels=4, depth=1, blocks=1))
    grey = images(c=1) * 0.5                                      # away from the clamp
    y = G(grey)
    assert (y[:, 0] - y[:, 1]).abs().max() > 1e-3                 # it adds colour ...
    assert torch.allclose(dg.Greyscale()(y), grey, atol=1e-5)     # ... and keeps the luminance


def test_restorer_argument_errors_name_the_argument():
    for kwargs, name in [(dict(out_channels=2), "out_channels"), (dict(blocks=-1), "blocks"),
                         (dict(upscale=0), "upscale"), (dict(in_channels=2, out_channels=3), "in_channels"),
                         (dict(depth=0), "depth")]:
        with pytest.raises(ValueError, match=name):
            RestorationUNet(**kwargs)
    with pytest.raises(ValueError, match="divisible by 8"):
        RestorationUNet(depth=3)(torch.zeros(1, 3, 12, 12))


# ---- the photographs and the stream of crops

def test_the_photo_lists_are_disjoint_and_load():
    assert not set(RESTORE_TRAIN_PHOTOS) & set(RESTORE_TEST_PHOTOS + OTHER_PHOTOS)
    for name in OTHER_PHOTOS:
        x = photo(name)
        assert x.shape[0] == 3 and min(x.shape[1:]) >= 400 and -1 <= x.min() < x.max() <= 1
    with pytest.raises(ValueError, match="name"):
        photo("lena")


def test_photo_patches_are_a_pure_function_of_index_and_seed():
    stream = PhotoPatches(("astronaut", "coffee"), size=24, scales=(1.0, 0.5),
                          degradation=dg.GaussianNoise(sigma=0.1))
    noisy, clean = stream.batch(3, 5, seed=1)
    assert noisy.shape == clean.shape == (5, 3, 24, 24) and clean.abs().max() <= 1
    again = stream.batch(3, 5, seed=1)
    assert torch.equal(noisy, again[0]) and torch.equal(clean, again[1])
    assert not torch.equal(clean, stream.batch(4, 5, seed=1)[1])   # every batch is new
    assert not torch.equal(clean, stream.batch(3, 5, seed=2)[1])
    assert PhotoPatches("coffee", size=8).batch(0, 2).shape == (2, 3, 8, 8)  # no degradation: crops alone
    for kwargs, name in [(dict(size=0), "size"), (dict(scales=(1.5,)), "scales"), (dict(names=()), "names"),
                         (dict(size=1000), "size")]:
        with pytest.raises(ValueError, match=name):
            PhotoPatches(**{"names": "coffee", **kwargs})
    with pytest.raises(ValueError, match="batch_size"):
        stream.batch(0, 0)


# ---- the degradations of the photo tasks

def test_quantized_noise_is_what_an_8_bit_file_holds():
    x = images(size=32)
    y = dg.GaussianNoise(sigma=25 / 255, quantize=True)(x, seed=0)
    levels = (y + 1) * 127.5
    assert y.min() >= -1 and y.max() <= 1 and torch.allclose(levels, levels.round(), atol=1e-4)
    assert 0.07 < (y - x).std() < 0.2     # 2 * 25/255 = 0.196 before clipping


def test_bicubic_downsample_is_antialiased_and_keeps_flat_images():
    flat = torch.full((1, 3, 16, 16), 0.25)
    assert torch.allclose(dg.BicubicDownsample(factor=4)(flat), torch.full((1, 3, 4, 4), 0.25), atol=1e-6)
    stripes = torch.ones(1, 1, 16, 16)
    stripes[..., ::2] = -1                    # the highest frequency: antialiasing must average it away
    small = dg.BicubicDownsample(factor=4)(stripes)
    assert small.abs().max() < 0.1 and small[..., 1:-1].abs().max() < 0.02   # plain sampling would give -1
    with pytest.raises(ValueError, match="divisible"):
        dg.BicubicDownsample(factor=4)(torch.zeros(1, 3, 10, 12))


def test_box_masks_of_random_sizes():
    x = torch.zeros(200, 3, 64, 64)
    y = dg.BoxMask(size=8, max_size=48, count=3)(x, seed=0)
    missing = y[:, 3]
    share = missing.flatten(1).mean(1)
    assert y.shape == (200, 4, 64, 64) and (share > 0).all() and share.max() < 0.95
    assert share.std() > 0.05                                       # sizes vary from image to image
    with pytest.raises(ValueError, match="max_size"):
        dg.BoxMask(size=8, max_size=4)
    with pytest.raises(ValueError, match="count"):
        dg.BoxMask(size=8, count=0)


# ---- whole images

def test_tiled_restoration_matches_the_whole_image_in_the_interior():
    torch.manual_seed(0)
    G = trained_a_little(RestorationUNet(base_channels=4, depth=2, blocks=1))
    image = images(n=1, size=72)[0]
    whole = G(F.pad(image[None], (32, 32, 32, 32), mode="reflect"))[0, :, 32:-32, 32:-32]
    tiled = restore_image(G, "denoise", image, tile=24, margin=32)
    assert tiled.shape == (3, 72, 72)
    # the receptive field of this small network (25 pixels) is within the margin: nine tiles give one pass
    assert torch.allclose(tiled, whole, atol=1e-5)
    assert not torch.allclose(restore_image(G, "denoise", image, tile=24, margin=4), whole, atol=1e-5)


def test_restoration_of_odd_sizes_upscaling_and_inpainting():
    G = trained_a_little(RestorationUNet(base_channels=4, depth=2, blocks=0, upscale=4))
    assert restore_image(G, "sr4", images(n=1, size=13)[0, :, :, :11], tile=8).shape == (3, 52, 44)
    G = trained_a_little(RestorationUNet(in_channels=4, base_channels=4, depth=2, blocks=0))
    image = images(n=1, size=20)[0]
    mask = torch.zeros(1, 20, 20, dtype=torch.bool)
    mask[:, 5:9, 3:15] = True
    out = restore_image(G, "inpaint", image, mask, tile=16)
    assert torch.equal(out[:, ~mask[0]], image[:, ~mask[0]])       # known pixels kept exactly
    assert not torch.equal(out[:, mask[0]], image[:, mask[0]])
    x = network_input("inpaint", image[None], mask[None])
    assert x.shape == (1, 4, 20, 20) and (x[:, :3][mask[None].expand(-1, 3, -1, -1)] == 0).all()
    with pytest.raises(UsageError, match="mask"):
        network_input("inpaint", image[None])
    with pytest.raises(UsageError, match="colour"):
        network_input("denoise", image[None, :1])
    assert network_input("colorize", image[None]).shape == (1, 1, 20, 20)


# ---- the files of `ganlab restore`

def _save(path, array, mode=None):
    from PIL import Image

    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_image_files_round_trip_and_bad_ones_are_one_line(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    x = read_image(_save(tmp_path / "a.png", rgb), colour=True)
    assert x.shape == (3, 20, 30)
    write_image(tmp_path / "b.png", x)
    assert torch.equal(read_image(tmp_path / "b.png"), x)       # 8 bits in, the same 8 bits out
    assert read_image(_save(tmp_path / "g.png", rgb[..., 0])).shape == (1, 20, 30)
    bad = {
        "16bit.png": (lambda p: _save(p, rgb[..., 0].astype(np.uint16) * 257), "16-bit"),
        "alpha.png": (lambda p: _save(p, np.dstack([rgb, np.full((20, 30), 7, np.uint8)])), "transparent"),
        "tiny.png": (lambda p: _save(p, rgb[:4, :4]), "at least 8"),
        "grey.png": (lambda p: _save(p, rgb[..., 0]), "greyscale"),
        "text.png": (lambda p: p.write_text("not an image"), "not an image"),
        "cut.png": (lambda p: p.write_bytes((tmp_path / "a.png").read_bytes()[:100]), "damaged"),
    }
    for name, (make, words) in bad.items():
        make(tmp_path / name)
        with pytest.raises(UsageError, match=words) as info:
            read_image(tmp_path / name, colour=True)
        assert str(info.value).startswith("argument --in: ") and name in str(info.value)
        assert "\n" not in str(info.value)
    with pytest.raises(UsageError, match="does not exist"):
        read_image(tmp_path / "missing.png")


def test_masks_are_white_where_missing_and_must_fit_the_image(tmp_path):
    m = np.zeros((20, 30), dtype=np.uint8)
    m[2:5, 3:9] = 255
    mask = read_mask(_save(tmp_path / "m.png", m), (20, 30))
    assert mask.shape == (1, 20, 30) and int(mask.sum()) == 18
    with pytest.raises(UsageError, match="image's size"):
        read_mask(tmp_path / "m.png", (21, 30))
    with pytest.raises(UsageError, match="every pixel"):
        read_mask(_save(tmp_path / "w.png", np.full((20, 30), 255, np.uint8)), (20, 30))


# ---- measures and classical baselines

def test_colourfulness_and_chroma_error():
    grey = images(c=1).expand(-1, 3, -1, -1)
    assert colourfulness(grey) == pytest.approx(0.0, abs=1e-9)
    red = -torch.ones(1, 3, 8, 8)
    red[:, 0] = 1               # flat pure red: only the 0.3 * mean term, rg = 255 and yb = 127.5
    assert colourfulness(red) == pytest.approx(0.3 * 255 * (1 + 0.25) ** 0.5, rel=1e-6)
    colour = images(size=16)
    assert chroma_error(colour, colour) == pytest.approx(0.0, abs=1e-6)
    g = classical.grey_as_colour(dg.Greyscale()(colour))
    assert chroma_error(g, colour) > 10                             # grey misses every colour


class DetailEnergy(torch.nn.Module):
    """Hand-made features: the mean and spread of each channel's absolute Laplacian (fine detail)."""

    def features(self, x):
        kernel = torch.tensor([[0.0, 1, 0], [1, -4, 1], [0, 1, 0]]).expand(3, 1, 3, 3)
        lap = F.conv2d(x, kernel, groups=3).abs().flatten(2)
        return torch.cat([lap.mean(2), lap.std(2)], dim=1)


def test_photo_realism_is_a_frechet_distance_of_features():
    stream = PhotoPatches(RESTORE_TEST_PHOTOS, size=32, scales=(1.0,))
    clean, other = stream.batch(0, 64), stream.batch(1, 64)
    blurred = F.avg_pool2d(F.pad(clean, (2, 2, 2, 2), mode="reflect"), 5, 1)
    net = DetailEnergy()
    assert gl.metrics.photo_realism(clean, clean, net) == pytest.approx(0.0, abs=1e-9)
    # blurring the same crops moves them further than 64 other clean crops are
    assert gl.metrics.photo_realism(blurred, clean, net) > 3 * gl.metrics.photo_realism(other, clean, net)
    mu, sigma = gl.metrics.feature_statistics(gl.metrics.photo_features(blurred, net))
    mu0, sigma0 = gl.metrics.feature_statistics(gl.metrics.photo_features(clean, net))
    assert gl.metrics.photo_realism(blurred, clean, net) == pytest.approx(frechet_distance(mu, sigma, mu0, sigma0))
    with pytest.raises(UsageError, match="images"):
        gl.metrics.photo_features(clean[:, :1], net)
    # tiles: each 32 x 32 crop holds four 16 x 16 tiles, in order
    tiles = gl.metrics._tiles(clean[:2], 16)
    assert tiles.shape == (8, 3, 16, 16) and torch.equal(tiles[5], clean[1, :, :16, 16:])
    assert gl.metrics.photo_realism(blurred, clean, net, tile=16) > 0
    with pytest.raises(UsageError, match="tile"):
        gl.metrics.photo_realism(clean, clean, net, tile=33)


def test_the_photo_feature_network_is_trained_once_and_cached(tmp_path):
    net = gl.metrics.get_photo_features(cache_dir=tmp_path, n_crops=64, size=16, epochs=1)
    assert 0 <= net.heldout_accuracy <= 1 and len(list(tmp_path.glob("photo-features-*.pt"))) == 1
    assert net.features(torch.zeros(2, 3, 16, 16)).shape == (2, net.feature_dim)
    again = gl.metrics.get_photo_features(cache_dir=tmp_path, n_crops=64, size=16, epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(net.state_dict().values(), again.state_dict().values()))
    assert again.heldout_accuracy == net.heldout_accuracy


def test_bm3d_denoises_and_lanczos_enlarges():
    clean = PhotoPatches(RESTORE_TEST_PHOTOS, size=32, scales=(0.5,)).batch(0, 1)
    noisy = dg.GaussianNoise(sigma=25 / 255)(clean, seed=0)
    assert gl.metrics.psnr(classical.bm3d(noisy, sigma=25 / 255), clean) > gl.metrics.psnr(noisy, clean) + 5
    small = dg.BicubicDownsample(factor=4)(clean)
    big = classical.lanczos(small, factor=4)
    assert big.shape == (1, 3, 32, 32)
    assert torch.allclose(classical.lanczos(torch.full((1, 3, 4, 4), 0.5), factor=2), torch.full((1, 3, 8, 8), 0.5),
                          atol=1e-5)


def test_fit_pix2pix_on_a_stream_resumes_exactly(tmp_path):
    from ganlab.translate import Pix2PixConfig, fit_pix2pix

    stream = PhotoPatches("coffee", size=16, scales=(0.5,), degradation=TASKS["denoise"].degradation)
    config = Pix2PixConfig(steps=4, batch_size=2, adv_weight=0.1, ema_half_life=8.0, checkpoint_every=1,
                           progress=False, device="cpu")

    def pair():
        torch.manual_seed(0)
        return (RestorationUNet(base_channels=4, depth=1, blocks=1),
                PatchGANDiscriminator(in_channels=3, out_channels=3, base_channels=4, n_layers=1, norm="spectral"))

    whole = fit_pix2pix(*pair(), stream, config, out_dir=tmp_path / "whole")

    def stop_after_two(state):
        if state.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fit_pix2pix(*pair(), stream, config, out_dir=tmp_path / "cut", callbacks={"on_step_end": [stop_after_two]})
    resumed = fit_pix2pix(*pair(), stream, config, out_dir=tmp_path / "cut", resume=True)
    assert resumed.step == 4 and len(resumed.history["l1"]) == len(whole.history["l1"])
    for a, b in ((whole.G, resumed.G), (whole.D, resumed.D), (whole.G_ema, resumed.G_ema)):
        assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    G, meta = gl.translate.load_pix2pix_generator(tmp_path / "cut" / "checkpoint.pt")  # the EMA weights
    assert all(torch.equal(x, y) for x, y in zip(G.state_dict().values(), whole.G_ema.state_dict().values()))
    with pytest.raises(gl.CheckpointError, match="differs"):
        fit_pix2pix(*pair(), stream, Pix2PixConfig(**{**config.to_dict(), "betas": (0.9, 0.999), "steps": 5}),
                    out_dir=tmp_path / "cut", resume=True)


def test_chroma_correlation_tells_varied_colours_from_a_tint():
    colour = images(size=16, seed=3)
    assert gl.metrics.chroma_correlation(colour, colour) == pytest.approx(1.0, abs=1e-6)
    grey = classical.grey_as_colour(dg.Greyscale()(colour))
    tinted = grey.clone()
    tinted[:, 0] += 0.2                                             # one colour cast everywhere
    assert gl.metrics.chroma_correlation(grey, colour) == pytest.approx(0.0, abs=1e-6)
    assert abs(gl.metrics.chroma_correlation(tinted.clamp(-1, 1), colour)) < 0.2
    assert gl.metrics.chroma_correlation(-colour, colour) < -0.5   # inverted colours vary the wrong way


def test_the_self_ensemble_averages_the_eight_orientations():
    G = trained_a_little(RestorationUNet(base_channels=4, depth=1, blocks=1))
    image = images(n=1, size=12)[0, :, :, :10]
    out = restore_image(G, "denoise", image, tile=16, ensemble=True)
    turned = [torch.rot90(image.flip(-1) if k >= 4 else image, k % 4, dims=(1, 2)) for k in range(8)]
    back = [torch.rot90(restore_image(G, "denoise", x, tile=16), -(k % 4), dims=(1, 2))
            for k, x in enumerate(turned)]
    expected = torch.stack([b.flip(-1) if k >= 4 else b for k, b in enumerate(back)]).mean(0)
    assert out.shape == image.shape and torch.allclose(out, expected, atol=1e-6)
    assert not torch.allclose(out, restore_image(G, "denoise", image, tile=16), atol=1e-4)


def test_bm3d_without_its_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # what an environment without the package imports
    with pytest.raises(ImportError, match=r"pip install bm3d"):
        classical.bm3d(torch.rand(1, 3, 16, 16), sigma=0.1)
