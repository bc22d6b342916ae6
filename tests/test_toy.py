"""The 2-D game of chapter 2: toy MLPs (with packing), mode coverage, game plots, animation and explorer."""
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import ganlab as gl  # noqa: E402
from ganlab.metrics import mode_coverage  # noqa: E402
from ganlab.models import ToyDiscriminator, ToyGenerator, build_gan  # noqa: E402

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def no_show(monkeypatch):
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("ganlab must not call plt.show()"))
    yield
    plt.close("all")


# --- models ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pack", [1, 2, 4])
def test_toy_pair_shapes_and_logits(pack, device):
    torch.manual_seed(0)
    G, D = build_gan("toy", z_dim=3, hidden_dim=16, num_layers=2, pack=pack)
    G, D = G.to(device), D.to(device)
    x = G(torch.randn(8, 3).to(device))
    assert x.shape == (8, 2)
    logits = D(x)
    assert logits.shape == (8 // pack,)
    assert G.z_dim == 3 and D.pack == pack and G.model_args["hidden_dim"] == 16
    with torch.no_grad():  # raw logits: scaling the last layer leaves [0, 1]
        D.net[-1].weight.mul_(1e4)
    assert (D(x).abs() > 1).any()


def test_packing_reads_consecutive_points_as_one_input():
    D = ToyDiscriminator(hidden_dim=4, num_layers=1, pack=2)
    x = torch.randn(6, 2)
    expected = D.net(x.reshape(3, 4)).squeeze(1)  # rows (x0, x1), (x2, x3), (x4, x5)
    assert torch.equal(D(x), expected)
    # the first layer sees both points of a pack: swapping packs' members changes the logit
    assert not torch.allclose(D(x), D(x[[1, 0, 3, 2, 5, 4]]))


def test_minibatch_std_feeds_the_batch_spread_to_the_output_layer():
    torch.manual_seed(0)
    D = ToyDiscriminator(hidden_dim=8, num_layers=2, minibatch_std=True)
    assert D.net[-1].in_features == 9 and D.model_args["minibatch_std"]
    x = torch.randn(16, 2)
    h = D.net[:-1](x)
    expected = D.net[-1](torch.cat([h, h.std(dim=0, unbiased=False).mean().expand(16, 1)], dim=1)).squeeze(1)
    assert torch.allclose(D(x), expected)
    # the same point is judged differently in a varied batch and in a collapsed one
    collapsed = x[:1].repeat(16, 1)
    assert not torch.allclose(D(x)[:1], D(collapsed)[:1])
    assert D(x[:1]).shape == (1,)  # a batch of one has no spread: the feature is 0


def test_toy_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="z_dim"):
        ToyGenerator(z_dim=0)
    with pytest.raises(ValueError, match="pack"):
        ToyDiscriminator(pack=0)
    with pytest.raises(ValueError, match="hidden_dim"):
        ToyDiscriminator(hidden_dim=2.5)
    with pytest.raises(ValueError, match="z must have shape"):
        ToyGenerator(z_dim=2)(torch.randn(4, 3))
    with pytest.raises(ValueError, match="multiple of pack"):
        ToyDiscriminator(pack=4)(torch.randn(6, 2))
    with pytest.raises(TypeError, match="unexpected"):
        build_gan("toy", img_size=28)


def test_fit_moves_toy_generators_onto_the_data_with_packing_and_gradient_penalty():
    # a constructed case: one tight blob far from where the fresh G puts its points (near the origin);
    # 150 steps must carry G's points most of the way there, for a packed D and for WGAN-GP
    target = torch.tensor([1.5, -1.0])
    data = target + 0.05 * torch.randn(512, 2, generator=torch.Generator().manual_seed(0))
    for pack, cfg in ((2, dict(loss="non_saturating")), (1, dict(loss="wasserstein", gp_weight=0.1, n_critic=2))):
        torch.manual_seed(0)
        G, D = build_gan("toy", hidden_dim=16, pack=pack)
        before = (gl.sample(G, 256, seed=1).mean(0) - target).norm()
        result = gl.fit(G, D, data, gl.TrainConfig(steps=150, batch_size=64, lr_g=2e-3, lr_d=2e-3, device="cpu",
                                                   progress=False, log_every=10, n_samples=10, **cfg))
        after = (gl.sample(G, 256, seed=1).mean(0) - target).norm()
        assert result.step == 150 and result.samples[-1][1].shape == (10, 2)
        assert all(math.isfinite(v) for v in result.history["d_loss"])
        assert before > 1.5 and after < 0.25 * before, (pack, float(before), float(after))


# --- mode coverage ---------------------------------------------------------------------------------

def test_mode_coverage_on_constructed_points():
    centers = gl.data.ring_centers(8, radius=2.0)
    std = 0.02
    # 3 points at mode 0 (one exactly on it, two 2.9 std away), 1 point at mode 5, 2 far off (between modes)
    on0 = centers[0] + torch.tensor([[0.0, 0.0], [2.9 * std, 0.0], [0.0, -2.9 * std]])
    on5 = centers[5][None] + torch.tensor([[0.0, 3.1 * std]])  # 3.1 std: nearest to mode 5 but not good
    at5 = centers[5][None] + torch.tensor([[0.0, 1.0 * std]])
    off = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    score = mode_coverage(torch.cat([on0, on5, at5, off]), centers, std=std)
    assert score["modes"] == 2
    assert score["counts"] == [3, 0, 0, 0, 0, 1, 0, 0]
    assert score["high_quality"] == pytest.approx(4 / 7)
    assert score["n"] == 7


def test_mode_coverage_of_real_samples_matches_the_rayleigh_law():
    # a 2-D Gaussian point lies within 3 std of its mean with probability 1 - exp(-9/2) = 0.98889
    data = gl.data.ring_of_gaussians(40_000, std=0.02, seed=1)
    score = mode_coverage(data, gl.data.ring_centers(), std=0.02)
    assert score["modes"] == 8
    assert score["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.003)
    grid = mode_coverage(gl.data.grid_of_gaussians(2500, seed=2), gl.data.grid_centers(), std=0.05)
    assert grid["modes"] == 25


def test_mode_coverage_of_a_collapsed_generator_and_threshold():
    centers = gl.data.ring_centers()
    collapsed = centers[3].repeat(2500, 1) + 0.01 * torch.randn(2500, 2, generator=torch.Generator().manual_seed(0))
    score = mode_coverage(collapsed, centers, std=0.02)
    assert score["modes"] == 1 and score["high_quality"] > 0.99
    assert mode_coverage(collapsed, centers, std=0.02, n_std=0.1)["high_quality"] < 0.2


def test_mode_coverage_argument_errors():
    centers = gl.data.ring_centers()
    with pytest.raises(ValueError, match="samples must have shape"):
        mode_coverage(torch.zeros(5), centers, std=0.02)
    with pytest.raises(ValueError, match="centers must have shape"):
        mode_coverage(torch.zeros(5, 2), torch.zeros(4, 3), std=0.02)
    with pytest.raises(ValueError, match="std"):
        mode_coverage(torch.zeros(5, 2), centers, std=0.0)
    with pytest.raises(ValueError, match="NaN"):
        mode_coverage(torch.full((5, 2), float("nan")), centers, std=0.02)


# --- game plots, animation, explorer ---------------------------------------------------------------

def _pair(pack=1):
    torch.manual_seed(0)
    return build_gan("toy", hidden_dim=16, num_layers=2, pack=pack)


@pytest.mark.parametrize("pack", [1, 3])
def test_game_snapshot_surface_points_and_pull(pack):
    G, D = _pair(pack)
    z = torch.randn(7, 2)
    snap = gl.viz.game_snapshot(G, D, z=z, extent=(-1, 1, -2, 2), resolution=5, step=4)
    assert snap["surface"].shape == (5, 5) and snap["fake"].shape == (7, 2) and snap["pull"].shape == (7, 2)
    assert ((0 <= snap["surface"]) & (snap["surface"] <= 1)).all() and snap["step"] == 4
    # row i, column j of the surface is D at (x_j, y_i): compare one corner with a direct evaluation
    corner = torch.tensor([[1.0, -2.0]]).repeat_interleave(pack, 0)
    assert snap["surface"][0, -1] == pytest.approx(torch.sigmoid(D(corner)).item(), abs=1e-6)
    # the pull is the gradient of D's logit at the generated points
    x = G(z).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x.repeat_interleave(pack, 0)).sum(), x)
    assert np.allclose(snap["pull"], grad.numpy(), atol=1e-6)
    assert G.training and D.training  # modes restored
    score = gl.viz.game_snapshot(G, D, z=z, resolution=4, output="score")
    assert score["surface"].shape == (4, 4)
    with pytest.raises(ValueError, match="output"):
        gl.viz.game_snapshot(G, D, z=z, output="logits")
    with pytest.raises(ValueError, match="extent"):
        gl.viz.game_snapshot(G, D, z=z, extent=(1, -1, 0, 1))


def test_game_plot_frames_and_animation():
    G, D = _pair()
    real = gl.data.ring_of_gaussians(50)
    snaps = [gl.viz.game_snapshot(G, D, z=torch.randn(20, 2), resolution=8, step=s) for s in (0, 10, 20)]
    fig = gl.viz.game_plot(snaps[0], real)
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "step 0"
    fig = gl.viz.game_frames(snaps, real, ncols=2)
    assert len(fig.axes) == 4  # 3 frames and one empty cell
    anim = gl.viz.game_animation(snaps, real, dpi=20, size=1.5)
    html = anim.to_jshtml()
    assert html.count("data:image/png;base64") == 3
    with pytest.raises(ValueError, match="snapshot must come from"):
        gl.viz.game_plot({"surface": None}, real)
    with pytest.raises(ValueError, match="real must have shape"):
        gl.viz.game_plot(snaps[0], torch.zeros(3, 3))


def test_toy_game_steps_changes_settings_and_resets():
    data = gl.data.ring_of_gaussians(300, seed=0)
    game = gl.train.ToyGame(data, batch_size=32, hidden_dim=16, n_critic=2, seed=3)
    before = [p.clone() for p in game.G.parameters()]
    stats = game.play(3)
    assert stats["step"] == 3 and game.step == 3 and len(game.history["d_loss"]) == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, game.G.parameters()))
    game.set(loss="wasserstein", gp_weight=0.1, lr_d=2e-3)
    assert game.opt_d.param_groups[0]["lr"] == 2e-3 and gl.viz.game_snapshot_of(game)["output"] == "score"
    assert "gp" in game.play(1)
    game.reset()
    assert game.step == 0 and all(torch.equal(a, b) for a, b in zip(before, game.G.parameters()))
    assert game.samples(10).shape == (10, 2)
    with pytest.raises(ValueError, match="n_critic"):
        game.set(n_critic=0)
    with pytest.raises(ValueError, match="batch_size"):
        gl.train.ToyGame(data, batch_size=1000)


def test_game_explorer_widgets_play_and_reset():
    widgets = pytest.importorskip("ipywidgets")
    data = gl.data.ring_of_gaussians(300, seed=0)
    game = gl.train.ToyGame(data, batch_size=32, hidden_dim=16)
    box = gl.viz.game_explorer(game, centers=gl.data.ring_centers(), std=0.02, steps_per_click=20)
    assert isinstance(box, widgets.HBox)
    controls, image = box.children
    assert image.value[:4] == b"\x89PNG"
    loss_w, lr_d_w, lr_g_w, critic_w, steps_w, buttons, status = controls.children
    critic_w.value = 2
    assert box.game.n_critic == 2
    buttons.children[0].click()  # Play
    assert box.game.step == 20 and "modes covered" in status.value
    buttons.children[1].click()  # Reset
    assert box.game.step == 0
    with pytest.raises(ValueError, match="centers and std"):
        gl.viz.game_explorer(game, centers=gl.data.ring_centers())


def test_registry_lists_the_toy_pair_apart_from_image_gans():
    assert "toy" in gl.models.list_models()
    assert "toy" not in gl.models.list_models(accepts="img_size")
    assert "dcgan" in gl.models.list_models(accepts="img_size")
