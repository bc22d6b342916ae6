"""Each stability technique of chapter 6 does what its paper says, on a constructed case.

Spectral norm (tests/test_models.py), the gradient penalty and R1 (tests/test_losses.py), the hinge and
least-squares losses (tests/test_losses.py) and DiffAugment (tests/test_augment.py) have their closed-form
tests next to their code; here are TTUR and the EMA of the generator, which live in the training loop,
and the end-to-end property of each regulariser as fit applies it.
"""
import functools

import pytest
import torch
from torch import nn

import ganlab as gl
from ganlab.train import fit


@pytest.fixture
def cfg(train_config):
    # this module's runs: 3 steps in the plain layout
    return functools.partial(train_config, steps=3, channels_last=False)


def test_ttur_gives_each_player_its_own_learning_rate(tiny_gan, toy_images, cfg):
    """Heusel et al. 2017: D and G use different step sizes. With Adam's first step, every parameter moves
    by about its learning rate, so the ratio of the largest moves is the ratio of the rates."""
    G, D = tiny_gan()
    g0 = [p.detach().clone() for p in G.parameters()]
    d0 = [p.detach().clone() for p in D.parameters()]
    fit(G, D, toy_images(), cfg(steps=1, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.999)))
    g_move = max((p - q).abs().max().item() for p, q in zip(G.parameters(), g0))
    d_move = max((p - q).abs().max().item() for p, q in zip(D.parameters(), d0))
    assert g_move == pytest.approx(1e-4, rel=0.05)
    assert d_move == pytest.approx(4e-4, rel=0.05)


@pytest.mark.parametrize("rampup", [None, 0.05])
def test_ema_generator_is_the_exponential_average_of_the_iterates(tiny_gan, toy_images, cfg, rampup):
    """G_ema after n steps = sum of decayed iterates (Yazici et al. 2019), checked against a hand-kept
    average of the weights fit produced at each step, with the fixed decay or each step's warm-up decay."""
    G, D = tiny_gan()
    kept = {}

    def track(state):
        # the update after step k (state.step) saw (k - 1) batches of 8 images before it
        decay = gl.train.ema_decay(8, 40.0, rampup=rampup, images_seen=(state.step - 1) * 8)
        for name, p in state.G.named_parameters():
            # AveragedModel copies the first iterate, then avg = decay * avg + (1 - decay) * new
            kept[name] = p.detach().clone() if name not in kept else decay * kept[name] + (1 - decay) * p.detach()

    result = fit(G, D, toy_images(), cfg(steps=5, ema_half_life=40.0, ema_rampup=rampup),
                 callbacks={"on_step_end": [track]})
    for name, p in result.G_ema.named_parameters():
        torch.testing.assert_close(p, kept[name], rtol=1e-5, atol=1e-6)
    assert not torch.equal(result.G_ema.net[0].weight, result.G.net[0].weight)


def test_ema_warm_up_follows_g_early_and_keeps_the_half_life_later(tiny_gan, toy_images, cfg):
    """With the warm-up the EMA of a short run is close to G's last iterate; with a fixed half-life of
    10,000 images it is still the first iterate. Later the warm-up's decay is the half-life's."""
    def distances(rampup):
        G, D = tiny_gan()
        first = {}

        def keep_first(state):
            if not first:
                first.update({k: p.detach().clone() for k, p in state.G.named_parameters()})

        result = fit(G, D, toy_images(), cfg(steps=8, lr_g=1e-2, ema_half_life=10_000.0, ema_rampup=rampup),
                     callbacks={"on_step_end": [keep_first]})
        last = {k: p.detach() for k, p in result.G.named_parameters()}

        def norm(weights):
            return float(sum((weights[k].detach() - last[k]).pow(2).sum() for k in last).sqrt())

        return norm(dict(result.G_ema.named_parameters())), norm(first)

    ema_gap, travelled = distances(0.05)
    assert travelled > 0 and ema_gap < 0.1 * travelled       # the warm-up's EMA follows G
    ema_gap, travelled = distances(None)
    assert ema_gap > 0.9 * travelled                         # a fixed half-life lags at the first iterate
    decay = gl.train.ema_decay
    assert decay(32, 10_000.0, rampup=0.05, images_seen=0) == 0.0
    assert decay(32, 10_000.0, rampup=0.05, images_seen=64_000) == pytest.approx(0.5 ** (32 / 3_200))
    for seen in (200_000, 10**7):                            # from 10,000 / 0.05 images on: the half-life
        assert decay(32, 10_000.0, rampup=0.05, images_seen=seen) == decay(32, 10_000.0)
    with pytest.raises(ValueError, match="rampup"):
        decay(32, 10_000.0, rampup=0.0)


def test_spectral_norm_keeps_d_one_lipschitz_during_training(tiny_gan, toy_images, cfg):
    """Miyato et al. 2018: after training steps every normalised layer still has spectral norm about 1,
    while the raw weights underneath do not. One power iteration per forward pass tracks the largest
    singular value; at the CLI's learning rate (1e-3, here 2e-3) the estimate keeps up within a few per cent
    (at 1e-2 it lags by up to 15-20% over a few steps)."""
    G, D = tiny_gan(d_spectral_norm=True)
    fit(G, D, toy_images(), cfg(steps=5, lr_d=2e-3))
    D.eval()
    checked = 0
    with torch.no_grad():
        for module in D.modules():
            if isinstance(module, nn.Conv2d) and hasattr(module, "parametrizations"):
                w = module.weight.flatten(1)
                assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05)
                raw = module.parametrizations.weight.original.flatten(1)
                assert abs(torch.linalg.matrix_norm(raw, ord=2).item() - 1.0) > 0.05  # the work is SN's
                checked += 1
    assert checked >= 2


def test_gradient_penalty_pulls_a_steep_critic_towards_unit_gradient():
    """Gulrajani et al. 2017: with only the penalty as loss, the critic's gradient norm moves towards 1."""
    critic = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        critic.weight.fill_(2.0)                      # gradient norm 4 everywhere
    opt = torch.optim.SGD(critic.parameters(), lr=0.05)
    real, fake = torch.randn(16, 4), torch.randn(16, 4)
    for _ in range(200):
        opt.zero_grad()
        gl.losses.gradient_penalty(lambda x: critic(x).squeeze(1), real, fake).backward()
        opt.step()
    assert critic.weight.norm().item() == pytest.approx(1.0, abs=1e-3)


def test_r1_penalty_flattens_d_on_the_real_data():
    """Mescheder et al. 2018: minimising R1 alone drives the gradient on real points to zero."""
    D = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    real = torch.randn(32, 2)
    opt = torch.optim.Adam(D.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        opt.zero_grad()
        r1 = gl.losses.r1_penalty(lambda x: D(x).squeeze(1), real)
        first = first if first is not None else r1.item()
        r1.backward()
        opt.step()
    assert r1.item() < 1e-3 * first
