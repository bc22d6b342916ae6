"""The loops' guards: data checked where it enters, nothing non-finite saved, exploding losses stopped,
a diverging run keeps a checkpoint at the defaults, stale temp files cleared, resume mismatches named."""
import math

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import ganlab as gl
from ganlab.checkpoint import CheckpointError
from ganlab.errors import UsageError


class Tiny(nn.Module):
    """The cheapest G (``z_dim=1`` -> 2-D points) or D (2-D points -> logits) that ``fit`` accepts."""

    def __init__(self, generator: bool, nan_after: int | None = None, scale_after: int | None = None):
        super().__init__()
        self.lin = nn.Linear(1, 2) if generator else nn.Linear(2, 1)
        if generator:
            self.z_dim = 1
        self.calls, self.nan_after, self.scale_after = 0, nan_after, scale_after

    def forward(self, x):
        self.calls += 1
        out = self.lin(x)
        if self.nan_after is not None and self.calls > self.nan_after:
            return out * math.nan
        if self.scale_after is not None and self.calls > self.scale_after:
            return out * 1e9  # finite, but a loss of this size is on its way to NaN
        return out


def test_a_run_diverging_at_the_default_settings_keeps_its_last_checkpoint(tmp_path):
    cadence = gl.TrainConfig().checkpoint_every
    assert cadence > 0
    # three calls of D per step: NaN from the step after the first checkpoint on
    D = Tiny(False, nan_after=3 * cadence + 3)
    config = gl.TrainConfig(steps=cadence + 10, batch_size=8, progress=False, device="cpu", n_samples=4)
    with pytest.raises(FloatingPointError, match=f"diverged at step {cadence + 2}.*pt\\) was kept"):
        gl.fit(Tiny(True), D, torch.randn(64, 2), config, out_dir=tmp_path)
    assert gl.load_checkpoint(tmp_path / "checkpoint.pt")["step"] == cadence


def test_an_exploding_loss_stops_the_run_as_nan_does(tmp_path, train_config):
    D = Tiny(False, scale_after=6)  # three calls of D per step: from step 3 on, every loss is around 1e9
    with pytest.raises(FloatingPointError, match=r"diverged at step 7: .*beyond 1e\+06 for 5 steps in a row"):
        gl.fit(Tiny(True), D, torch.randn(64, 2), train_config(steps=50, loss="wasserstein",
                                                               checkpoint_every=1), out_dir=tmp_path)
    assert gl.load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 6  # finite, if already large


def test_non_finite_batch_norm_statistics_are_never_checkpointed(tmp_path, tiny_gan, toy_images,
                                                                  train_config):
    G, D = tiny_gan()

    def poison(state):  # after step 3's checkpoint: step 4's must be refused
        if state.step == 3:
            bn = next(m for m in state.G.modules() if isinstance(m, nn.BatchNorm2d))
            bn.running_var.fill_(math.inf)  # the weights stay finite: only the statistics overflowed

    with pytest.raises(FloatingPointError, match="G has non-finite weights or batch-norm statistics"):
        gl.fit(G, D, toy_images(), train_config(steps=6, checkpoint_every=1), out_dir=tmp_path,
               callbacks={"on_step_end": [poison]})
    state = gl.load_checkpoint(tmp_path / "checkpoint.pt")
    assert state["step"] == 3 and all(bool(torch.isfinite(v).all()) for v in state["G"].values()
                                       if v.is_floating_point())


def test_stale_temp_files_are_removed_when_a_run_starts(tmp_path, tiny_gan, toy_images, train_config):
    stale = [tmp_path / ".checkpoint.pt.k1ll3d.tmp", tmp_path / ".samples_000004.png.0dd.tmp"]
    for p in stale:
        p.write_bytes(b"\0" * 4096)
    gl.fit(*tiny_gan(), toy_images(), train_config(steps=1), out_dir=tmp_path)
    assert not any(p.exists() for p in stale)


def test_resuming_with_other_networks_is_one_line_naming_the_checkpoint(tmp_path, tiny_gan, toy_images,
                                                                         train_config):
    gl.fit(*tiny_gan(), toy_images(), train_config(steps=2), out_dir=tmp_path)
    with pytest.raises(CheckpointError) as info:
        gl.fit(*tiny_gan(z_dim=9), toy_images(), train_config(steps=4), out_dir=tmp_path, resume=True)
    text = str(info.value)
    assert str(tmp_path / "checkpoint.pt") in text and "z_dim=8 (not 9)" in text and "\n" not in text


@pytest.mark.parametrize("bad, message", [
    (lambda x: (x + 1) * 127.5, "must be images in [-1, 1], got values in [0"),  # 0..255 as floats
    (lambda x: ((x + 1) * 127.5).to(torch.uint8), "must be a float tensor, got torch.uint8"),
    (lambda x: x.index_fill(0, torch.tensor([3]), math.nan), "NaN or infinite"),
])
def test_every_loop_checks_its_images_where_they_enter(tiny_gan, toy_images, train_config, bad, message):
    images = bad(toy_images())
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        gl.fit(*tiny_gan(), images, train_config())
    with pytest.raises(UsageError, match=message.replace("[", r"\[")):
        gl.fit_vae(gl.models.VAE(z_dim=2, img_size=12, base_channels=4), images,
                   gl.train.VAEConfig(steps=1, batch_size=8, device="cpu", progress=False))
    G, D = gl.models.build_pix2pix(base_channels=4)
    with pytest.raises(UsageError, match="data targets .*" + message.replace("[", r"\[")):
        config = gl.translate.Pix2PixConfig(steps=1, batch_size=8, device="cpu", progress=False)
        gl.translate.fit_pix2pix(G, D, TensorDataset(toy_images(), images), config)


def test_points_and_noisy_inputs_may_leave_the_pixel_range(toy_images, train_config):
    ring = gl.data.ring_of_gaussians(64, radius=2.0)  # 2-D points: no pixel range
    G, D = gl.models.build_gan("toy", seed=0, hidden_dim=8)
    assert gl.fit(G, D, ring, train_config(steps=1)).step == 1
    clean = toy_images(16, size=16)
    noisy = gl.degrade.GaussianNoise(sigma=0.5)(clean, seed=0)  # unclipped: beyond [-1, 1]
    assert noisy.abs().max() > 1
    G, D = gl.models.build_pix2pix(base_channels=4)
    config = gl.translate.Pix2PixConfig(steps=1, batch_size=4, device="cpu", progress=False)
    gl.translate.fit_pix2pix(G, D, (noisy, clean), config)


def test_refinement_step_sizes_that_diverge_are_refused(tiny_gan):
    G, D = tiny_gan()
    z = torch.randn(4, G.z_dim)
    for step_size in (2.0, 1e300, math.inf):
        with pytest.raises(UsageError, match="step_size"):
            gl.refine_latents(G, D, z, steps=2, step_size=step_size)
