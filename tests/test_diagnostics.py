"""Diagnostics on constructed histories and sample batches: each rule fires when it should, and only then."""
import dataclasses
import math

import pytest
import torch

import ganlab as gl
from ganlab.diagnostics import FAQ_ANCHORS, Finding, diagnose, sample_diversity


def healthy(n=10):
    return {"step": [10 * (i + 1) for i in range(n)], "d_loss": [1.2] * n, "g_loss": [0.9] * n,
            "d_real": [0.4] * n, "d_fake": [-0.3] * n}


def real_batch(n=32):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_a_healthy_history_gives_no_findings():
    assert diagnose(healthy()) == []
    assert diagnose(healthy(), real_batch(), reference=real_batch()) == []


def test_nan_is_flagged_at_its_step_with_the_faq_link():
    h = healthy()
    h["g_loss"][4] = math.inf
    h["d_loss"][6] = math.nan
    (f,) = diagnose(h)
    assert f.code == "non_finite" and f.step == 50 and "g_loss is inf" in f.message
    assert f.faq == "book/08_faq#" + FAQ_ANCHORS["non_finite"]
    assert "step 50" in str(f) and f.faq in str(f)


def test_saturated_discriminator_needs_a_sustained_stretch():
    h = healthy()
    h["d_loss"][3:5] = [0.01, 0.01]                 # two entries: below patience 3
    assert diagnose(h) == []
    h["d_loss"][3:7] = [0.01, 0.005, 0.002, 0.001]
    h["g_loss"][3:7] = [5.0, 6.0, 7.0, 8.0]
    (f,) = diagnose(h)
    assert f.code == "d_saturated" and f.step == 40 and "8" in f.message
    assert diagnose(h, patience=5) == []


def test_saturation_by_the_logit_gap_alone():
    h = healthy()
    h["d_real"] = [12.0] * 10
    h["d_fake"] = [-3.0] * 10
    (f,) = diagnose(h)
    assert f.code == "d_saturated" and f.step == 10 and "logit gap 15" in f.message
    assert diagnose(h, logit_gap=20.0) == []


def test_collapsed_samples_are_flagged_against_real_diversity():
    real = real_batch()
    collapsed = real[:1].repeat(32, 1, 1, 1) + 0.01 * torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    (f,) = diagnose(healthy(), [(100, real), (200, collapsed)], reference=real)
    assert f.code == "mode_collapse" and f.step == 200 and f.faq.endswith("#mode-collapse")
    assert sample_diversity(collapsed) < 0.1 * sample_diversity(real)


class OneLabel(torch.nn.Module):
    """A stand-in digit classifier that always says class 3 (or spreads labels by the mean pixel)."""

    def __init__(self, spread: bool):
        super().__init__()
        self.spread = spread
        self.w = torch.nn.Parameter(torch.zeros(1))

    def features(self, x):
        return x.flatten(1)[:, :1]

    def head(self, f):
        if self.spread:
            return torch.nn.functional.one_hot(torch.arange(len(f)) % 10, 10).float() * 10
        return torch.nn.functional.one_hot(torch.full((len(f),), 3), 10).float() * 10


def test_collapse_by_label_entropy():
    images = real_batch(40)
    (f,) = diagnose(healthy(), images, classifier=OneLabel(spread=False))
    assert f.code == "mode_collapse" and "0.00 bits" in f.message and f.step is None
    assert diagnose(healthy(), images, classifier=OneLabel(spread=True)) == []


def test_accepts_a_train_result(tiny_gan, toy_images, train_config):
    G, D = tiny_gan(z_dim=4)
    data = toy_images(32)
    result = gl.fit(G, D, data, train_config(log_every=1, n_samples=8))
    # the collapse rule reads the result's last sample grid: one image repeated is a collapse ...
    collapsed = dataclasses.replace(result, samples=[(result.step, data[:1].repeat(8, 1, 1, 1))])
    findings = gl.diagnose(collapsed, reference=data[:8])
    assert "mode_collapse" in [f.code for f in findings] and all(isinstance(f, Finding) for f in findings)
    assert findings[-1].step == result.step or findings[-1].step is None
    # ... and eight different real images are not
    varied = dataclasses.replace(result, samples=[(result.step, data[8:16])])
    assert "mode_collapse" not in [f.code for f in gl.diagnose(varied, reference=data[:8])]


@pytest.mark.parametrize("kwargs, match", [
    (dict(history=[1, 2]), "history must be a mapping"),
    (dict(history={"step": [1, 2], "d_loss": [1.0]}), "same length"),
    (dict(history={}, patience=0), "patience"),
    (dict(history={}, d_loss_floor=-1.0), "d_loss_floor"),
    (dict(history={}, diversity_ratio=0), "diversity_ratio"),
    (dict(history={}, samples=torch.zeros(4, 1, 2, 2)), "pass reference"),
    (dict(history={}, samples="x", reference=torch.zeros(4, 1, 2, 2)), "samples must be"),
    (dict(history={}, samples=[], reference=torch.zeros(4, 1, 2, 2)), "must not be empty"),
])
def test_arguments_are_validated(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        diagnose(**kwargs)


def test_sample_diversity_closed_form():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert sample_diversity(x) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="N >= 2"):
        sample_diversity(torch.zeros(1, 3))
