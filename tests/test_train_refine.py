"""Discriminator-guided refinement of the noise (``refine_latents``) and loading D from a checkpoint."""
import functools

import pytest
import torch

from ganlab.train import TrainConfig, fit, load_discriminator, refine_latents, sample


def energy(G, D, z):
    """The energy refine_latents descends: |z|^2 / 2 - d(G(z)), one value per sample."""
    with torch.no_grad():
        return 0.5 * (z * z).sum(1) - D(G(z))


@pytest.fixture
def sn_gan(tiny_gan):
    # refinement follows D's gradient: a spectrally normalised D keeps it smooth
    return functools.partial(tiny_gan, d_spectral_norm=True)


def test_refinement_lowers_every_samples_energy_and_leaves_the_networks_alone(sn_gan):
    G, D = sn_gan()
    G.train()
    z = torch.randn(32, 8, generator=torch.Generator().manual_seed(1))
    weights = {k: v.clone() for k, v in {**G.state_dict(), **{"D." + k: v for k, v in D.state_dict().items()}}.items()}
    G.eval(), D.eval()
    before = energy(G, D, z)
    G.train(), D.train()
    refined = refine_latents(G, D, z, steps=5, step_size=0.05, batch_size=10)   # 4 batches, the last short
    assert refined.shape == z.shape and not torch.equal(refined, z)
    assert G.training and D.training                                            # modes restored
    G.eval(), D.eval()
    assert (energy(G, D, refined) < before).all()                              # small steps descend
    with torch.no_grad():                                                      # and not by the prior alone:
        shrunk = z * (1 - 0.05 / 2) ** 5                                       # D's term raised the logits
        assert (D(G(refined)) > D(G(shrunk))).all()
    after = {**G.state_dict(), **{"D." + k: v for k, v in D.state_dict().items()}}
    assert all(torch.equal(weights[k], after[k]) for k in weights)             # batch-norm statistics too
    assert all(p.grad is None for p in [*G.parameters(), *D.parameters()])
    assert not refined.requires_grad


def test_the_step_follows_the_formula(sn_gan):
    """One step is z + (step_size / 2) * (grad d(G(z)) - z), computed here by hand."""
    G, D = sn_gan()
    G.eval(), D.eval()
    z = torch.randn(4, 8, generator=torch.Generator().manual_seed(2)).requires_grad_(True)
    grad, = torch.autograd.grad(D(G(z)).sum(), z)
    expected = z.detach() + 0.05 * (grad - z.detach())
    torch.testing.assert_close(refine_latents(G, D, z.detach(), steps=1, step_size=0.1), expected)


def test_zero_steps_return_z_and_bad_arguments_are_named(sn_gan):
    G, D = sn_gan()
    z = torch.randn(3, 8)
    assert refine_latents(G, D, z, steps=0) is z
    for kwargs, name in ((dict(steps=-1), "steps"), (dict(steps=1.5), "steps"), (dict(step_size=0), "step_size"),
                         (dict(batch_size=0), "batch_size")):
        with pytest.raises(ValueError, match=name):
            refine_latents(G, D, z, **kwargs)
    with pytest.raises(ValueError, match="z must have shape"):
        refine_latents(G, D, torch.randn(3, 5))
    with pytest.raises(TypeError, match="D must be"):
        refine_latents(G, "D", z)


def test_class_conditional_refinement_needs_and_uses_the_labels(sn_gan):
    G, D = sn_gan(num_classes=3)
    z = torch.randn(6, 8)
    with pytest.raises(ValueError, match="labels"):
        refine_latents(G, D, z)
    with pytest.raises(ValueError, match="labels must have shape"):
        refine_latents(G, D, z, labels=torch.zeros(5, dtype=torch.int64))
    a = refine_latents(G, D, z, labels=torch.zeros(6, dtype=torch.int64), steps=2)
    b = refine_latents(G, D, z, labels=torch.ones(6, dtype=torch.int64), steps=2)
    assert a.shape == z.shape and not torch.equal(a, b)


def test_load_discriminator_round_trip(tmp_path, sn_gan):
    G, D = sn_gan()
    data = torch.rand(32, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1
    fit(G, D, data, TrainConfig(steps=2, batch_size=8, progress=False, n_samples=4), out_dir=tmp_path)
    D2 = load_discriminator(tmp_path / "checkpoint.pt")
    assert not D2.training
    D.eval()
    x = sample(G, 5, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(D2(x), D(x))
    with pytest.raises(FileNotFoundError):
        load_discriminator(tmp_path / "missing.pt")
