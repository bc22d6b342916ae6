"""The two ways a class label enters the DCGAN discriminator: projection and input maps."""
import pytest
import torch

import ganlab as gl
from ganlab.models import DCGANDiscriminator, build_gan


@pytest.mark.parametrize("conditioning", ["projection", "input"])
def test_both_conditionings_take_and_use_labels(conditioning):
    torch.manual_seed(0)
    G, D = build_gan("dcgan", z_dim=8, img_size=28, base_channels=8, num_classes=10, d_conditioning=conditioning)
    assert D.conditioning == conditioning
    x, y = G(torch.randn(4, 8), torch.tensor([0, 1, 2, 3])), torch.tensor([0, 1, 2, 3])
    assert D(x, y).shape == (4,)
    if conditioning == "projection":
        with torch.no_grad():
            D.embed.weight.normal_()
    assert not torch.equal(D(x, y), D(x, torch.tensor([9, 9, 9, 9])))  # the label changes the logit
    with pytest.raises(ValueError, match="y: this network is class-conditional"):
        D(x)


def test_input_conditioning_stacks_one_hot_maps_on_the_image():
    torch.manual_seed(0)
    D = DCGANDiscriminator(img_size=28, base_channels=4, num_classes=3, conditioning="input")
    assert D.embed is None and D.features[0].in_channels == 1 + 3
    assert D.model_args["conditioning"] == "input"
    assert "conditioning" not in DCGANDiscriminator(img_size=28, num_classes=3).model_args  # old checkpoints match
    x, y = torch.randn(2, 1, 28, 28), torch.tensor([2, 0])
    seen = {}
    D.features[0].register_forward_hook(lambda m, inp, out: seen.update(x=inp[0]))  # returns None: output kept
    D(x, y)
    stacked = seen["x"]
    assert stacked.shape == (2, 4, 28, 28) and torch.equal(stacked[:, :1], x)
    assert (stacked[0, 3] == 1).all() and (stacked[0, 1:3] == 0).all() and (stacked[1, 1] == 1).all()


def test_input_conditioning_trains_with_penalties_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    G, D = build_gan("dcgan", z_dim=8, img_size=12, base_channels=4, num_classes=3, d_conditioning="input")
    data = torch.utils.data.TensorDataset(torch.rand(32, 1, 12, 12) * 2 - 1, torch.arange(32) % 3)
    cfg = gl.TrainConfig(steps=2, batch_size=8, r1_weight=1.0, progress=False, device="cpu")
    result = gl.fit(G, D, data, cfg, out_dir=tmp_path)
    assert result.step == 2
    G2 = gl.load_generator(tmp_path / "checkpoint.pt")
    assert G2.num_classes == 3


def test_conditioning_argument_is_checked():
    with pytest.raises(ValueError, match="conditioning"):
        DCGANDiscriminator(num_classes=10, conditioning="concat")


def test_conditional_batch_norm_is_batch_norm_then_a_gain_and_bias_per_class():
    from ganlab.models import ConditionalBatchNorm2d

    torch.manual_seed(0)
    cbn = ConditionalBatchNorm2d(3, num_classes=4)
    x, y = torch.randn(6, 3, 5, 5) * 2 + 1, torch.tensor([0, 1, 2, 3, 1, 0])
    plain = torch.nn.BatchNorm2d(3, affine=False)
    torch.testing.assert_close(cbn(x, y), plain(x))   # gain 1, bias 0 at the start: plain batch norm
    with torch.no_grad():
        cbn.gain.weight.normal_()
        cbn.bias.weight.normal_()
    normalised = plain(x)
    expected = normalised * cbn.gain.weight[y][:, :, None, None] + cbn.bias.weight[y][:, :, None, None]
    torch.testing.assert_close(cbn(x, y), expected)
    cbn.eval()                                         # the running statistics, as in BatchNorm2d
    torch.testing.assert_close(cbn(x, y), plain.eval()(x) * cbn.gain.weight[y][:, :, None, None]
                               + cbn.bias.weight[y][:, :, None, None])
    with pytest.raises(ValueError, match="num_classes"):
        ConditionalBatchNorm2d(3, num_classes=0)


def test_batchnorm_conditioning_puts_the_label_in_every_normalisation_of_g_and_not_next_to_z():
    from ganlab.models import ConditionalBatchNorm2d

    torch.manual_seed(0)
    G, D = build_gan("dcgan", z_dim=8, img_size=28, base_channels=8, num_classes=10, extra_layers=2,
                     residual=True, g_conditioning="batchnorm")
    assert G.embed is None and G.net[0].in_channels == 8           # z alone enters the first layer
    norms = [m for m in G.modules() if isinstance(m, (ConditionalBatchNorm2d, torch.nn.BatchNorm2d))]
    cbns = [m for m in norms if isinstance(m, ConditionalBatchNorm2d)]
    assert len(cbns) == 1 + 2 * 2 + 1 and len(norms) == 2 * len(cbns)  # each CBN holds a plain BN
    assert G.model_args["conditioning"] == "batchnorm" and D.conditioning == "projection"
    with torch.no_grad():
        for m in cbns:
            m.gain.weight.normal_(1.0, 0.5)
            m.bias.weight.normal_()
    seen = []
    for m in cbns:  # every conditional norm sees the labels (those in residual blocks too)
        m.register_forward_hook(lambda mod, inp, out: seen.append(inp[1]))
    z = torch.randn(4, 8)
    a, b = G(z, torch.tensor([0, 1, 2, 3])), G(z, torch.tensor([5, 5, 5, 5]))
    assert len(seen) == 2 * len(cbns) and not torch.equal(a, b)
    assert not torch.equal(a, G(torch.randn(4, 8), torch.tensor([0, 1, 2, 3])))  # and z matters
    with pytest.raises(ValueError, match="y: this network is class-conditional"):
        G(z)
    # the default stays the concatenation, and a checkpoint's args without the key rebuild it
    concat, _ = build_gan("dcgan", z_dim=8, img_size=28, base_channels=8, num_classes=10)
    assert concat.conditioning == "concat" and "conditioning" not in concat.model_args
    assert concat.embed is not None and concat.net[0].in_channels == 16
    with pytest.raises(ValueError, match="conditioning"):
        build_gan("dcgan", num_classes=10, g_conditioning="film")


def test_batchnorm_conditioning_trains_resumes_and_reloads(tmp_path):
    data = torch.utils.data.TensorDataset(torch.rand(32, 1, 12, 12) * 2 - 1, torch.arange(32) % 3)

    def run(steps, out_dir=None, resume=False, seed=0):
        torch.manual_seed(seed)
        G, D = build_gan("dcgan", z_dim=8, img_size=12, base_channels=4, num_classes=3, extra_layers=1,
                         residual=True, g_conditioning="batchnorm")
        cfg = gl.TrainConfig(steps=steps, batch_size=8, ema_half_life=100.0, progress=False, device="cpu")
        return gl.fit(G, D, data, cfg, out_dir=out_dir, resume=resume)

    straight = run(4)
    run(2, out_dir=tmp_path)
    resumed = run(4, out_dir=tmp_path, resume=True, seed=1)
    for a, b in ((straight.G, resumed.G), (straight.G_ema, resumed.G_ema)):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))
    G2 = gl.load_generator(tmp_path / "checkpoint.pt")
    assert G2.conditioning == "batchnorm"
    y = torch.tensor([0, 1, 2])
    assert torch.equal(gl.sample(G2, 3, seed=0, labels=y), gl.sample(resumed.G_ema, 3, seed=0, labels=y))
