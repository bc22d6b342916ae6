"""Closed-form checks of every adversarial loss and of the gradient regularisers."""
import math

import pytest
import torch
from torch import nn

from ganlab import losses
from ganlab.losses import get_loss, gradient_penalty, list_losses, r1_penalty

LOG2 = math.log(2.0)


def t(*values):
    return torch.tensor(values, dtype=torch.float64)


@pytest.mark.parametrize(
    "name, real, fake, d_expected, g_expected",
    [
        # at zero logits D says 1/2 everywhere: -log(1/2) twice for D; log(1/2) / -log(1/2) for G
        ("minimax", t(0.0, 0.0), t(0.0, 0.0), 2 * LOG2, -LOG2),
        ("non_saturating", t(0.0, 0.0), t(0.0, 0.0), 2 * LOG2, LOG2),
        # hinge: margins of 1 on each side; satisfied margins cost nothing
        ("hinge", t(2.0, 3.0), t(-2.0, -1.0), 0.0, 1.5),
        ("hinge", t(0.0, 0.0), t(0.0, 0.0), 2.0, 0.0),
        ("hinge", t(0.5, -1.0), t(0.5, 2.0), (0.5 + 2.0) / 2 + (1.5 + 3.0) / 2, -1.25),
        # wasserstein: mean(f) - mean(r) for the critic, -mean(f) for G
        ("wasserstein", t(1.0, 3.0), t(-1.0, 0.0), -0.5 - 2.0, 0.5),
        # least squares: 1/2 (r-1)^2 + 1/2 f^2 and 1/2 (f-1)^2
        ("least_squares", t(1.0, 3.0), t(0.0, 2.0), 0.5 * (0 + 4) / 2 + 0.5 * (0 + 4) / 2, 0.5 * (1 + 1) / 2),
    ],
)
def test_losses_match_their_formulas(name, real, fake, d_expected, g_expected):
    d_loss, g_loss = get_loss(name)
    assert d_loss(real, fake).item() == pytest.approx(d_expected, abs=1e-12)
    assert g_loss(fake).item() == pytest.approx(g_expected, abs=1e-12)


def test_bce_losses_equal_their_log_sigmoid_definition():
    g = torch.Generator().manual_seed(0)
    r, f = torch.randn(50, generator=g, dtype=torch.float64) * 3, torch.randn(50, generator=g, dtype=torch.float64) * 3
    sig = torch.sigmoid
    d_ref = (-torch.log(sig(r)) - torch.log(1 - sig(f))).mean()
    assert losses.d_minimax(r, f).item() == pytest.approx(d_ref.item(), rel=1e-10)
    assert losses.g_minimax(f).item() == pytest.approx(torch.log(1 - sig(f)).mean().item(), rel=1e-10)
    assert losses.g_non_saturating(f).item() == pytest.approx((-torch.log(sig(f))).mean().item(), rel=1e-10)


def test_losses_are_stable_for_extreme_logits():
    big = t(200.0, -200.0)
    for name in list_losses():
        d_loss, g_loss = get_loss(name)
        assert torch.isfinite(d_loss(big, big)) and torch.isfinite(g_loss(big)), name


def test_saturating_loss_starves_and_non_saturating_does_not():
    # when D confidently rejects fakes (f = -8), d/df of log(1 - sigmoid(f)) is -sigmoid(f) ~ -3e-4,
    # while d/df of -log sigmoid(f) is -(1 - sigmoid(f)) ~ -1
    f = torch.full((1,), -8.0, dtype=torch.float64, requires_grad=True)
    (grad_sat,) = torch.autograd.grad(losses.g_minimax(f), f)
    (grad_ns,) = torch.autograd.grad(losses.g_non_saturating(f), f)
    assert grad_sat.abs().item() == pytest.approx(torch.sigmoid(torch.tensor(-8.0)).item(), rel=1e-6)
    assert grad_ns.abs().item() == pytest.approx(1 - torch.sigmoid(torch.tensor(-8.0)).item(), rel=1e-6)
    assert grad_ns.abs() > 1000 * grad_sat.abs()


@pytest.mark.parametrize("name", ["minimax", "non_saturating", "hinge", "wasserstein"])
def test_generator_losses_fall_as_d_scores_fakes_higher(name):
    _, g_loss = get_loss(name)
    assert g_loss(t(1.0)) < g_loss(t(0.0)) < g_loss(t(-1.0))


def test_get_loss_aliases_and_errors():
    assert get_loss("bce") is get_loss("non_saturating")
    assert get_loss("wgan") is get_loss("wasserstein")
    with pytest.raises(ValueError, match="loss must be one of"):
        get_loss("nope")


class Linear(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return x.flatten(1) @ self.w


def test_gradient_penalty_is_zero_for_unit_norm_linear_critic():
    w = torch.randn(12, dtype=torch.float64)
    real, fake = torch.randn(8, 3, 2, 2, dtype=torch.float64), torch.randn(8, 3, 2, 2, dtype=torch.float64)
    assert gradient_penalty(Linear(w / w.norm()), real, fake).item() == pytest.approx(0.0, abs=1e-12)
    # a critic with gradient norm 3 everywhere pays (3 - 1)^2 = 4
    assert gradient_penalty(Linear(3 * w / w.norm()), real, fake).item() == pytest.approx(4.0, rel=1e-10)


def test_gradient_penalty_reaches_the_critic_weights():
    critic = Linear(torch.full((4,), 2.0, dtype=torch.float64))
    gp = gradient_penalty(critic, torch.zeros(2, 4, dtype=torch.float64), torch.ones(2, 4, dtype=torch.float64))
    gp.backward()
    assert critic.w.grad is not None and critic.w.grad.abs().sum() > 0


def test_r1_penalty_is_squared_gradient_norm():
    w = torch.tensor([1.0, 2.0, 2.0], dtype=torch.float64)
    assert r1_penalty(Linear(w), torch.randn(5, 3, dtype=torch.float64)).item() == pytest.approx(9.0)


def test_gradient_penalty_checks_shapes():
    with pytest.raises(ValueError, match="real and fake"):
        gradient_penalty(Linear(torch.ones(4)), torch.zeros(2, 4), torch.zeros(3, 4))
