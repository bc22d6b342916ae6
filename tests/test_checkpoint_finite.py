"""A checkpoint whose networks hold NaN or infinite weights is refused on resume, whichever network it is."""
import pytest
import torch

from checkpoint_damage import nan_weights
from ganlab.checkpoint import CheckpointError
from ganlab.data import PhotoPatches
from ganlab.models import PatchGANDiscriminator, RestorationUNet
from ganlab.restore import TASKS
from ganlab.train import fit
from ganlab.translate import Pix2PixConfig, fit_pix2pix


@pytest.mark.parametrize("key", ["G", "D", "G_ema"])
def test_fit_refuses_to_resume_from_nan_weights(tmp_path, tiny_gan, toy_images, train_config, key):
    config = train_config(steps=2, checkpoint_every=1, ema_half_life=50.0)
    fit(*tiny_gan(), toy_images(), config, out_dir=tmp_path)
    nan_weights(tmp_path / "checkpoint.pt", key=key)
    with pytest.raises(CheckpointError, match=f"{key} holds NaN or infinite values"):
        fit(*tiny_gan(), toy_images(), train_config(steps=4, checkpoint_every=1, ema_half_life=50.0),
            out_dir=tmp_path, resume=True)


@pytest.mark.parametrize("key", ["G", "D", "G_ema"])
def test_fit_pix2pix_refuses_to_resume_from_nan_weights(tmp_path, key):
    stream = PhotoPatches("coffee", size=16, scales=(0.5,), degradation=TASKS["denoise"].degradation)

    def pair():
        torch.manual_seed(0)
        return (RestorationUNet(base_channels=4, depth=1, blocks=1),
                PatchGANDiscriminator(in_channels=3, out_channels=3, base_channels=4, n_layers=1, norm="spectral"))

    def config(steps):
        return Pix2PixConfig(steps=steps, batch_size=2, adv_weight=0.1, ema_half_life=8.0, checkpoint_every=1,
                             progress=False, device="cpu")

    fit_pix2pix(*pair(), stream, config(2), out_dir=tmp_path)
    nan_weights(tmp_path / "checkpoint.pt", key=key)
    with pytest.raises(CheckpointError, match=f"{key} holds NaN or infinite values"):
        fit_pix2pix(*pair(), stream, config(3), out_dir=tmp_path, resume=True)
