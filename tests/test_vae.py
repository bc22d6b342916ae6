"""The VAE: its loss against closed forms, its networks' shapes and ranges, sampling, and its training loop."""
import math

import pytest
import torch
from torch.distributions import Bernoulli, Normal, kl_divergence

import ganlab as gl
from ganlab.losses import VAELoss, bernoulli_nll, gaussian_kl, vae_loss
from ganlab.models import VAE, DCGANGenerator, VAEDecoder, VAEEncoder

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


# --- the loss ---------------------------------------------------------------------------------------

def test_kl_is_zero_when_the_posterior_is_the_prior():
    assert torch.equal(gaussian_kl(torch.zeros(3, 5), torch.zeros(3, 5)), torch.zeros(3))


def test_kl_closed_form_by_hand():
    # one dimension: KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1 - log s^2) / 2
    mu = torch.tensor([[1.0], [0.0], [2.0]])
    logvar = torch.tensor([[0.0], [1.0], [math.log(0.25)]])
    expected = torch.tensor([0.5, 0.5 * (math.e - 2.0), 0.5 * (4.0 + 0.25 - 1.0 - math.log(0.25))])
    assert torch.allclose(gaussian_kl(mu, logvar), expected, atol=1e-6)


def test_kl_matches_torch_distributions_and_sums_over_dimensions():
    g = torch.Generator().manual_seed(0)
    mu, logvar = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(6, 4, generator=g, dtype=torch.float64)
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(torch.zeros_like(mu), torch.ones_like(mu))
    assert torch.allclose(gaussian_kl(mu, logvar), kl_divergence(q, p).sum(dim=1), atol=1e-12)
    assert (gaussian_kl(mu, logvar) > 0).all()


def test_kl_matches_a_monte_carlo_estimate():
    # KL = E_q[log q(z) - log p(z)], estimated with many samples of the reparameterisation
    mu, logvar = torch.tensor([[0.7, -1.2]], dtype=torch.float64), torch.tensor([[-0.5, 0.8]], dtype=torch.float64)
    z = VAE.reparameterize(mu.expand(200_000, 2), logvar.expand(200_000, 2),
                           generator=torch.Generator().manual_seed(1))
    q, p = Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(dim=1).mean()
    assert mc.item() == pytest.approx(gaussian_kl(mu, logvar).item(), rel=0.02)


def test_bernoulli_nll_is_the_log_likelihood_of_binary_pixels():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64) * 3
    t = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).double()     # black-and-white pixels in [0, 1]
    x = 2 * t - 1                                                 # ... in ganlab's [-1, 1]
    expected = -Bernoulli(logits=logits).log_prob(t).flatten(1).sum(dim=1)
    assert torch.allclose(bernoulli_nll(logits, x), expected, atol=1e-12)
    # logits 0: every pixel costs log 2, whatever the image
    assert torch.allclose(bernoulli_nll(torch.zeros(2, 1, 4, 4), torch.rand(2, 1, 4, 4) * 2 - 1),
                          torch.full((2,), 16 * math.log(2.0)))
    # stable at extreme logits
    assert torch.isfinite(bernoulli_nll(torch.full((1, 1, 2, 2), 1e4), -torch.ones(1, 1, 2, 2))).all()


def test_vae_loss_is_recon_plus_beta_kl_averaged_over_the_batch():
    g = torch.Generator().manual_seed(3)
    logits, x = torch.randn(5, 1, 6, 6, generator=g), torch.rand(5, 1, 6, 6, generator=g) * 2 - 1
    mu, logvar = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g)
    out = vae_loss(logits, x, mu, logvar)
    assert isinstance(out, VAELoss)
    recon, kl = bernoulli_nll(logits, x).mean(), gaussian_kl(mu, logvar).mean()
    assert torch.allclose(out.recon, recon) and torch.allclose(out.kl, kl)
    assert torch.allclose(out.loss, recon + kl)                   # -ELBO: both terms are costs
    assert torch.allclose(vae_loss(logits, x, mu, logvar, beta=4.0).loss, recon + 4 * kl)
    assert torch.allclose(vae_loss(logits, x, mu, logvar, beta=0).loss, recon)


def test_vae_loss_argument_errors():
    a, m = torch.zeros(2, 1, 4, 4), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="beta"):
        vae_loss(a, a, m, m, beta=-1.0)
    with pytest.raises(ValueError, match="logits and x"):
        vae_loss(a, torch.zeros(2, 1, 5, 5), m, m)
    with pytest.raises(ValueError, match="mu and logvar"):
        vae_loss(a, a, m, torch.zeros(2, 4))


# --- the networks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("img_size, img_channels", [(28, 1), (32, 1), (32, 3)])
def test_shapes_and_ranges(img_size, img_channels, device):
    torch.manual_seed(0)
    vae = VAE(z_dim=6, img_channels=img_channels, img_size=img_size, base_channels=8).to(device)
    x = (torch.rand(4, img_channels, img_size, img_size) * 2 - 1).to(device)
    logits, mu, logvar = vae(x)
    assert logits.shape == x.shape and mu.shape == (4, 6) and logvar.shape == (4, 6)
    assert vae.reconstruct(x).shape == x.shape and vae.encode(x).shape == (4, 6)
    assert vae.decoder.z_dim == 6 and vae.z_dim == 6 and vae.img_size == img_size
    # sampling from the prior with ganlab.sample, as for a GAN generator
    with torch.no_grad():
        vae.decoder.net[-1].bias.fill_(50.0)                     # push the output against its bound
    images = gl.sample(vae.decoder, 7, seed=0)
    assert images.shape == (7, img_channels, img_size, img_size) and images.device.type == "cpu"
    assert images.min() >= -1 and images.max() <= 1 and images.max() > 0.99


def test_sampling_from_the_prior_is_seeded_and_decodes_standard_normal_noise():
    torch.manual_seed(0)
    vae = VAE(z_dim=5, base_channels=8)
    a, b = gl.sample(vae.decoder, 6, seed=1), gl.sample(vae.decoder, 6, seed=1)
    assert torch.equal(a, b) and not torch.equal(a, gl.sample(vae.decoder, 6, seed=2))
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    vae.eval()
    with torch.no_grad():
        assert torch.allclose(a, vae.decoder(z))


def test_decoder_output_is_the_bernoulli_mean_in_signed_range():
    torch.manual_seed(0)
    dec = VAEDecoder(z_dim=4, base_channels=8).eval()
    z = torch.randn(3, 4)
    with torch.no_grad():
        logits = dec.logits(z) * 40                               # test the identity on a wide range
        assert torch.allclose(torch.tanh(logits / 2), 2 * torch.sigmoid(logits) - 1, atol=1e-6)
        assert torch.allclose(dec(z), 2 * torch.sigmoid(dec.logits(z)) - 1, atol=1e-6)


@pytest.mark.parametrize("extra_layers, residual", [(0, False), (3, False), (2, True)])
def test_the_decoder_is_the_dcgan_generator_without_its_tanh(extra_layers, residual):
    kw = dict(z_dim=16, img_channels=1, img_size=28, base_channels=32, extra_layers=extra_layers,
              residual=residual)
    dec, gen = VAEDecoder(**kw), DCGANGenerator(**kw)
    assert [type(m) for m in dec.net] == [type(m) for m in gen.net][:-1]
    assert isinstance(gen.net[-1], torch.nn.Tanh)
    assert sum(p.numel() for p in dec.parameters()) == sum(p.numel() for p in gen.parameters())
    enc = VAEEncoder(**kw)
    assert enc.head.out_features == 2 * 16
    n_conv3 = sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3) for m in enc.features.modules())
    assert n_conv3 == extra_layers * (2 if residual else 1)  # a residual block holds two
    vae = VAE(**kw)
    assert vae.model_args["extra_layers"] == extra_layers and vae.decoder.extra_layers == extra_layers
    assert vae.model_args.get("residual", False) == residual == vae.encoder.residual
    assert type(vae.decoder)(**vae.decoder.model_args).load_state_dict(vae.decoder.state_dict())
    logits, mu, logvar = vae(torch.zeros(2, 1, 28, 28))
    assert logits.shape == (2, 1, 28, 28) and mu.shape == logvar.shape == (2, 16)


def test_reparameterisation_is_differentiable_and_collapses_to_the_mean():
    mu = torch.randn(4, 3, requires_grad=True)
    logvar = torch.zeros(4, 3, requires_grad=True)
    z = VAE.reparameterize(mu, logvar, generator=torch.Generator().manual_seed(0))
    z.sum().backward()
    assert torch.equal(mu.grad, torch.ones(4, 3)) and logvar.grad is not None and logvar.grad.abs().sum() > 0
    z0 = VAE.reparameterize(mu.detach(), torch.full((4, 3), -200.0))  # variance e^-200: no noise
    assert torch.allclose(z0, mu.detach())


def test_argument_errors_name_the_argument():
    for kw, name in ((dict(z_dim=0), "z_dim"), (dict(img_channels=2), "img_channels"),
                     (dict(img_size=36), "img_size"), (dict(base_channels=0), "base_channels"),
                     (dict(extra_layers=-1), "extra_layers"), (dict(residual="yes"), "residual")):
        with pytest.raises(ValueError, match=name):
            VAE(**kw)
    vae = VAE(z_dim=4, base_channels=8)
    with pytest.raises(ValueError, match="x must have shape"):
        vae(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="z must have shape"):
        vae.decoder(torch.zeros(2, 5))


# --- the training loop ------------------------------------------------------------------------------

def toy_images(n=64, seed=0):
    # a few fixed blobs at random places: easy to learn, so the loss must fall within a few steps
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(12.0), torch.arange(12.0), indexing="ij")
    centres = torch.randint(3, 9, (n, 2), generator=g).float()
    d2 = (yy - centres[:, 0, None, None]) ** 2 + (xx - centres[:, 1, None, None]) ** 2
    return (torch.exp(-d2 / 4.0) * 2 - 1)[:, None]              # (n, 1, 12, 12) in [-1, 1]


def tiny_vae(seed=0):
    torch.manual_seed(seed)
    return VAE(z_dim=4, img_size=12, base_channels=8)


def test_fit_vae_learns_and_is_reproducible():
    data = toy_images()
    config = gl.train.VAEConfig(steps=60, batch_size=16, lr=3e-3, log_every=5, progress=False, device="cpu")
    a = gl.fit_vae(tiny_vae(), data, config)
    assert a.step == 60 and a.stopped == "steps"
    assert set(a.history) == {"step", "loss", "recon", "kl", "seconds"} and a.history["step"][-1] == 60
    assert sum(a.history["loss"][-3:]) < 0.8 * sum(a.history["loss"][:3])
    with pytest.warns(DeprecationWarning, match="VAEConfig"):  # the old keyword form, the same run
        b = gl.fit_vae(tiny_vae(), data, steps=60, batch_size=16, lr=3e-3, log_every=5, progress=False, device="cpu")
    sa, sb = a.vae.state_dict(), b.vae.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_fit_vae_stops_on_its_time_budget():
    result = gl.fit_vae(tiny_vae(), toy_images(), gl.train.VAEConfig(
        steps=10**6, batch_size=16, max_minutes=1e-4, progress=False, device="cpu"))
    assert result.stopped == "time" and result.step < 10**6


def test_fit_vae_argument_errors():
    with pytest.raises(TypeError, match="vae"):
        gl.fit_vae(torch.nn.Linear(2, 2), toy_images())
    for kw, name in ((dict(steps=0), "steps"), (dict(batch_size=0), "batch_size"), (dict(lr=0.0), "lr"),
                     (dict(max_minutes=-1.0), "max_minutes"), (dict(batch_size=1000), "batch_size")):
        with pytest.raises(ValueError, match=name):
            gl.fit_vae(tiny_vae(), toy_images(), gl.train.VAEConfig(progress=False, **kw))
    with pytest.raises(TypeError, match="VAEConfig"):
        gl.fit_vae(tiny_vae(), toy_images(), gl.train.TrainConfig())
