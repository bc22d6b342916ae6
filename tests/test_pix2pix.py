"""The U-Net / PatchGAN pair and the pix2pix training step and loop."""
import pytest
import torch
import torch.nn.functional as F

import ganlab as gl
from ganlab.models import PatchGANDiscriminator, UNetGenerator, build_pix2pix
from ganlab.translate import Pix2PixConfig, fit_pix2pix, translate, translation_step

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("in_channels, out_channels, size, depth", [(1, 1, 28, 2), (2, 1, 28, 2), (1, 3, 32, 3),
                                                                     (3, 3, 16, 1)])
def test_shapes_range_and_patch_logits(in_channels, out_channels, size, depth, device):
    torch.manual_seed(0)
    G, D = build_pix2pix(in_channels=in_channels, out_channels=out_channels, base_channels=4, g_depth=depth)
    G, D = G.to(device), D.to(device)
    x = (torch.rand(3, in_channels, size, size) * 2 - 1).to(device)
    y = G(x)
    assert y.shape == (3, out_channels, size, size)
    assert y.min() >= -1 and y.max() <= 1
    logits = D(y, x)
    n = size // 4 - 2  # two stride-2 layers, then two 4 x 4 stride-1 layers that each take one off
    assert logits.shape == (3, n, n)
    with torch.no_grad():
        D.net[-1].weight.mul_(1000)
    assert (D(y, x).abs() > 1).any()  # raw logits, not probabilities


def test_residual_generator_starts_as_the_identity():
    x = torch.rand(2, 2, 8, 8) * 2 - 1
    G = UNetGenerator(in_channels=2, out_channels=1, base_channels=4, depth=1, residual=True)
    assert torch.equal(G(x), x[:, :1])
    grey = torch.rand(2, 1, 8, 8) * 2 - 1
    G = UNetGenerator(in_channels=1, out_channels=3, base_channels=4, depth=1, residual=True)
    assert torch.equal(G(grey), grey.expand(-1, 3, -1, -1))  # grey to colour starts grey
    assert torch.equal(G(torch.full((1, 1, 8, 8), 3.0)), torch.ones(1, 3, 8, 8))  # clamped to [-1, 1]


def test_receptive_field():
    assert PatchGANDiscriminator(n_layers=3).receptive_field == 70  # pix2pix's 70 x 70 PatchGAN
    assert PatchGANDiscriminator(n_layers=2).receptive_field == 34
    assert PatchGANDiscriminator(n_layers=1).receptive_field == 16


def test_argument_errors_name_the_argument():
    for kwargs, match in [(dict(out_channels=2), "out_channels"), (dict(depth=0), "depth"),
                          (dict(base_channels=0), "base_channels"), (dict(in_channels=0), "in_channels"),
                          (dict(in_channels=2, out_channels=3, residual=True), "residual")]:
        with pytest.raises(ValueError, match=match):
            UNetGenerator(**kwargs)
    with pytest.raises(ValueError, match="n_layers"):
        PatchGANDiscriminator(n_layers=0)
    with pytest.raises(ValueError, match="divisible by 4"):
        UNetGenerator(depth=2)(torch.zeros(1, 1, 10, 10))
    D = PatchGANDiscriminator(in_channels=2, out_channels=1)
    with pytest.raises(ValueError, match="y must be the condition"):
        D(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 16, 16))
    with pytest.raises(ValueError, match="x must have shape"):
        D(torch.zeros(1, 3, 16, 16), torch.zeros(1, 2, 16, 16))
    with pytest.raises(TypeError, match="z_dim"):
        build_pix2pix(z_dim=3)


def pair(seed=0, base=4, residual=False):
    torch.manual_seed(seed)
    return build_pix2pix(in_channels=1, out_channels=1, base_channels=base, g_depth=1, d_n_layers=1,
                         g_residual=residual)


def toy_pairs(n=32, size=8):
    # flat images of random grey levels, plus noise: averaging the neighbours removes most of it
    g = torch.Generator().manual_seed(0)
    clean = (torch.rand(n, 1, 1, 1, generator=g) - 0.5).expand(n, 1, size, size).contiguous()
    return clean + 0.3 * torch.randn(n, 1, size, size, generator=g), clean


def test_translation_step_matches_the_step_written_out():
    inputs, targets = toy_pairs(8)
    G1, D1 = pair()
    G2, D2 = pair()
    opts1 = [torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999)) for m in (G1, D1)]
    opts2 = [torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.999)) for m in (G2, D2)]
    lam = 0.5
    # by hand: D on (target, input) vs (output, input), then G on L1 + lam * non-saturating loss
    fake = G1(inputs)
    d_loss = F.softplus(-D1(targets, inputs)).mean() + F.softplus(D1(fake.detach(), inputs)).mean()
    opts1[1].zero_grad(); d_loss.backward(); opts1[1].step()
    g_loss = (fake - targets).abs().mean() + lam * F.softplus(-D1(fake, inputs)).mean()
    opts1[0].zero_grad(); g_loss.backward(); opts1[0].step()
    stats = translation_step(G2, D2, inputs, targets, *opts2, adv_weight=lam)
    assert stats["d_loss"] == pytest.approx(d_loss.item(), rel=1e-6)
    assert stats["l1"] + lam * stats["g_adv"] == pytest.approx(g_loss.item(), rel=1e-6)
    for a, b in zip(list(G1.parameters()) + list(D1.parameters()), list(G2.parameters()) + list(D2.parameters())):
        assert torch.allclose(a, b, atol=1e-6)
    assert all(p.requires_grad for p in D2.parameters())  # D is unfrozen again


def test_l1_only_step_leaves_d_alone():
    inputs, targets = toy_pairs(8)
    G, _ = pair()
    opt = torch.optim.Adam(G.parameters(), lr=1e-3)
    stats = translation_step(G, None, inputs, targets, opt, None, adv_weight=0)
    assert set(stats) == {"l1", "g_adv"} and stats["g_adv"] == 0
    with pytest.raises(ValueError, match="D and opt_d"):
        translation_step(G, None, inputs, targets, opt, None, adv_weight=0.1)
    with pytest.raises(ValueError, match="targets must have"):
        translation_step(G, None, inputs, targets[:, :, :4], opt, None, adv_weight=0)


def test_fit_learns_to_denoise_and_is_reproducible():
    inputs, targets = toy_pairs(64)
    before = F.l1_loss(inputs.clamp(-1, 1), targets).item()
    results = []
    for _ in range(2):
        G, D = pair(base=8)
        cfg = Pix2PixConfig(steps=60, batch_size=16, lr_g=2e-3, lr_d=2e-3, adv_weight=0.01, device="cpu",
                            progress=False, log_every=20)
        results.append(fit_pix2pix(G, D, (inputs, targets), cfg))
    r = results[0]
    assert r.step == 60 and r.stopped == "steps" and r.history["step"] == [20, 40, 60]
    assert {"l1", "g_adv", "d_loss", "d_real", "d_fake", "seconds"} <= set(r.history)
    after = F.l1_loss(translate(r.G, inputs), targets).item()
    assert after < 0.8 * before
    for a, b in zip(r.G.state_dict().values(), results[1].G.state_dict().values()):
        assert torch.equal(a, b)
    assert r.G.training  # translate restores the mode


def test_fit_l1_only_needs_no_discriminator():
    inputs, targets = toy_pairs(32)
    G, _ = pair()
    seen = []
    r = fit_pix2pix(G, None, gl.data.PairedDataset(targets, gl.degrade.GaussianNoise(sigma=0.1)),
                    Pix2PixConfig(steps=5, batch_size=8, adv_weight=0, device="cpu", progress=False, log_every=1),
                    callbacks={"on_step_end": [lambda s: seen.append(s.step)]})
    assert r.D is None and seen == [1, 2, 3, 4, 5] and "d_loss" not in r.history


def test_fit_argument_errors():
    inputs, targets = toy_pairs(16)
    G, D = pair()
    with pytest.raises(TypeError, match="D must be"):
        fit_pix2pix(G, None, (inputs, targets), Pix2PixConfig(steps=1, adv_weight=0.1, progress=False))
    with pytest.raises(TypeError, match="data must be"):
        fit_pix2pix(G, D, inputs, Pix2PixConfig(steps=1, progress=False))
    with pytest.raises(TypeError, match="config"):
        fit_pix2pix(G, D, (inputs, targets), {"steps": 1})
    with pytest.raises(ValueError, match="batch_size"):
        fit_pix2pix(G, D, (inputs, targets), Pix2PixConfig(steps=1, batch_size=64, progress=False))
    for kwargs, match in [(dict(adv_weight=-1), "adv_weight"), (dict(steps=0), "steps"), (dict(loss="l2"), "loss"),
                          (dict(betas=(0.5,)), "betas"), (dict(precision="fp8"), "precision")]:
        with pytest.raises(ValueError, match=match):
            Pix2PixConfig(**kwargs)
    with pytest.raises(ValueError, match="inputs must be"):
        translate(G, inputs[0])


@pytest.mark.parametrize("betas", [(0.5,), (0.5, 1.0), (True, 0.9), None, "ab", (-0.1, 0.9)])
def test_both_configs_check_betas_alike(betas):
    for config in (Pix2PixConfig, gl.TrainConfig):
        with pytest.raises(ValueError, match="betas must be two numbers"):
            config(betas=betas)
    assert Pix2PixConfig(betas=[0, 0.9]).betas == gl.TrainConfig(betas=[0, 0.9]).betas == (0.0, 0.9)
