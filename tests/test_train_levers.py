"""The speed levers of ``fit``: automatic precision, channels-last, fused/foreach Adam, torch.compile.

Each is on by default where it is safe and fast, each can be turned off, and none changes what is
computed beyond floating-point rounding.
"""
import functools

import pytest
import torch
from torch import nn

import ganlab as gl
import ganlab.train.steps as train_steps
from ganlab.train import fit, make_optimizers, resolve_channels_last, resolve_precision


@pytest.fixture
def sn_gan(tiny_gan):
    # a spectrally normalised D: batch-independent, so it may score real and fake in one call
    return functools.partial(tiny_gan, d_spectral_norm=True)


def test_auto_precision_per_device():
    assert resolve_precision(torch.device("cpu")) == "fp32"
    assert resolve_precision(torch.device("mps")) == "fp32"
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(torch.device("cpu"), explicit) == explicit
    with pytest.raises(ValueError, match="precision"):
        resolve_precision(torch.device("cpu"), "fp8")
    if torch.cuda.is_available():
        expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        assert resolve_precision(torch.device("cuda")) == expected


def test_channels_last_is_on_for_images_and_can_be_turned_off(tiny_gan, toy_images, train_config):
    assert resolve_channels_last(None, torch.zeros(2, 1, 8, 8)) is True
    assert resolve_channels_last(None, torch.zeros(2, 2)) is False      # 2-D points: nothing to lay out
    assert resolve_channels_last(False, torch.zeros(2, 1, 8, 8)) is False
    G, D = tiny_gan()
    fit(G, D, toy_images(), train_config())
    conv = D.head.weight                                    # (1, 4, 6, 6): the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    G, D = tiny_gan()
    fit(G, D, toy_images(), train_config(channels_last=False))
    assert D.head.weight.is_contiguous()


def test_channels_last_changes_only_rounding(tiny_gan, toy_images, train_config):
    a = fit(*tiny_gan(), toy_images(), train_config(channels_last=True))
    b = fit(*tiny_gan(), toy_images(), train_config(channels_last=False))
    for (name, p), q in zip(a.G.named_parameters(), b.G.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("fused_adam, expected", [(None, {"fused": True}), (False, {"foreach": False}),
                                                  (True, {"fused": True})])
def test_adam_implementation_follows_the_setting(fused_adam, expected, tiny_gan, train_config):
    G, D = tiny_gan()
    opt_g, opt_d = make_optimizers(G, D, train_config(fused_adam=fused_adam))
    for opt in (opt_g, opt_d):
        for key, value in expected.items():
            assert opt.defaults[key] is value


def test_adam_implementations_agree(tiny_gan, toy_images, train_config):
    results = [fit(*tiny_gan(), toy_images(), train_config(fused_adam=f, channels_last=False)).G for f in (None, False, True)]
    for other in results[1:]:
        for p, q in zip(results[0].parameters(), other.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_lever_settings_are_validated(train_config):
    with pytest.raises(ValueError, match="channels_last"):
        train_config(channels_last="yes")
    with pytest.raises(ValueError, match="fused_adam"):
        train_config(fused_adam=1)
    with pytest.raises(ValueError, match="compile"):
        train_config(compile=None)
    with pytest.raises(ValueError, match="skip_d_grads"):
        train_config(skip_d_grads="no")
    with pytest.raises(ValueError, match="tune_allocator"):
        train_config(tune_allocator=0)


def test_skipping_d_grads_in_g_step_changes_nothing_but_the_work(tiny_gan, toy_images, train_config):
    """D's weight gradients from G's step are never used (D's next step starts from zero_grad)."""
    a = fit(*tiny_gan(), toy_images(), train_config(skip_d_grads=True))
    b = fit(*tiny_gan(), toy_images(), train_config(skip_d_grads=False))
    for p, q in zip([*a.G.parameters(), *a.D.parameters()], [*b.G.parameters(), *b.D.parameters()]):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_g_step_leaves_d_weight_gradients_uncomputed_and_restores_requires_grad(tiny_gan):
    G, D = tiny_gan()
    opt_g = torch.optim.Adam(G.parameters())
    before = [p.requires_grad for p in D.parameters()]
    train_steps.generator_update(G, D, 8, opt_g, gl.losses.get_loss("non_saturating")[1], skip_d_grads=True)
    assert all(p.grad is None for p in D.parameters())
    assert [p.requires_grad for p in D.parameters()] == before
    train_steps.generator_update(G, D, 8, opt_g, gl.losses.get_loss("non_saturating")[1], skip_d_grads=False)
    assert all(p.grad is not None for p in D.parameters())


def test_only_a_batch_independent_discriminator_scores_real_and_fake_in_one_call(tiny_gan, toy_images, train_config, sn_gan):
    assert sn_gan()[1].batch_independent
    assert not tiny_gan()[1].batch_independent                              # batch norm mixes the images
    assert not sn_gan(d_minibatch_std=True)[1].batch_independent             # so does the minibatch std
    for (G, D), joint in ((sn_gan(), True), (tiny_gan(), False), (sn_gan(d_minibatch_std=True), False)):
        calls = []
        D.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
        fit(G, D, toy_images(), train_config(steps=1))
        # D's step: one call on 8 real + 8 fake images, or two calls on 8; then G's step on 8 fakes
        assert calls == ([16, 8] if joint else [8, 8, 8])
    with pytest.raises(ValueError, match="joint_d_batch"):
        train_config(joint_d_batch="yes")


@pytest.mark.parametrize("conditional", [False, True])
def test_one_call_on_real_and_fake_gives_the_two_calls_logits_and_gradients(conditional, toy_images, sn_gan):
    """With spectral norm (no batch norm) each logit depends on its image alone, so the joint call is the
    same computation; D is in eval mode so that no power iteration moves the weights between calls."""
    kw = dict(num_classes=3) if conditional else {}
    G, D = sn_gan(**kw)
    D.eval()
    real = toy_images(8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1]) if conditional else None
    fake = G(torch.randn(8, 8), labels) if conditional else G(torch.randn(8, 8))
    d_loss = gl.losses.get_loss("hinge")[0]
    grads, stats = [], []
    for joint in (False, True):
        opt = torch.optim.SGD(D.parameters(), lr=0.0)     # lr 0: the step leaves D as it was
        stats.append(train_steps.discriminator_update(G, D, real, opt, d_loss, labels=labels, fake=fake, joint=joint))
        grads.append([p.grad.clone() for p in D.parameters()])
    for key in stats[0]:
        torch.testing.assert_close(stats[0][key], stats[1][key], rtol=1e-5, atol=1e-6, msg=key)
    for g0, g1 in zip(*grads):
        torch.testing.assert_close(g0, g1, rtol=1e-4, atol=1e-6)


def test_cpu_allocator_tuning_is_reported_and_idempotent():
    import platform
    import sys

    applied = gl.utils.tune_cpu_allocator()
    assert isinstance(applied, bool)
    if sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc":
        assert applied                     # glibc: both mallopt calls succeed
    else:
        assert not applied                 # musl, macOS, Windows: nothing to tune
    assert gl.utils.tune_cpu_allocator() == applied
    with pytest.raises(ValueError, match="keep_bytes"):
        gl.utils.tune_cpu_allocator(0)


def test_resume_accepts_other_speed_settings(tmp_path, tiny_gan, toy_images, train_config):
    straight = fit(*tiny_gan(), toy_images(), train_config(steps=4))
    fit(*tiny_gan(), toy_images(), train_config(steps=2), out_dir=tmp_path)
    # the networks handed to the resumed call start elsewhere (seed 1): only the checkpoint can bring them back
    result = fit(*tiny_gan(seed=1), toy_images(), train_config(steps=4, channels_last=False, fused_adam=False),
                 out_dir=tmp_path, resume=True)
    assert result.step == 4 and result.history["step"][-1] == straight.history["step"][-1] == 4
    # the same run up to rounding; Adam's first updates are near lr * sign(gradient), so a rounding-level
    # change of a near-zero gradient can move a weight by up to 2 lr per step (lr = 2e-4): allow 10 lr,
    # far below the spread of two initialisations (DCGAN's N(0, 0.02))
    for net, ref in ((result.G, straight.G), (result.D, straight.D)):
        for (name, a), b in zip(net.state_dict().items(), ref.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=2e-3, msg=name)


class _Compiled(nn.Module):
    """Stands in for the module torch.compile returns (a wrapper around the eager module)."""

    def __init__(self, module):
        super().__init__()
        self.inner = module

    def forward(self, *args):
        return self.inner(*args)


def test_compile_keeps_the_gradient_penalty_on_the_eager_discriminator(monkeypatch, tiny_gan, toy_images, train_config):
    wrapped, penalised = [], []
    monkeypatch.setattr(torch, "compile", lambda module: wrapped.append(_Compiled(module)) or wrapped[-1])
    real_gp = train_steps.gradient_penalty

    def spy(D, *args, **kwargs):
        penalised.append(D)
        return real_gp(D, *args, **kwargs)

    monkeypatch.setattr(train_steps, "gradient_penalty", spy)
    G, D = tiny_gan()
    result = fit(G, D, toy_images(), train_config(compile=True, gp_weight=10.0, loss="wasserstein"))
    assert result.step == 4 and len(wrapped) == 2            # both networks went through torch.compile
    assert penalised and all(p is D for p in penalised)      # the penalty never saw the compiled D
    assert result.G is G and result.D is D                    # checkpoints and results hold the plain modules


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiling for real is checked on a GPU machine")
def test_compile_for_real_with_gradient_penalty_on_cuda(tiny_gan, toy_images, train_config):
    result = fit(*tiny_gan(), toy_images(), train_config(device="cuda", compile=True, gp_weight=10.0, loss="wasserstein"))
    assert result.step == 4


def test_speed_settings_resolve_the_automatic_choices_and_follow_overrides(train_config, sn_gan):
    auto = gl.train.speed_settings(train_config(), "cpu")
    assert auto == {"precision": "fp32", "channels_last": True, "adam": "fused", "skip_d_grads": True,
                    "joint_d_batch": False, "tune_allocator": True, "compile": False}
    off = gl.train.speed_settings(train_config(**gl.bench.LEVERS_OFF), "cpu")
    assert off == {"precision": "fp32", "channels_last": False, "adam": "per-parameter loop",
                   "skip_d_grads": False, "joint_d_batch": False, "tune_allocator": False, "compile": False}
    _, sn_d = sn_gan()
    assert gl.train.speed_settings(train_config(), "cpu", D=sn_d)["joint_d_batch"] is True
    assert gl.train.speed_settings(train_config(**gl.bench.LEVERS_OFF), "cpu", D=sn_d)["joint_d_batch"] is False
    assert gl.train.speed_settings(train_config(), "cpu", example=torch.zeros(4, 2))["channels_last"] is False
