"""CycleGAN: the ResNet generator, the unconditional PatchGAN, the replay buffer, the step's losses, the loop
with its checkpoints (exact resume, byte-identical seeds) and loading a generator back."""
import copy
import functools

import pytest
import torch

import ganlab as gl
from ganlab.losses import d_least_squares
from ganlab.models import PatchGANDiscriminator, ResnetGenerator, build_cyclegan
from ganlab.train import CycleGANConfig, ImagePool, cyclegan_update, fit_cyclegan, load_cyclegan_generator


def states_equal(a, b) -> bool:
    return all(sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
               for sa, sb in ((x.state_dict(), y.state_dict()) for x, y in zip(a, b)))


class Crash(Exception):
    pass


def crash_after_step_3(nets, domains, config, out_dir):
    """A run into ``out_dir`` that crashes once the checkpoint of step 3 is written."""
    def crash(state):
        if state.step == 3:
            raise Crash

    with pytest.raises(Crash):
        fit_cyclegan(nets, *domains, config, out_dir=out_dir, callbacks={"on_step_end": [crash]})


@pytest.fixture
def tiny_nets():
    """``tiny_nets(seed=0)``: CycleGAN's four networks for 12 x 12 colour images, seeded weights."""
    return functools.partial(build_cyclegan, base_channels=4, g_n_downsampling=1, g_n_blocks=1, d_n_layers=1,
                             seed=0)


@pytest.fixture
def domains(toy_images):
    """Two unpaired domains: 24 grey images (repeated into three channels by the loop) and 20 colour ones."""
    return toy_images(24, seed=1), toy_images(20, seed=2, channels=3)


@pytest.fixture
def cfg():
    return functools.partial(CycleGANConfig, steps=6, batch_size=4, pool_size=3, log_every=1, progress=False,
                             device="cpu")


def test_networks_shapes_range_and_unconditional_patch_logits():
    G = ResnetGenerator(channels=3, base_channels=4, n_downsampling=2, n_blocks=2)
    x = torch.rand(2, 3, 28, 28) * 2 - 1
    y = G(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    assert torch.equal(G.eval()(x), y)  # instance norm keeps no running statistics: train == eval
    D = PatchGANDiscriminator(in_channels=0, out_channels=3, base_channels=4, n_layers=2, norm="instance")
    assert D(y).shape == (2, 5, 5)
    with pytest.raises(ValueError, match="unconditional"):
        D(y, x)
    with pytest.raises(ValueError, match="divisible by 4"):
        G(torch.zeros(1, 3, 30, 30))
    with pytest.raises(ValueError, match="norm"):
        PatchGANDiscriminator(norm="layer")
    nets = build_cyclegan(base_channels=4, seed=3)
    assert states_equal(nets, build_cyclegan(base_channels=4, seed=3))  # the weights are the seed's
    assert not states_equal(nets, build_cyclegan(base_channels=4, seed=4))


def test_image_pool_stores_then_swaps_half_the_images():
    pool = ImagePool(4)
    first = torch.arange(4.0).reshape(4, 1, 1, 1)
    assert torch.equal(pool.query(first), first) and len(pool) == 4  # filling: passed on and stored
    g = torch.Generator().manual_seed(0)
    new = torch.arange(100.0, 1100.0).reshape(1000, 1, 1, 1)
    out = pool.query(new, g)
    swapped = out != new
    assert 0.45 < swapped.float().mean() < 0.55  # each image swapped with probability 1/2
    stored = torch.cat([first, new])[:, 0, 0, 0].tolist()
    assert set(out[swapped].tolist()) <= set(stored)  # a swapped-out image is an earlier one...
    assert all(v < 100 or v in new[:i, 0, 0, 0].tolist()  # ... from before this one
               for i, v in enumerate(out[:, 0, 0, 0].tolist()) if v != new[i, 0, 0, 0])
    kept = torch.stack(pool.images).flatten().tolist()
    assert len(pool) == 4 and set(kept) <= set(stored) and min(kept) >= 100  # the new images replaced the first
    again = ImagePool(4)
    again.load_state_dict(pool.state_dict())
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(pool.query(new[:50], g1), again.query(new[:50], g2))  # its state is all it has
    assert torch.equal(ImagePool(0).query(new), new)  # size 0: the latest batch only
    with pytest.raises(ValueError, match="size 3"):
        ImagePool(3).load_state_dict(pool.state_dict())


def test_update_minimises_the_documented_losses(tiny_nets, toy_images):
    nets = tiny_nets()
    a, b = toy_images(4, seed=1, channels=3), toy_images(4, seed=2, channels=3)
    G_AB, G_BA, D_A, D_B = copy.deepcopy(nets)
    l1 = lambda x, y: (x - y).abs().mean()  # noqa: E731
    with torch.no_grad():
        fb, fa = G_AB(a), G_BA(b)
        adv = ((D_B(fb) - 1) ** 2).mean() + ((D_A(fa) - 1) ** 2).mean()
        cycle = l1(G_BA(fb), a) + l1(G_AB(fa), b)
        identity = l1(G_AB(b), b) + l1(G_BA(a), a)
    params = lambda i, j: [p for n in nets[i:j] for p in n.parameters()]  # noqa: E731
    opt_g, opt_d = torch.optim.SGD(params(0, 2), lr=0.0), torch.optim.SGD(params(2, 4), lr=0.0)
    stats = cyclegan_update(nets, a, b, opt_g, opt_d, cycle_weight=10.0, identity_weight=5.0)
    assert stats["g_adv"].item() == pytest.approx(adv.item(), rel=1e-5)
    assert stats["cycle"].item() == pytest.approx(cycle.item(), rel=1e-5)
    assert stats["identity"].item() == pytest.approx(identity.item(), rel=1e-5)
    assert stats["g_loss"].item() == pytest.approx((adv + 10 * cycle + 5 * identity).item(), rel=1e-5)
    with torch.no_grad():  # no buffer: D judges the latest fakes
        d_loss = d_least_squares(D_A(a), D_A(fa)) + d_least_squares(D_B(b), D_B(fb))
    assert stats["d_loss"].item() == pytest.approx(d_loss.item(), rel=1e-5)
    off = cyclegan_update(nets, a, b, opt_g, opt_d, cycle_weight=0.0, identity_weight=0.0)
    assert off["cycle"].item() == 0 and off["identity"].item() == 0
    assert off["g_loss"].item() == pytest.approx(adv.item(), rel=1e-5)
    # a weight of its own on the B -> A -> B term (the reference's lambda_B); the logged cycle stays both terms
    with torch.no_grad():
        cycle_a = l1(G_BA(fb), a)
    own = cyclegan_update(nets, a, b, opt_g, opt_d, cycle_weight=10.0, identity_weight=5.0, cycle_weight_b=2.0)
    assert own["cycle"].item() == pytest.approx(cycle.item(), rel=1e-5)
    assert own["g_loss"].item() == pytest.approx((adv + 10 * cycle_a + 2 * (cycle - cycle_a) + 5 * identity).item(),
                                                 rel=1e-5)


def test_fit_logs_checkpoints_and_loads_a_generator_back(tmp_path, tiny_nets, domains, cfg):
    seen = []
    result = fit_cyclegan(tiny_nets(), *domains, cfg(), out_dir=tmp_path,
                          callbacks={"on_step_end": [lambda s: seen.append(s.step)]})
    assert result.step == 6 and seen == [1, 2, 3, 4, 5, 6] and result.checkpoint == tmp_path / "checkpoint.pt"
    assert {"g_adv", "cycle", "identity", "g_loss", "d_loss", "seconds"} <= set(result.history)
    x = torch.rand(2, 3, 12, 12) * 2 - 1
    for direction, G in (("a2b", result.nets.G_AB), ("b2a", result.nets.G_BA)):
        loaded = load_cyclegan_generator(tmp_path / "checkpoint.pt", direction)
        assert torch.equal(loaded(x), G.eval()(x))
    with pytest.raises(ValueError, match="direction"):
        load_cyclegan_generator(tmp_path / "checkpoint.pt", "a2a")
    loaded = gl.train.load_cyclegan(tmp_path / "checkpoint.pt")  # what `ganlab translate` needs to know
    assert (loaded.a_channels, loaded.b_channels, loaded.img_size, loaded.step) == (1, 3, 12, 6)
    assert loaded.config == result.config
    gl.save_checkpoint(tmp_path / "other.pt", model="dcgan")
    with pytest.raises(gl.CheckpointError, match="not a CycleGAN"):
        load_cyclegan_generator(tmp_path / "other.pt")
    # without replay buffers the discriminators see the latest translations, detached from the generators
    assert fit_cyclegan(tiny_nets(), *domains, cfg(steps=2, pool_size=0)).step == 2


def test_resume_gives_the_same_networks_and_buffers_as_an_uninterrupted_run(tmp_path, tiny_nets, domains, cfg):
    straight = fit_cyclegan(tiny_nets(), *domains, cfg(steps=7))

    crash_after_step_3(tiny_nets(), domains, cfg(steps=7, checkpoint_every=1), tmp_path)
    # fresh, differently initialised networks: everything comes from the checkpoint (buffers included)
    resumed = fit_cyclegan(tiny_nets(seed=9), *domains, cfg(steps=7, checkpoint_every=1), out_dir=tmp_path,
                           resume=True)
    assert resumed.step == 7 and states_equal(resumed.nets, straight.nets)
    assert resumed.history["g_loss"] == straight.history["g_loss"]
    saved = gl.load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["opt_g"]["param_groups"][0]["lr"] == pytest.approx(2e-4 / 3)  # decayed linearly: 1 / (7 - 4)
    with pytest.raises(gl.CheckpointError, match="differs from the checkpoint's in cycle_weight"):
        fit_cyclegan(tiny_nets(), *domains, cfg(steps=9, cycle_weight=1.0), out_dir=tmp_path, resume=True)


def test_ema_of_both_generators_is_kept_resumed_and_translates(tmp_path, tiny_nets, domains, cfg):
    ema = dict(ema_half_life=100.0, ema_rampup=0.5)
    straight = fit_cyclegan(tiny_nets(), *domains, cfg(steps=7, **ema))
    x = torch.rand(2, 3, 12, 12) * 2 - 1
    untrained = tiny_nets()
    for direction, G, G0 in (("a2b", straight.nets.G_AB, untrained.G_AB), ("b2a", straight.nets.G_BA, untrained.G_BA)):
        averaged = straight.generator(direction)
        assert averaged is not G and straight.generator(direction, ema=False) is G
        # an average of the steps: neither the last one nor the start
        assert not torch.equal(averaged(x), G(x)) and not torch.equal(averaged(x), G0(x))

    crash_after_step_3(tiny_nets(), domains, cfg(steps=7, checkpoint_every=1, **ema), tmp_path)
    resumed = fit_cyclegan(tiny_nets(seed=9), *domains, cfg(steps=7, checkpoint_every=1, **ema), out_dir=tmp_path,
                           resume=True)
    assert states_equal((resumed.G_AB_ema, resumed.G_BA_ema), (straight.G_AB_ema, straight.G_BA_ema))
    # what `ganlab translate` loads: the EMA unless asked for the trained generator
    for direction in ("a2b", "b2a"):
        assert torch.equal(load_cyclegan_generator(tmp_path / "checkpoint.pt", direction)(x),
                           straight.generator(direction)(x))
        assert torch.equal(load_cyclegan_generator(tmp_path / "checkpoint.pt", direction, ema=False)(x),
                           straight.generator(direction, ema=False)(x))
    # a run without an EMA translates with its trained generators
    plain = fit_cyclegan(tiny_nets(), *domains, cfg(steps=2))
    assert plain.G_AB_ema is None and plain.generator("b2a") is plain.nets.G_BA


def test_same_seed_writes_byte_identical_checkpoints(tmp_path, tiny_nets, domains, cfg):
    for name, seed in (("one", 0), ("two", 0), ("three", 1)):
        fit_cyclegan(tiny_nets(), *domains, cfg(seed=seed), out_dir=tmp_path / name)
    read = lambda name: (tmp_path / name / "checkpoint.pt").read_bytes()  # noqa: E731
    assert read("one") == read("two")
    assert read("one") != read("three")  # the seed orders the batches and the buffers' draws


def test_domains_are_never_seen_in_pairs(monkeypatch, tiny_nets, toy_images, cfg):
    # the same images in both domains: the loop must still show them in two different orders
    same = toy_images(24, seed=1, channels=3)
    pairs = []

    def spy(nets, a, b, *args, **kwargs):
        pairs.append(torch.equal(a, b))
        return {"g_loss": torch.zeros(()), "d_loss": torch.zeros(())}

    monkeypatch.setattr("ganlab.train.cyclegan.cyclegan_update", spy)
    fit_cyclegan(tiny_nets(), same, same, cfg(steps=3))
    assert len(pairs) == 3 and not any(pairs)


def test_arguments_are_checked(tiny_nets, domains, cfg):
    for field, value in (("cycle_weight", -1.0), ("identity_weight", float("nan")), ("pool_size", -1),
                         ("lr_decay_start", 1.0), ("steps", 0), ("ema_half_life", 0.0),
                         ("ema_rampup", -0.1)):
        with pytest.raises(ValueError, match=field):
            cfg(**{field: value})
    with pytest.raises(TypeError, match="nets"):
        fit_cyclegan(tiny_nets()[:3], *domains, cfg())
    with pytest.raises(gl.UsageError, match="data_b"):
        fit_cyclegan(tiny_nets(), domains[0], domains[1] * 3, cfg())
    with pytest.raises(ValueError, match="square images of one size"):
        fit_cyclegan(tiny_nets(), domains[0], torch.zeros(8, 3, 16, 16), cfg())
