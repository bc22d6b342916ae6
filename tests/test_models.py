"""Every registered GAN on every available device: shapes, ranges, logits, argument checks."""
import pytest
import torch

import ganlab as gl
from ganlab.models import DCGANDiscriminator, DCGANGenerator, build_gan, list_models, stage_plan

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", list_models(accepts="img_size"))  # image GANs (toy.py has its own tests)
@pytest.mark.parametrize("img_size, img_channels", [(28, 1), (32, 1), (32, 3), (64, 3)])
def test_shapes_range_and_logits(name, img_size, img_channels, device):
    torch.manual_seed(0)
    G, D = build_gan(name, z_dim=16, img_channels=img_channels, img_size=img_size, base_channels=8)
    G, D = G.to(device), D.to(device)
    z = torch.randn(5, 16).to(device)  # inputs made on the CPU, then moved
    x = G(z)
    assert x.shape == (5, img_channels, img_size, img_size)
    assert x.min() >= -1 and x.max() <= 1  # tanh output
    logits = D(x)
    assert logits.shape == (5,)
    # D returns raw logits, not probabilities: scaling its last layer moves them outside [0, 1]
    with torch.no_grad():
        D.head.weight.mul_(1000)
    assert (D(x).abs() > 1).any()
    assert G.z_dim == 16 and G.img_size == img_size and G.img_channels == img_channels


def test_stage_plan():
    assert stage_plan(28) == (7, 2)
    assert stage_plan(32) == (4, 3)
    assert stage_plan(64) == (4, 4)
    assert stage_plan(12) == (6, 1)
    for bad in (3, 7, 36, 100, 0):
        with pytest.raises(ValueError, match="img_size"):
            stage_plan(bad)


def test_widths_follow_base_channels():
    G = DCGANGenerator(z_dim=10, img_size=32, base_channels=16)
    convs = [m for m in G.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [64, 32, 16, 1]
    D = DCGANDiscriminator(img_size=32, base_channels=16)
    assert [c.out_channels for c in D.modules() if isinstance(c, torch.nn.Conv2d)] == [16, 32, 64, 1]


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="z_dim"):
        DCGANGenerator(z_dim=0)
    with pytest.raises(ValueError, match="img_channels"):
        DCGANGenerator(img_channels=2)
    with pytest.raises(ValueError, match="base_channels"):
        DCGANDiscriminator(base_channels=-4)
    with pytest.raises(ValueError, match="img_size"):
        DCGANDiscriminator(img_size=30)
    with pytest.raises(ValueError, match="z must have shape"):
        DCGANGenerator(z_dim=8)(torch.randn(2, 9))
    with pytest.raises(ValueError, match="x must have shape"):
        DCGANDiscriminator(img_size=28)(torch.randn(2, 1, 32, 32))
    with pytest.raises(ValueError, match="name must be one of"):
        build_gan("stylegan9")
    with pytest.raises(TypeError, match="unexpected keyword"):
        build_gan("dcgan", ngf=64)


def test_build_gan_splits_widths():
    G, D = build_gan("dcgan", img_size=28, g_base_channels=8, d_base_channels=4)
    assert G.base_channels == 8 and D.base_channels == 4


def test_model_args_rebuild_the_same_network():
    G = DCGANGenerator(z_dim=12, img_size=32, base_channels=8)
    clone = DCGANGenerator(**G.model_args)
    clone.load_state_dict(G.state_dict())  # strict: raises on any missing or unexpected key
    z = torch.randn(2, 12)
    G.eval(), clone.eval()
    assert torch.equal(G(z), clone(z))
    assert gl.models.MNISTClassifier()(torch.zeros(3, 1, 32, 32)).shape == (3, 10)


def test_class_conditional_networks_need_and_use_labels():
    torch.manual_seed(0)
    G, D = build_gan("dcgan", z_dim=8, img_size=28, base_channels=8, num_classes=10)
    z, y = torch.randn(4, 8), torch.tensor([0, 1, 2, 3])
    x = G(z, y)
    assert x.shape == (4, 1, 28, 28) and D(x, y).shape == (4,)
    G.eval()
    assert not torch.equal(G(z, y), G(z, torch.tensor([5, 5, 5, 5])))  # the label changes the image
    with torch.no_grad():
        D.embed.weight.normal_()
    assert not torch.equal(D(x, y), D(x, torch.tensor([9, 9, 9, 9])))  # and the logit
    with pytest.raises(ValueError, match="y: this network is class-conditional"):
        G(z)
    with pytest.raises(ValueError, match="y must be an integer tensor"):
        D(x, torch.zeros(4))
    with pytest.raises(ValueError, match="y: this generator is unconditional"):
        DCGANGenerator(z_dim=8)(z, y)
    with pytest.raises(ValueError, match="num_classes"):
        DCGANGenerator(num_classes=0)


def test_spectral_norm_makes_every_layer_1_lipschitz():
    torch.manual_seed(0)
    D = DCGANDiscriminator(img_size=28, base_channels=8, spectral_norm=True)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in D.modules())
    with torch.no_grad():
        for _ in range(30):  # each training-mode forward runs one power iteration
            D(torch.randn(4, 1, 28, 28))
    D.eval()
    convs = [m for m in D.modules() if isinstance(m, torch.nn.Conv2d)]
    for conv in convs:
        sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=0.02)


def test_minibatch_std_lets_d_see_the_batch():
    torch.manual_seed(0)
    x = torch.randn(4, 1, 28, 28)
    varied = torch.cat([x[:1], torch.randn(3, 1, 28, 28)])
    for flag, depends in ((True, True), (False, False)):
        D = DCGANDiscriminator(img_size=28, base_channels=8, spectral_norm=True, minibatch_std=flag).eval()
        with torch.no_grad():
            same_first = torch.isclose(D(x)[0], D(varied)[0])
        assert bool(same_first) is not depends


@pytest.mark.parametrize("spectral_norm", [False, True])
def test_residual_extra_layers_add_their_input(spectral_norm):
    torch.manual_seed(0)
    G, D = build_gan("dcgan", z_dim=8, img_size=28, base_channels=4, extra_layers=2, residual=True,
                     d_spectral_norm=spectral_norm)
    for net in (G, D):
        blocks = [m for m in net.modules() if isinstance(m, gl.models.dcgan.ResidualBlock)]
        assert len(blocks) == 2  # one block per extra layer, two 3 x 3 convolutions each
        assert all(sum(isinstance(m, torch.nn.Conv2d) for m in b.body) == 2 for b in blocks)
        assert net.model_args["residual"] is True
        clone = type(net)(**net.model_args)
        clone.load_state_dict(net.state_dict())  # the args rebuild the same layers
    block = [m for m in D.modules() if isinstance(m, gl.models.dcgan.ResidualBlock)][0]
    x = torch.randn(3, block.body[0].in_channels, 7, 7)
    D.eval()
    with torch.no_grad():
        body = block.body(x.clone())
        assert body.abs().mean() > 0.01
        assert torch.allclose(block(x.clone()), torch.nn.functional.leaky_relu(x + body, 0.2))
        # a body that outputs zeros leaves act(x): the identity path is there
        block.body = torch.nn.Sequential(block.body, _Times(0.0))
        assert torch.equal(block(x.clone()), torch.nn.functional.leaky_relu(x, 0.2))
    assert G(torch.randn(2, 8)).shape == (2, 1, 28, 28) and D(torch.randn(2, 1, 28, 28)).shape == (2,)
    # plain networks keep their recorded args (older checkpoints still match) and have no blocks
    G0 = DCGANGenerator(z_dim=8, extra_layers=2)
    assert "residual" not in G0.model_args
    assert not any(isinstance(m, gl.models.dcgan.ResidualBlock) for m in G0.modules())
    with pytest.raises(ValueError, match="residual"):
        DCGANGenerator(residual=1)
    with pytest.raises(ValueError, match="residual"):
        DCGANDiscriminator(residual="yes")


class _Times(torch.nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_latent_mixture_picks_a_learned_centre_by_z0_and_trains_it():
    torch.manual_seed(0)
    mix = gl.models.dcgan.LatentMixture(z_dim=6, components=4)
    z = torch.randn(4000, 6)
    out = mix(z)
    quartiles = torch.tensor([-0.6745, 0.0, 0.6745])  # the normal quartiles: Phi(z_0) in quarters
    offset = out - z  # the centre each z was sent to
    k = (offset[:, None, :] - mix.centers[None]).abs().sum(-1).argmin(1)
    assert torch.allclose(offset, mix.centers[k].detach(), atol=1e-6)
    # the component is read off z_0 alone, in order, and every component is about equally likely
    assert torch.equal(k, torch.bucketize(z[:, 0], quartiles))
    assert (torch.bincount(k, minlength=4).float() / len(z) - 0.25).abs().max() < 0.03
    out.pow(2).sum().backward()  # the centres are parameters that receive gradients
    assert mix.centers.grad is not None and mix.centers.grad.abs().sum() > 0
    # in G: after the layers' initialisation (same weights with or without it), recorded in model_args
    torch.manual_seed(1)
    G = DCGANGenerator(z_dim=6, img_size=28, base_channels=4, latent_components=4)
    torch.manual_seed(1)
    G0 = DCGANGenerator(z_dim=6, img_size=28, base_channels=4)
    assert G.model_args["latent_components"] == 4 and "latent_components" not in G0.model_args
    assert all(torch.equal(a, b) for a, b in zip(G.net.state_dict().values(), G0.net.state_dict().values()))
    clone = DCGANGenerator(**G.model_args)
    clone.load_state_dict(G.state_dict())  # strict: the centres are part of the weights
    G.eval(), G0.eval(), clone.eval()
    z = torch.randn(3, 6)
    with torch.no_grad():
        assert torch.equal(G(z), clone(z))
        k = torch.bucketize(z[:, 0], quartiles)
        # G's layers see the centre plus z
        assert torch.allclose(G(z), G0.net((G.latent.centers[k] + z)[:, :, None, None]), atol=1e-6)
    with pytest.raises(ValueError, match="latent_components"):
        DCGANGenerator(latent_components=-1)
