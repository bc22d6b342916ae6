"""DiffAugment: differentiable, seeded, and each operation does what it says."""
import pytest
import torch

from ganlab.augment import diff_augment, parse_policy


def test_translation_moves_content_and_fills_background():
    x = -torch.ones(64, 1, 8, 8)
    x[:, :, 4, 4] = 1.0  # one bright pixel
    y = diff_augment(x, "translation", generator=torch.Generator().manual_seed(0))
    assert (y == 1).flatten(1).sum(1).max() <= 1          # the pixel moved (or left the image), never doubled
    positions = {tuple((img[0] == 1).nonzero().flatten().tolist()) for img in y}
    assert len(positions) > 5                              # different shifts for different images
    assert all(abs(p[0] - 4) <= 1 and abs(p[1] - 4) <= 1 for p in positions if p)  # at most 1/8 of 8 px
    assert set(y.unique().tolist()) <= {-1.0, 1.0}


def test_cutout_blanks_a_box_of_half_the_side():
    x = torch.ones(32, 1, 8, 8)
    y = diff_augment(x, "cutout", generator=torch.Generator().manual_seed(1))
    blanked = (y == -1).flatten(1).sum(1)
    assert blanked.max() <= 16 and blanked.min() >= 1      # at most a 4 x 4 box, clipped at the edges
    assert (blanked == 16).any()


def test_gradients_flow_and_draws_are_seeded():
    x = torch.randn(4, 1, 16, 16, requires_grad=True)
    policy = "translation,cutout,brightness,contrast"
    y = diff_augment(x, policy, generator=torch.Generator().manual_seed(3))
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    again = diff_augment(x, policy, generator=torch.Generator().manual_seed(3))
    assert torch.equal(y, again)


def test_policy_parsing():
    assert parse_policy(None) == () and parse_policy("") == ()
    assert parse_policy("translation, cutout") == ("translation", "cutout")
    with pytest.raises(ValueError, match="augment: unknown operation"):
        parse_policy("translation,flip")
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(diff_augment(x, None), x)


def test_no_policy_passes_any_batch_shape_through():
    points = torch.randn(5, 2)
    assert diff_augment(points, None) is points
    with pytest.raises(ValueError, match="x must have shape"):
        diff_augment(points, "translation")
