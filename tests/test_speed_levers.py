"""The speed levers of ``fit``: automatic precision, channels-last, fused/foreach Adam, torch.compile.

Each is on by default where it is safe and fast, each can be turned off, and none changes what is
computed beyond floating-point rounding.
"""
import pytest
import torch
from torch import nn

import ganlab as gl
import ganlab.train as train_module
from ganlab.train import TrainConfig, fit, make_optimizers, resolve_channels_last, resolve_precision


def tiny_gan(seed=0):
    torch.manual_seed(seed)
    return gl.models.build_gan("dcgan", z_dim=8, img_size=12, base_channels=4)


def images(n=64):
    return torch.rand(n, 1, 12, 12, generator=torch.Generator().manual_seed(0)) * 2 - 1


def cfg(**kw):
    return TrainConfig(**{"steps": 4, "batch_size": 8, "progress": False, "n_samples": 4, "device": "cpu", **kw})


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


def test_channels_last_is_on_for_images_and_can_be_turned_off():
    assert resolve_channels_last(None, torch.zeros(2, 1, 8, 8)) is True
    assert resolve_channels_last(None, torch.zeros(2, 2)) is False      # 2-D points: nothing to lay out
    assert resolve_channels_last(False, torch.zeros(2, 1, 8, 8)) is False
    G, D = tiny_gan()
    fit(G, D, images(), cfg())
    conv = D.head.weight                                    # (1, 4, 6, 6): the layouts differ
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    G, D = tiny_gan()
    fit(G, D, images(), cfg(channels_last=False))
    assert D.head.weight.is_contiguous()


def test_channels_last_changes_only_rounding():
    a = fit(*tiny_gan(), images(), cfg(channels_last=True))
    b = fit(*tiny_gan(), images(), cfg(channels_last=False))
    for (name, p), q in zip(a.G.named_parameters(), b.G.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize("fused_adam, expected", [(None, {"foreach": True}), (False, {"foreach": False}),
                                                  (True, {"fused": True})])
def test_adam_implementation_follows_the_setting(fused_adam, expected):
    G, D = tiny_gan()
    opt_g, opt_d = make_optimizers(G, D, cfg(fused_adam=fused_adam))
    for opt in (opt_g, opt_d):
        for key, value in expected.items():
            assert opt.defaults[key] is value


def test_adam_implementations_agree():
    results = [fit(*tiny_gan(), images(), cfg(fused_adam=f, channels_last=False)).G for f in (None, False, True)]
    for other in results[1:]:
        for p, q in zip(results[0].parameters(), other.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_lever_settings_are_validated():
    with pytest.raises(ValueError, match="channels_last"):
        cfg(channels_last="yes")
    with pytest.raises(ValueError, match="fused_adam"):
        cfg(fused_adam=1)
    with pytest.raises(ValueError, match="compile"):
        cfg(compile=None)


def test_resume_accepts_other_speed_settings(tmp_path):
    fit(*tiny_gan(), images(), cfg(steps=2), out_dir=tmp_path)
    result = fit(*tiny_gan(), images(), cfg(steps=4, channels_last=False, fused_adam=False), out_dir=tmp_path,
                 resume=True)
    assert result.step == 4


class _Compiled(nn.Module):
    """Stands in for the module torch.compile returns (a wrapper around the eager module)."""

    def __init__(self, module):
        super().__init__()
        self.inner = module

    def forward(self, *args):
        return self.inner(*args)


def test_compile_keeps_the_gradient_penalty_on_the_eager_discriminator(monkeypatch):
    wrapped, penalised = [], []
    monkeypatch.setattr(torch, "compile", lambda module: wrapped.append(_Compiled(module)) or wrapped[-1])
    real_gp = train_module.gradient_penalty

    def spy(D, *args, **kwargs):
        penalised.append(D)
        return real_gp(D, *args, **kwargs)

    monkeypatch.setattr(train_module, "gradient_penalty", spy)
    G, D = tiny_gan()
    result = fit(G, D, images(), cfg(compile=True, gp_weight=10.0, loss="wasserstein"))
    assert result.step == 4 and len(wrapped) == 2            # both networks went through torch.compile
    assert penalised and all(p is D for p in penalised)      # the penalty never saw the compiled D
    assert result.G is G and result.D is D                    # checkpoints and results hold the plain modules


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiling for real is checked on a GPU machine")
def test_compile_for_real_with_gradient_penalty_on_cuda():
    result = fit(*tiny_gan(), images(), cfg(device="cuda", compile=True, gp_weight=10.0, loss="wasserstein"))
    assert result.step == 4
