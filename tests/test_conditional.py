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
