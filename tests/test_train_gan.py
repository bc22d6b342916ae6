"""The training loop: steps, fit, exact resume, time budget, divergence, configs, sampling."""
import functools
import math

import pytest
import torch
from torch import nn

import ganlab as gl
from ganlab.losses import get_loss
from ganlab.train import (TrainConfig, autocast_context, d_step, ema_decay, fit, g_step, lr_scale,
                          make_optimizers, sample)


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture
def cfg(train_config):
    # this module's runs: 6 steps, a history row per step
    return functools.partial(train_config, steps=6, log_every=1)


def test_d_step_moves_only_d_and_g_step_moves_only_g(tiny_gan, toy_images, cfg):
    G, D = tiny_gan()
    opt_g, opt_d = make_optimizers(G, D, cfg())
    d_loss, g_loss = get_loss("non_saturating")
    g_before = {k: v.clone() for k, v in G.state_dict().items() if "running" not in k and "num_batches" not in k}
    stats = d_step(G, D, toy_images(8), opt_d, d_loss)
    assert set(stats) == {"d_loss", "d_real", "d_fake"} and all(isinstance(v, float) for v in stats.values())
    assert all(torch.equal(G.state_dict()[k], v) for k, v in g_before.items())
    d_before = {k: v.clone() for k, v in D.state_dict().items()}
    D.zero_grad(set_to_none=True)
    stats = g_step(G, D, 8, opt_g, g_loss)
    assert set(stats) == {"g_loss"}
    d_params = dict(D.named_parameters())
    assert all(torch.equal(d_params[k], d_before[k]) for k in d_params)
    assert all(p.requires_grad for p in D.parameters())  # D is unfrozen again
    assert all(p.grad is None for p in D.parameters())   # and no gradient was computed for it


def test_discriminator_learns_to_separate_fixed_batches(tiny_gan, toy_images, cfg):
    G, D = tiny_gan()
    opt_g, opt_d = make_optimizers(G, D, cfg(lr_d=2e-3))
    d_loss, _ = get_loss("non_saturating")
    real = toy_images(16)
    first = d_step(G, D, real, opt_d, d_loss, generator=torch.Generator().manual_seed(0))["d_loss"]
    for _ in range(80):
        last = d_step(G, D, real, opt_d, d_loss, generator=torch.Generator().manual_seed(0))["d_loss"]
    assert last < 0.5 * first


def test_fit_smoke_history_samples_and_checkpoint(tmp_path, tiny_gan, toy_images, cfg):
    G, D = tiny_gan()
    seen = []
    result = fit(G, D, toy_images(), cfg(sample_every=3, ema_half_life=100.0), out_dir=tmp_path,
                 callbacks={"on_step_end": [lambda s: seen.append(s.step)]})
    assert result.step == 6 and result.stopped == "steps"
    assert seen == [1, 2, 3, 4, 5, 6]
    assert result.history["step"] == [1, 2, 3, 4, 5, 6]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "seconds"} <= set(result.history)
    assert [s for s, _ in result.samples] == [3, 6]
    assert result.samples[-1][1].shape == (4, 1, 12, 12)
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "samples_000006.png").is_file()
    assert result.G_ema is not None and result.generator is result.G_ema
    G2 = gl.load_generator(tmp_path / "checkpoint.pt")
    assert state_equal(G2, result.G_ema)


def test_fit_accepts_datasets_of_pairs(tiny_gan, toy_images, cfg):
    G, D = tiny_gan()
    pairs = [(x, 0) for x in toy_images(20)]
    result = fit(G, D, pairs, cfg(steps=2))
    assert result.step == 2


@pytest.mark.parametrize("extra", [{},
                                   {"ema_half_life": 50.0, "n_critic": 2, "gp_weight": 10.0,
                                    "loss": "wasserstein"},
                                   {"ema_half_life": 40.0, "ema_rampup": 1.0}])  # warm-up ends at step 5 of 7
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, extra, tiny_gan, toy_images, cfg):
    straight_G, straight_D = tiny_gan()
    straight = fit(straight_G, straight_D, toy_images(), cfg(steps=7, **extra))

    G, D = tiny_gan()
    part = fit(G, D, toy_images(), cfg(steps=3, **extra), out_dir=tmp_path)
    assert part.step == 3
    G, D = tiny_gan(seed=123)  # fresh, differently initialised modules: everything comes from the checkpoint
    resumed = fit(G, D, toy_images(), cfg(steps=7, **extra), out_dir=tmp_path, resume=True)
    assert resumed.step == 7
    assert state_equal(resumed.G, straight.G) and state_equal(resumed.D, straight.D)
    if "ema_half_life" in extra:
        assert state_equal(resumed.G_ema, straight.G_ema)  # the EMA's decay is a function of the step
    assert resumed.history["d_loss"] == straight.history["d_loss"]


def test_lr_decay_falls_linearly_then_a_crashed_run_resumes_exactly(tmp_path, tiny_gan, toy_images, cfg):
    assert [lr_scale(k, 10, 0.6) for k in range(10)] == [1.0] * 7 + [0.75, 0.5, 0.25]
    assert lr_scale(9, 10, None) == 1.0 and lr_scale(0, 10, 0.0) == 1.0 and lr_scale(5, 10, 0.0) == 0.5
    straight = fit(*tiny_gan(), toy_images(), cfg(steps=8, lr_decay_start=0.5))

    class Crash(Exception):
        pass

    def crash(state):  # after the checkpoint of step 5 is written
        if state.step == 5:
            raise Crash

    config = cfg(steps=8, lr_decay_start=0.5, checkpoint_every=1)
    with pytest.raises(Crash):
        fit(*tiny_gan(), toy_images(), config, out_dir=tmp_path, callbacks={"on_step_end": [crash]})
    resumed = fit(*tiny_gan(seed=1), toy_images(), config, out_dir=tmp_path, resume=True)
    assert state_equal(resumed.G, straight.G) and state_equal(resumed.D, straight.D)
    saved = gl.load_checkpoint(tmp_path / "checkpoint.pt")
    for opt, lr in (("opt_g", config.lr_g), ("opt_d", config.lr_d)):  # the last update: 1 / (8 - 4) of lr
        assert saved[opt]["param_groups"][0]["lr"] == pytest.approx(lr / 4)
    constant = fit(*tiny_gan(), toy_images(), cfg(steps=8))
    assert not state_equal(constant.G, straight.G)
    with pytest.raises(ValueError, match="lr_decay_start"):
        cfg(lr_decay_start=1.0)


def test_resume_rejects_a_different_config(tmp_path, tiny_gan, toy_images, cfg):
    fit(*tiny_gan(), toy_images(), cfg(steps=2), out_dir=tmp_path)
    with pytest.raises(ValueError, match="differs from the checkpoint's in lr_d"):
        fit(*tiny_gan(), toy_images(), cfg(steps=4, lr_d=1e-3), out_dir=tmp_path, resume=True)


def test_resume_true_without_checkpoint_starts_fresh(tmp_path, tiny_gan, toy_images, cfg):
    assert fit(*tiny_gan(), toy_images(), cfg(steps=2), out_dir=tmp_path, resume=True).step == 2


def test_time_budget_stops_and_checkpoints(tmp_path, tiny_gan, toy_images, cfg):
    result = fit(*tiny_gan(), toy_images(), cfg(steps=10**6, max_minutes=0.02), out_dir=tmp_path)
    assert result.stopped == "time" and 0 < result.step < 10**6
    assert gl.load_checkpoint(tmp_path / "checkpoint.pt")["step"] == result.step


class NaNCritic(nn.Module):
    def __init__(self, after: int):
        super().__init__()
        self.lin = nn.Linear(144, 1)
        self.calls, self.after = 0, after

    def forward(self, x):
        self.calls += 1
        out = self.lin(x.flatten(1)).flatten()
        return out * math.nan if self.calls > self.after else out


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path, tiny_gan, toy_images, cfg):
    G, _ = tiny_gan()
    # 3 calls of D per step (real, fake, fake for G): NaN from the 3rd step on
    with pytest.raises(FloatingPointError, match="diverged at step 3"):
        fit(G, NaNCritic(after=6), toy_images(), cfg(steps=10, checkpoint_every=1), out_dir=tmp_path)
    state = gl.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 2
    assert all(torch.isfinite(v).all() for v in state["D"].values())


def test_a_resumed_run_that_diverges_names_the_checkpoint_it_resumed_from(tmp_path, tiny_gan, toy_images, cfg):
    G, _ = tiny_gan()
    fit(G, NaNCritic(after=10**6), toy_images(), cfg(steps=2, checkpoint_every=1), out_dir=tmp_path)
    with pytest.raises(FloatingPointError, match="diverged at step 3") as info:
        fit(tiny_gan()[0], NaNCritic(after=0), toy_images(), cfg(steps=4, checkpoint_every=1), out_dir=tmp_path,
            resume=True)
    assert f"the last good checkpoint ({tmp_path / 'checkpoint.pt'}) was kept" in str(info.value)
    assert gl.load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 2


def test_overflowing_weights_are_never_checkpointed(tmp_path, tiny_gan, toy_images, cfg):
    # absurd learning rates: the step-3 loss is finite but its update overflows the weights
    G, D = tiny_gan()
    config = cfg(steps=20, loss="wasserstein", lr_d=1e12, lr_g=1e12, checkpoint_every=1)
    with pytest.raises(FloatingPointError, match=r"diverged at step \d+"):
        fit(G, D, toy_images(), config, out_dir=tmp_path)
    state = gl.load_checkpoint(tmp_path / "checkpoint.pt")
    assert all(torch.isfinite(v).all() for net in ("G", "D") for v in state[net].values() if v.is_floating_point())


@pytest.mark.parametrize("field, value", [("steps", 0), ("batch_size", -1), ("lr_g", 0.0), ("betas", (0.5,)),
                                          ("loss", "nope"), ("n_critic", 0), ("gp_weight", -1.0),
                                          ("ema_half_life", 0.0), ("ema_rampup", -0.05), ("precision", "fp8"),
                                          ("seed", -1),
                                          ("max_minutes", -2.0), ("log_every", 0)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field if field != "loss" else "loss must be"):
        TrainConfig(**{field: value})


def test_config_round_trip_and_unknown_fields():
    c = TrainConfig(steps=5, betas=[0.0, 0.9])
    assert c.betas == (0.0, 0.9)
    assert TrainConfig.from_dict(c.to_dict()) == c
    with pytest.raises(ValueError, match="unknown field"):
        TrainConfig.from_dict({"stepz": 3})
    # a config saved before the EMA warm-up existed keeps the fixed half-life it trained with
    old = {k: v for k, v in TrainConfig(ema_half_life=100.0, ema_rampup=0.05).to_dict().items()
           if k != "ema_rampup"}
    assert TrainConfig.from_dict(old).ema_rampup is None and gl.recipes.MNIST.config.ema_rampup == 0.05


def test_fit_argument_errors(tmp_path, tiny_gan, toy_images, cfg):
    G, D = tiny_gan()
    with pytest.raises(ValueError, match="batch_size"):
        fit(G, D, toy_images(4), cfg(batch_size=8))
    with pytest.raises(ValueError, match="callbacks event"):
        fit(G, D, toy_images(), cfg(), callbacks={"on_epoch": [print]})
    with pytest.raises(ValueError, match="resume=True needs out_dir"):
        fit(G, D, toy_images(), cfg(), resume=True)
    with pytest.raises(TypeError, match="z_dim"):
        fit(D, D, toy_images(), cfg())


def test_precision_is_a_no_op_on_cpu_and_fp16_needs_cuda(tiny_gan, toy_images, cfg):
    cpu = torch.device("cpu")
    for precision in ("fp32", "bf16", "fp16"):
        ctx = autocast_context(cpu, precision)
        with ctx:
            assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(ValueError, match="fp16"):
        autocast_context(torch.device("mps"), "fp16")
    result = fit(*tiny_gan(), toy_images(), cfg(steps=2, precision="bf16", device="cpu"))
    assert result.step == 2


def test_ema_decay_half_life():
    decay = ema_decay(64, 6400.0)
    assert decay ** 100 == pytest.approx(0.5)  # 100 steps of 64 images halve the weight of the past


def test_sample_is_seeded_in_range_and_restores_mode(tiny_gan):
    G, _ = tiny_gan()
    G.train()
    a, b = sample(G, 10, seed=3), sample(G, 10, seed=3)
    assert torch.equal(a, b) and a.shape == (10, 1, 12, 12)
    assert a.min() >= -1 and a.max() <= 1 and G.training
    assert not torch.equal(a, sample(G, 10, seed=4))
    with pytest.raises(ValueError, match="n must be"):
        sample(G, 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_mixed_precision_on_cuda(precision, tiny_gan, toy_images, cfg):
    result = fit(*tiny_gan(), toy_images(), cfg(steps=3, device="cuda", precision=precision, gp_weight=1.0))
    assert result.step == 3 and math.isfinite(result.history["d_loss"][-1])


def test_class_conditional_fit_learns_each_class_and_samples_balanced(tiny_gan, toy_images, cfg):
    # a constructed case: class k's images are flat grey at level -0.6, 0 or 0.6; a fresh G gives ~0 for all,
    # so only a G that learned to follow its label gets every class's mean pixel right
    G, D = tiny_gan(num_classes=3)
    labels = torch.arange(96) % 3
    levels = torch.tensor([-0.6, 0.0, 0.6])
    flat = torch.utils.data.TensorDataset(levels[labels].view(-1, 1, 1, 1).expand(-1, 1, 12, 12).clone(), labels)
    asked = torch.arange(3).repeat_interleave(20)

    def class_means():
        x = sample(G, 60, seed=1, labels=asked)
        return torch.stack([x[asked == k].mean() for k in range(3)])

    before = (class_means() - levels).abs().max()
    result = fit(G, D, flat, cfg(steps=150, batch_size=24, lr_g=2e-3, lr_d=2e-3, log_every=10, n_samples=3))
    after = class_means()
    assert result.step == 150 and before > 0.5
    assert (after - levels).abs().max() < 0.15, after
    assert torch.equal(gl.train.balanced_labels(7, 3), torch.tensor([0, 1, 2, 0, 1, 2, 0]))
    images = sample(G, 6, seed=0)
    assert images.shape == (6, 1, 12, 12)
    assert torch.equal(images, sample(G, 6, seed=0, labels=torch.tensor([0, 1, 2, 0, 1, 2])))
    with pytest.raises(ValueError, match="no labels"):
        fit(*tiny_gan(num_classes=3), toy_images(), cfg())
    with pytest.raises(ValueError, match="labels: G is unconditional"):
        sample(tiny_gan()[0], 2, labels=torch.tensor([0, 1]))
